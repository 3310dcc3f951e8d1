"""Media files: resolving catalog paths safely, checking and decoding images and audio.

Every function raises MediaError with a short reason that the caller prefixes with the
row or file it concerns, so users see one line that says what is wrong.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

# A catalog image larger than this many pixels is refused instead of decoded:
# Pillow's own guard against decompression bombs, made an error rather than a warning.
MAX_IMAGE_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False

AUDIO_SAMPLE_RATE = 16_000
MAX_AUDIO_SECONDS = 30.0  # longer clips are embedded from their first 30 s


class MediaError(ValueError):
    """A media file that cannot be used, with the reason."""


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
        raise MediaError(f"file {raw!r} not found under {root}")
    if not resolved.is_file():
        raise MediaError(f"{raw!r} is not a regular file")
    return resolved


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
