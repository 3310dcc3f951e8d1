"""Colour and layout features of a product image, for the text -> image alignment.

The image encoder's pooled ImageNet features say little about colour (an ImageNet
class rarely depends on it), yet product titles name colours ("Red Kurta", "Navy Blue
Shirt"). These few hundred numbers, computed from the image file in numpy, give the
alignment heads what the pooled vector lacks. They never replace the stored image
vectors; `mmsearch index` computes them beside them for the bridged image part.

- a joint RGB histogram of the foreground (pixels not near-white: catalog photos sit on
  white), square-rooted so that cosine compares distributions (Hellinger);
- the mean colour of each cell of a coarse grid over the image resized to a fixed size
  (colour and silhouette: a shoe's layout differs from a shirt's);
- the foreground fraction.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from .media import MediaError, load_image

#: names what these features compute; a heads file trained on other features is refused
VERSION = "colour:1"

BINS = 4  # per RGB channel: 64 joint bins
GRID = (4, 3)  # rows, columns of the layout cells
SIZE = (48, 64)  # (width, height) the image is resized to first: every image costs the same
WHITE = 235  # a pixel with every channel above this is background
DIM = BINS**3 + GRID[0] * GRID[1] * 3 + 1


def colour_features(image: Image.Image) -> np.ndarray:
    """One image's feature vector (``DIM`` float32 numbers), deterministic."""
    rgb = np.asarray(image.convert("RGB").resize(SIZE, Image.BILINEAR), dtype=np.float32)
    foreground = ~(rgb > WHITE).all(axis=2)
    pixels = rgb[foreground] if foreground.any() else rgb.reshape(-1, 3)
    codes = np.minimum((pixels * BINS / 256).astype(np.int64), BINS - 1)
    joint = np.bincount((codes[:, 0] * BINS + codes[:, 1]) * BINS + codes[:, 2], minlength=BINS**3)
    histogram = np.sqrt(joint / joint.sum())
    rows, cols = GRID
    cells = rgb.reshape(rows, SIZE[1] // rows, cols, SIZE[0] // cols, 3).mean(axis=(1, 3)) / 255.0
    return np.concatenate([histogram, cells.ravel(), [foreground.mean()]]).astype(np.float32)


def colour_matrix(images: Iterable[Image.Image | Path]) -> np.ndarray:
    """Features of several images (decoded, or files), one row each. A file that can no
    longer be read gets a row of zeros: its stored image vector still places it, and
    `mmsearch embed` reports the file itself."""
    rows = [colour_features(image) if isinstance(image, Image.Image) else _file_features(image) for image in images]
    return np.stack(rows) if rows else np.zeros((0, DIM), np.float32)


def _file_features(path: Path) -> np.ndarray:
    try:
        return colour_features(load_image(Path(path)))
    except (MediaError, OSError):
        return np.zeros(DIM, np.float32)
