"""What the store knows of its images besides their vectors: pixel size and a perceptual
hash. Both are taken at embed time, when each image is decoded anyway (``image_info``
table), and copied into the index's ``duplicate`` part.

- **Sizes.** A query photo is embedded at the size of the catalog's images: a CNN sees a
  512-px photo and a 60x80 thumbnail of the same picture as different images (on the
  Myntra dev store, photo -> thumbnail recall@1 rose from 0.47 to above 0.95 with this
  alone). The part's manifest entry keeps the few most common sizes; the query is
  embedded at each (never enlarged) and a product scores its best match.
- **Near-duplicates.** A 256-bit DCT perceptual hash (``imagehash.phash``, 16x16) of each
  image and of its 90 % centre crop. A query is hashed as given and mirrored; a catalog
  image within MAX_DISTANCE bits of either is a near-duplicate (the same picture resized,
  recompressed, mirrored or cropped a little) and the ``duplicate`` signal ranks it
  first. Beyond MAX_DISTANCE the signal says nothing, so it cannot hurt a query whose
  picture the catalog does not hold. On the Myntra dev thumbnails (white backgrounds,
  centred products: hard for hashes) distorted copies lie within 22 bits of their
  original and 99 % of other products' images more than 28 bits away.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from . import generations
from .backends import Item

PART = "duplicate"
HASH_SIZE = 16  # phash grid: HASH_SIZE**2 bits
WORDS = HASH_SIZE**2 // 64  # uint64 words per hash
CROP = 0.9  # the centre crop hashed beside the whole image
MAX_DISTANCE = 24  # bits (of 256) within which two images count as the same picture
#: catalog sizes a query is embedded at: the most common, each held by this share of images
MAX_SIZES, MIN_SIZE_SHARE = 3, 0.05


def _phash(img: Image.Image) -> bytes:
    import imagehash  # imported here: only embedding and image queries need it

    return np.packbits(imagehash.phash(img, hash_size=HASH_SIZE).hash.ravel()).tobytes()


def _centre_crop(img: Image.Image, share: float = CROP) -> Image.Image:
    w, h = img.size
    dx, dy = round(w * (1 - share) / 2), round(h * (1 - share) / 2)
    return img.crop((dx, dy, w - dx, h - dy)) if w - 2 * dx > 0 and h - 2 * dy > 0 else img


def image_facts(img: Image.Image) -> tuple[int, int, bytes]:
    """(width, height, hashes of the whole image and of its centre crop) of a catalog image."""
    return img.width, img.height, _phash(img) + _phash(_centre_crop(img))


def query_hashes(img: Image.Image) -> np.ndarray:
    """(2, WORDS) uint64: the query image's hash and its mirror's."""
    return np.frombuffer(_phash(img) + _phash(ImageOps.mirror(img)), dtype="<u8").reshape(2, WORDS)


def catalog_sized(img: Image.Image, sizes: list[list[int]]) -> list[Image.Image]:
    """The query image scaled to the area of each catalog size (keeping its own aspect),
    never enlarged: a query smaller than the catalog's images is used as it is."""
    out: dict[tuple[int, int], Image.Image] = {}
    for width, height, _ in sizes:
        scale = min(1.0, (width * height / (img.width * img.height)) ** 0.5)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        if size not in out:
            out[size] = img if size == img.size else img.resize(size, Image.BICUBIC, reducing_gap=3.0)
    return list(out.values()) or [img]


def common_sizes(sizes: Counter[tuple[int, int]]) -> list[list[int]]:
    """[[width, height, images], ...]: the MAX_SIZES most common sizes held by at least
    MIN_SIZE_SHARE of the images (always the most common one)."""
    total = sum(sizes.values())
    ranked = sizes.most_common(MAX_SIZES)
    return [[w, h, n] for i, ((w, h), n) in enumerate(ranked) if i == 0 or n >= MIN_SIZE_SHARE * total]


def stored_facts(db: sqlite3.Connection, items: list[Item]) -> list[tuple[str, int, int, bytes]]:
    """(product id, width, height, hashes) of each item whose image facts are recorded."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='image_info'").fetchone() is None:
        return []  # a store no writer has opened since the table was added: `index` records them
    facts = {h: (w, ht, p) for h, w, ht, p in db.execute("SELECT content_hash, width, height, phash FROM image_info")}
    return [(pid, *facts[digest]) for pid, _, digest in items if digest in facts]


def write_part(folder: Path, facts: list[tuple[str, int, int, bytes]]) -> dict[str, Any]:
    """Write the ``duplicate`` part: every image's hashes and product, and the common sizes."""
    target = folder / PART
    target.mkdir(exist_ok=True)
    hashes = np.frombuffer(b"".join(p for *_, p in facts), dtype="<u8").reshape(len(facts), 2, WORDS)
    np.save(target / "hashes.npy", hashes)
    (target / "ids.json").write_text(json.dumps([pid for pid, *_ in facts]), encoding="utf-8")
    files = [generations.file_entry(target / name, f"{PART}/{name}") for name in ("hashes.npy", "ids.json")]
    sizes = common_sizes(Counter((w, h) for _, w, h, _ in facts))
    return {"backend": "phash", "count": len(facts), "files": files, "sizes": sizes}


class DuplicatePart:
    """The catalog's image hashes, loaded once. A query is one XOR-and-popcount pass over
    each hash's first 64-bit word (two images within MAX_DISTANCE bits are within it in
    every word); only the few images that pass are compared on the rest."""

    def __init__(self, folder: Path, entry: dict[str, Any]):
        hashes = np.load(folder / PART / "hashes.npy")
        self.words = np.ascontiguousarray(hashes.transpose(1, 2, 0))  # (hash, word, image): each word contiguous
        self.ids: list[str] = json.loads((folder / PART / "ids.json").read_text(encoding="utf-8"))

    @property
    def count(self) -> int:
        return len(self.ids)

    def products(self) -> set[str]:
        return set(self.ids)

    def scores(self, queries: np.ndarray, allowed: set[str] | None) -> dict[str, float]:
        """{product: 1 - distance / (MAX_DISTANCE + 1)} of the products with an image
        within MAX_DISTANCE bits of a query hash (best image and hash counts)."""
        best: dict[int, int] = {}
        for q in queries:
            for words in self.words:  # the image's own hash, its centre crop's
                close = np.flatnonzero(np.bitwise_count(words[0] ^ q[0]) <= MAX_DISTANCE)
                distance = np.zeros(len(close), dtype=np.int32)
                for w in range(WORDS):
                    distance += np.bitwise_count(words[w, close] ^ q[w])
                keep = distance <= MAX_DISTANCE
                for i, d in zip(close[keep].tolist(), distance[keep].tolist()):
                    best[i] = min(best.get(i, d), d)
        out: dict[str, float] = {}
        for i, d in best.items():
            pid = self.ids[i]
            if allowed is None or pid in allowed:
                out[pid] = max(out.get(pid, 0.0), 1.0 - d / (MAX_DISTANCE + 1))
        return out
