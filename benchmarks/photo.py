"""Image -> product with altered copies of catalog images: the near-duplicate protocol.

For a fixed-seed sample of dev products, the catalog thumbnail itself is altered four
ways (enlarged 2x, JPEG quality 30, a 10 % centre crop, a mirror) and used as the query;
only that product is relevant. Each set is evaluated with the image signal alone
(``--modality image``) and with the perceptual-hash signal beside it
(``--modality image,duplicate``), so the rows show what the ``duplicate`` signal adds.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageOps

from .datasets import EvalSet

SAMPLE = 500


def _jpeg(img: Image.Image, quality: int = 30) -> Image.Image:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _crop(img: Image.Image, share: float = 0.10) -> Image.Image:
    """Cut ``share`` of the width and height off, half on each side."""
    dx, dy = round(img.width * share / 2), round(img.height * share / 2)
    return img.crop((dx, dy, img.width - dx, img.height - dy))


DISTORTIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "resize_2x": lambda img: img.resize((img.width * 2, img.height * 2), Image.BICUBIC),
    "jpeg_q30": _jpeg,
    "crop_10pct": _crop,
    "mirror": ImageOps.mirror,
}


def distorted_queries(rows: list[dict[str, str]], image_root: Path, folder: Path, n: int = SAMPLE, seed: int = 0) -> dict[str, EvalSet]:
    """{distortion: eval set}: the altered thumbnails of ``n`` sampled products, written
    as PNG (lossless, so only the named distortion applies) under ``folder``."""
    sample = [r for r in rows if r["image"]]
    sample = random.Random(seed).sample(sample, min(n, len(sample)))
    sets = {}
    for name, distort in DISTORTIONS.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        queries, qrels = [], []
        for r in sample:
            with Image.open(image_root / r["image"]) as img:
                path = folder / name / f"{r['id']}.png"
                distort(img.convert("RGB")).save(path)
            queries.append({"query_id": f"{name}-{r['id']}", "image": str(path)})
            qrels.append((f"{name}-{r['id']}", r["id"], 1))
        sets[f"duplicate_{name}"] = EvalSet(f"duplicate_{name}", queries, qrels)
    return sets
