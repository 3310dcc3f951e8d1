"""Media files: resolving catalog paths safely, telling whether a file changed, checking
and decoding images and audio.

Every function raises MediaError with a short reason that the caller prefixes with the
row or file it concerns, so users see one line that says what is wrong.
"""

from __future__ import annotations

import os
import sqlite3
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from .store import Store, sha256_file

# A catalog image larger than this many pixels is refused instead of decoded:
# Pillow's own guard against decompression bombs, made an error rather than a warning.
MAX_IMAGE_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False

AUDIO_SAMPLE_RATE = 16_000
MAX_AUDIO_SECONDS = 30.0  # longer clips are embedded from their first 30 s

# A recorded hash is reused only for a file whose mtime is at least this much older than
# the moment it was hashed: file systems stamp mtimes in ticks (up to 2 s on FAT), so a
# file rewritten just after it was hashed can keep its size and mtime.
RACY_MARGIN_NS = 2_000_000_000


class MediaError(ValueError):
    """A media file that cannot be used, with the reason."""


class MediaNotFound(MediaError):
    """A catalog media path that names no file (counted: many of them mean a wrong --media-dir)."""


def resolve_media_path(base: Path, raw: str) -> Path:
    """Resolve a catalog media path against the media folder, refusing any escape.

    Absolute paths, '..' components and symlinks that lead outside ``base`` are refused:
    a catalog must not be able to make mmsearch read arbitrary files.
    """
    rel = Path(raw.strip())
    if rel.is_absolute():
        raise MediaError(f"absolute path {raw!r} refused: give a path relative to the media folder")
    if ".." in rel.parts:
        raise MediaError(f"path {raw!r} refused: '..' leaves the media folder")
    root = base.resolve()
    resolved = (root / rel).resolve()
    if not resolved.is_relative_to(root):
        raise MediaError(f"path {raw!r} refused: it is a symlink leading outside the media folder")
    if not resolved.exists():
        raise MediaNotFound(f"file {raw!r} not found under {root}")
    if not resolved.is_file():
        raise MediaError(f"{raw!r} is not a regular file")
    return resolved


class FileHashes:
    """sha256 of media files by path, recorded in the store so that unchanged files are
    not read again.

    A recorded hash stands for a file only while its size and mtime are the ones recorded
    *and* that mtime is RACY_MARGIN_NS older than the moment of hashing (git's racy-clean
    rule): a file changed within the same mtime tick, after it was hashed, keeps its size
    and mtime, so a file that was that fresh is read again until a later hash vouches for it.
    """

    def __init__(self, store: Store, paths: Iterable[str] | None = None):
        sql = "SELECT path, size, mtime_ns, sha256, hashed_ns FROM file_hashes"
        rows = store.db.execute(sql) if paths is None else store.select_in(sql + " WHERE path IN ({marks})", set(paths))
        self._known = {path: (size, mtime_ns, digest, hashed_ns) for path, size, mtime_ns, digest, hashed_ns in rows}
        self._new: dict[str, tuple[int, int, str, int]] = {}

    def sha256(self, path: Path) -> tuple[str, os.stat_result]:
        """The file's sha256 and the stat it was taken with; OSError if it is unreadable."""
        now = time.time_ns()  # before the stat: a change after this has an mtime of about now or later
        stat = path.stat()
        known = self._known.get(str(path))
        if known and known[:2] == (stat.st_size, stat.st_mtime_ns) and stat.st_mtime_ns < known[3] - RACY_MARGIN_NS:
            return known[2], stat
        digest = sha256_file(path)
        self._known[str(path)] = self._new[str(path)] = (stat.st_size, stat.st_mtime_ns, digest, now)
        return digest, stat

    def save(self, db: sqlite3.Connection) -> None:
        """Record the hashes taken since the last save (inside the caller's transaction)."""
        db.executemany(
            "INSERT OR REPLACE INTO file_hashes (path, size, mtime_ns, sha256, hashed_ns) VALUES (?, ?, ?, ?, ?)",
            [(path, *entry) for path, entry in self._new.items()],
        )
        self._new.clear()


def load_image(path: Path) -> Image.Image:
    """Decode an image fully and return it as 8-bit RGB.

    Handles CMYK, 16-bit greyscale, palette and transparent images (composited on
    white, as product photos are shown on shop pages).
    """
    if path.stat().st_size == 0:
        raise MediaError("image file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError(
            f"image is larger than {MAX_IMAGE_PIXELS:,} pixels (possible decompression bomb)"
        ) from None
    except Image.UnidentifiedImageError:
        raise MediaError("not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"image cannot be decoded ({exc})") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = arr.max() or 1.0
        img = Image.fromarray(np.clip(arr / peak * 255.0, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
        return background
    return img.convert("RGB")


def load_audio(path: Path, sr: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """Decode an audio file to mono float32 at ``sr`` Hz, at most MAX_AUDIO_SECONDS long."""
    import librosa  # imported here: librosa is slow to import and only audio needs it

    if path.stat().st_size == 0:
        raise MediaError("audio file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, _ = librosa.load(path, sr=sr, mono=True, duration=MAX_AUDIO_SECONDS)
    except Exception as exc:  # librosa raises many types (soundfile, audioread, EOF...)
        # NoBackendError carries no message: say what it means instead of "NoBackendError: ".
        detail = str(exc).strip() or "no decoder recognises the format"
        raise MediaError(f"not a readable audio file ({type(exc).__name__}: {detail})") from None
    if y.size == 0:
        raise MediaError("audio has no samples (zero length)")
    if not np.isfinite(y).all():
        raise MediaError("audio contains NaN or infinite samples")
    if np.abs(y).max() < 1e-3:
        raise MediaError("audio is silent (peak below -60 dBFS): nothing to embed")
    return y.astype(np.float32)


def check_media(kind: str, path: Path) -> None:
    """Fully decode a media file so a broken one is rejected at ingest, not at embed."""
    if kind == "image":
        load_image(path)
    else:
        load_audio(path)
