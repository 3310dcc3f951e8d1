"""HTML views of search results: the result cards that `mmsearch serve`, `query --html`
and `eval --report` share, rendered with Jinja2 templates from mmsearch/templates/.

A card shows a product's first image (or an audio player), title, price, fused score
and per-signal scores. Where a card's media come from is the caller's choice:
``served_media`` links the server's /media route (by product id and media index, never
a path), ``FileMedia`` embeds thumbnails and clips as data URIs (one file that opens
anywhere) or copies them into a report folder.
"""

from __future__ import annotations

import base64
import hashlib
import io
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from .media import MediaError, load_image
from .search import Query, Result

THUMBNAIL_PX = 320  # longest side of a thumbnail: sharp in a 200 px card on a 2x screen
TEMPLATES = Path(__file__).with_name("templates")

#: (result, "image" | "audio") -> the src of the product's first file of that kind, or None
MediaSource = Callable[[Result, str], "str | None"]


def environment() -> jinja2.Environment:
    """Autoescaping on: titles, ids and attribute values are catalog text."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["score"] = lambda v: "—" if v is None else f"{v:.3f}"
    env.filters["price"] = lambda v: "" if v is None else f"{v:,.2f}"
    return env


def media_url(product_id: str, kind: str, n: int = 0) -> str:
    """The server's URL for a product's n-th image or audio file."""
    return f"/media/{quote(product_id, safe='')}/{kind}/{n}"


def served_media(result: Result, kind: str) -> str | None:
    return media_url(result.id, kind) if result.media(kind) else None


class FileMedia:
    """Media read from disk into the page: images as JPEG thumbnails, audio as is. With
    ``folder`` each file is written once under ``folder/media/`` (named by content) and
    linked relatively; without, it is embedded as a data URI."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder
        self._done: dict[tuple[str, str], str | None] = {}

    def __call__(self, result: Result, kind: str) -> str | None:
        paths = result.media(kind)
        return self.file(Path(paths[0]), kind) if paths else None

    def file(self, path: Path, kind: str) -> str | None:
        """The src for one image or audio file; None when it cannot be read (the card
        then says so instead of showing a broken picture)."""
        key = (str(path), kind)
        if key not in self._done:
            try:
                data, mime = _thumbnail(path) if kind == "image" else (path.read_bytes(), _audio_type(path))
            except (MediaError, OSError):
                self._done[key] = None
            else:
                self._done[key] = self._src(data, mime)
        return self._done[key]

    def _src(self, data: bytes, mime: str) -> str:
        if self.folder is None:
            return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        name = hashlib.sha256(data).hexdigest()[:20] + (mimetypes.guess_extension(mime) or "")
        target = self.folder / "media" / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return f"media/{name}"


def _thumbnail(path: Path) -> tuple[bytes, str]:
    image = load_image(path)  # the same checks as ingest: size limit, truncation, format
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=82)
    return buffer.getvalue(), "image/jpeg"


def _audio_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def card_data(result: Result, media: MediaSource, grade: int | None = None, like_url: str | None = None) -> dict[str, Any]:
    """What the card template needs: the result, its media srcs, and (in reports) its
    graded relevance, or (on the search page) the "more like this" link."""
    return {"r": result, "image": media(result, "image"), "audio": media(result, "audio"), "grade": grade, "like_url": like_url}


def query_label(query: Query) -> str:
    """How a query is named on a page: its text, else its media files' names."""
    parts = [f"“{query.text}”" if query.text else "", query.image and f"photo {query.image.name}", query.audio and f"sound {query.audio.name}"]
    parts.append(f"like {query.like}" if query.like else "")
    return " + ".join(p for p in parts if p) or "query"


def results_page(results: list[Result], query: Query, store: Path) -> str:
    """A standalone page of one query's result cards (`query --html`): every image and
    clip is embedded, so the file opens anywhere, mailed or attached to a ticket."""
    media = FileMedia()
    return environment().get_template("results.html").render(
        query_label=query_label(query),
        store=store,
        query_image=query.image and media.file(query.image, "image"),
        query_audio=query.audio and media.file(query.audio, "audio"),
        cards=[card_data(r, media) for r in results],
    )
