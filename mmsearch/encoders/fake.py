"""A deterministic stand-in model for every modality, for tests of plumbing (CLI output,
exit codes, locks, kills): vectors come from a hash of the content, so nothing loads,
the same input always gives the same unit vector, and an embed of a whole catalog takes
milliseconds. Retrieval quality is the real models' business, not this one's.

Spec: ``fake:DIM`` (``--text-model fake:16``, ``--image-model fake:16``, ...).

- text: the normalised sum of one pseudo-random vector per lower-cased word, so texts
  that share words are near each other (a text without words hashes as a whole);
- image: a hash of the decoded pixels (mode, size and bytes);
- audio: a hash of the decoded samples.

As an image model it has a text tower (``encode_text``, the text vectors above), so the
text-image bridge works without CLIP weights or an ImageNet classifier.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import MMSearchError
from . import l2_normalize

PREFIX = "fake:"
MAX_DIM = 4096
_WORD = re.compile(r"\w+")


def parse_dim(modality: str, spec: str) -> int:
    """``fake:DIM`` -> DIM, a whole number from 1 to MAX_DIM."""
    body = spec.removeprefix(PREFIX)
    if not (body.isascii() and body.isdigit() and 1 <= int(body) <= MAX_DIM):
        raise MMSearchError(f"{modality} model {spec!r}: expected fake:DIM with DIM a whole number from 1 to {MAX_DIM}, e.g. fake:16")
    return int(body)


def hashed_vector(data: bytes, dim: int) -> np.ndarray:
    """A pseudo-random (dim,) float32 vector seeded by a hash of ``data``."""
    seed = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(dim, dtype=np.float32)


def text_vector(text: str, dim: int) -> np.ndarray:
    words = _WORD.findall(text.lower()) or [text]
    return np.sum([hashed_vector(w.encode("utf-8", "surrogatepass"), dim) for w in words], axis=0, dtype=np.float32)


def _content(modality: str, item: Any) -> bytes:
    if modality == "image":
        return f"{item.mode}:{item.size}:".encode() + item.tobytes()
    return np.ascontiguousarray(item, dtype="<f4").tobytes()


class FakeEncoder:
    def __init__(self, modality: str, spec: str):
        self.modality = modality
        self.name = spec
        self.dim = parse_dim(modality, spec)
        self.id = f"fake:{self.dim}:v1"

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        if self.modality == "text":
            return self.encode_text(items)
        vectors = [hashed_vector(_content(self.modality, item), self.dim) for item in items]
        return l2_normalize(np.stack(vectors)) if vectors else np.zeros((0, self.dim), np.float32)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        vectors = [text_vector(t, self.dim) for t in texts]
        return l2_normalize(np.stack(vectors)) if vectors else np.zeros((0, self.dim), np.float32)
