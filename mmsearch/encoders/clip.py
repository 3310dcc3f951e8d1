"""Image encoder (and text tower) from open_clip, for users who have CLIP weights.

Spec: ``open_clip:ARCH:WEIGHTS`` where
- ARCH is an open_clip model name (``ViT-B-32``) or the path of a model config JSON
  (a custom architecture, registered with open_clip before use);
- WEIGHTS is a pretrained tag (``laion2b_s34b_b79k``: downloaded by open_clip, so it
  needs network and HF_HUB_OFFLINE=0, or an already-cached copy) or the path of a local
  checkpoint (.safetensors, or a torch file loaded with weights_only=True).

No package here carries CLIP weights, so a tag that is neither cached nor downloadable
fails at once with a message that says what to pass instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import MMSearchError
from . import configured_torch, l2_normalize

PREFIX = "open_clip:"


def parse_spec(spec: str) -> tuple[str, str]:
    """``open_clip:ARCH:WEIGHTS`` -> (ARCH, WEIGHTS). ARCH and WEIGHTS may be paths."""
    body = spec.removeprefix(PREFIX)
    arch, sep, weights = body.partition(":")
    if not sep or not arch or not weights:
        raise MMSearchError(
            f"image model {spec!r}: expected open_clip:ARCH:WEIGHTS, e.g. open_clip:ViT-B-32:laion2b_s34b_b79k "
            "or open_clip:ViT-B-32:/path/to/open_clip_model.safetensors"
        )
    return arch, weights


class OpenClipEncoder:
    modality = "image"

    def __init__(self, spec: str, batch_size: int = 32):
        self.name = spec
        self.arch, self.weights = parse_spec(spec)
        self.batch_size = batch_size

    @cached_property
    def id(self) -> str:
        weights = Path(self.weights)
        if weights.is_file():
            digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
            return f"open_clip:{self._arch_name}:sha256-{digest}"
        return f"open_clip:{self._arch_name}:{self.weights}"

    @cached_property
    def _arch_name(self) -> str:
        arch = Path(self.arch)
        if arch.suffix == ".json":
            import open_clip

            if not arch.is_file():
                raise MMSearchError(f"open_clip model config {arch} not found")
            open_clip.add_model_config(arch)
            return arch.stem
        return self.arch

    @cached_property
    def _loaded(self):
        import open_clip

        arch = self._arch_name
        if arch not in open_clip.list_models():
            raise MMSearchError(f"open_clip has no model {arch!r}: pass a name from open_clip.list_models() or a config .json")
        weights = Path(self.weights)
        if not weights.is_file() and weights.suffix in (".pt", ".pth", ".bin", ".safetensors"):
            raise MMSearchError(f"open_clip checkpoint {weights} not found")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=self.weights, weights_only=True)
        except Exception as exc:  # hub errors, missing tags, offline mode: all mean "no weights here"
            raise MMSearchError(
                f"cannot load open_clip weights {self.weights!r} for {arch} ({type(exc).__name__}): no package here "
                f"carries CLIP weights; pass a local checkpoint, e.g. --image-model open_clip:{self.arch}:/path/to/"
                "open_clip_model.safetensors, or set HF_HUB_OFFLINE=0 on a machine with network access"
            ) from None
        return model.eval(), preprocess, open_clip.get_tokenizer(arch)

    @property
    def dim(self) -> int:
        return int(self.encode([Image.new("RGB", (8, 8))]).shape[1])

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        torch = configured_torch()  # not at the top: reading the encoder's id must not import torch

        model, preprocess, _ = self._loaded
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = torch.stack([preprocess(img) for img in images[start : start + self.batch_size]])
                out.append(model.encode_image(batch).float().numpy())
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, 0), np.float32)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        torch = configured_torch()

        model, _, tokenizer = self._loaded
        with torch.inference_mode():
            out = [
                model.encode_text(tokenizer(list(texts[start : start + 256]))).float().numpy()
                for start in range(0, len(texts), 256)
            ]
        return l2_normalize(np.concatenate(out))
