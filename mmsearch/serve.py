"""`mmsearch serve`: search over HTTP from one long-lived process that loads the index
and the models once (live.py): a JSON API, a server-rendered search page, and the
catalog's media files.

    GET  /api/search?q=...&k=...     results as `mmsearch query --json` gives them, with
                                     media URLs in place of file paths
    POST /api/search                 the same, multipart, with an uploaded image, audio
                                     or voice (a spoken query, transcribed: speech.py)
    GET  /api/products/{id}          one catalog row
    GET  /api/health                 store, live generation, product and part counts
    GET  /media/{id}/{kind}/{n}      a product's n-th image or audio file, as registered
    GET  /  (POST / with a file)     the search page
    GET  /docs, /redoc, /openapi.json  the API's documentation, served without a CDN

Every error is one line: JSON ``{"error": "..."}`` on the API, a line on the page.
Nothing a request names is used as a path: media are looked up in the catalog by
product id and position, uploads go to a temporary file that is always deleted.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import re
import socket
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

from fastapi import FastAPI, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__, views
from .encoders import parse_modalities
from .errors import MMSearchError
from .filters import (
    CORE_COLUMNS,
    Filters,
    check_filters,
    common_values,
    filterable_columns,
    fold,
    no_match_hint,
)
from .fusion import FUSIONS, parse_weights
from .live import LiveIndex
from .search import SIGNALS, Result
from .search import Query as SearchQuery
from .store import Store
from .understanding import Understanding

if TYPE_CHECKING:
    from .speech import Transcript

log = logging.getLogger(__name__)

MB = 1 << 20
DEFAULT_MAX_UPLOAD_MB = 20
DEFAULT_K = 10
#: the most results one request may ask for (each is scored by every signal)
MAX_K = 1000
#: request body allowed beyond the uploaded file: the form's other fields and boundaries
FORM_ALLOWANCE = 64 * 1024
UPLOAD_CHUNK = MB
#: a filter with more distinct values than this is a text box with suggestions (category,
#: brand) or left off the page (an attribute), not a select
MAX_OPTIONS = 50
#: suggestions listed for a text-box filter
MAX_SUGGESTIONS = 200
#: media positions beyond this are refused before they reach SQLite (an INTEGER there)
MAX_MEDIA_POSITION = 1_000_000
MEDIA_KINDS = ("image", "audio")
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")


class NotFound(MMSearchError):
    """An unknown product or media file: 404."""


# -- request and response shapes (also what /docs shows) ---------------------------
class SearchParams(BaseModel):
    """The search options of `mmsearch query`, as query parameters or form fields. A
    blank value is no value (HTML forms send every field)."""

    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(None, description="Query text (understood values and price phrases included, as in `mmsearch query`).")
    k: int | None = Field(None, ge=1, le=MAX_K, description=f"Number of results [default {DEFAULT_K}].")
    category: str | None = Field(None, description="Only products of this category.")
    brand: str | None = Field(None, description="Only products of this brand.")
    min_price: float | None = Field(None, description="Only products priced at least this.")
    max_price: float | None = Field(None, description="Only products priced at most this.")
    where: list[str] = Field([], description="COLUMN=VALUE: only products whose COLUMN equals VALUE (repeatable).")
    modality: str | None = Field(None, description=f"Comma list of signals from {','.join(SIGNALS)} [default: all the query reaches].")
    like: str | None = Field(None, description="Find products like this product id.")
    fusion: Literal[FUSIONS] | None = Field(None, description="How signals are combined [default: the store's saved settings].")
    weight: list[str] = Field([], description="SIGNAL=W: a signal's weight in fusion (repeatable).")
    explain: bool = Field(False, description="Also return what the query text was understood as, and each signal's share of each score.")

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, list):
            return [v for v in value if not (isinstance(v, str) and not v.strip())]
        return value


class UploadParams(SearchParams):
    """SearchParams as form fields, with the query's image and/or sound clip."""

    image: UploadFile | None = Field(None, description="Query image (any format Pillow reads).")
    audio: UploadFile | None = Field(None, description="Query sound clip (WAV, FLAC, MP3, ...).")
    voice: UploadFile | None = Field(None, description="Spoken query (WAV, FLAC, MP3, OGG): transcribed, its words are the query text (then leave q blank).")


class ErrorBody(BaseModel):
    error: str = Field(description="What is wrong, in one line.")


class ResultBody(BaseModel):
    rank: int
    id: str
    title: str | None
    category: str | None
    brand: str | None
    price: float | None
    score: float
    scores: dict[str, float | None] = Field(description="Each signal's score (null: the signal does not reach the product).")
    contributions: dict[str, float] | None = Field(None, description="With explain: each signal's share of score.")
    images: list[str] = Field(description="URLs of the product's images, in catalog order.")
    audio: list[str] = Field(description="URLs of the product's audio files.")
    sounds: list[str] | None = Field(None, description="What the product's clips sound like (AudioSet classes), when tagged.")


class SearchBody(BaseModel):
    generation: str = Field(description="The index generation that answered.")
    results: list[ResultBody]
    understood: dict[str, Any] | None = Field(None, description="With explain: the values and price phrase understood in q.")
    note: str | None = Field(None, description="Why filtered results are empty, when they are.")
    voice: dict[str, Any] | None = Field(None, description="With a voice upload: {transcript, language, language_probability, seconds}.")


class ProductBody(BaseModel):
    id: str
    title: str | None
    description: str | None
    category: str | None
    brand: str | None
    price: float | None
    attributes: dict[str, Any]
    images: list[str]
    audio: list[str]


class HealthBody(BaseModel):
    status: str
    store: str
    generation: str
    created: str | None
    products: int
    parts: dict[str, int | None] = Field(description="Items per index part, from the generation's manifest.")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in codes}


# -- search ------------------------------------------------------------------------
@dataclass
class Answer:
    generation: str
    results: list[Result]
    understood: Understanding | None = None
    note: str | None = None
    explain: bool = False
    voice: Transcript | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"generation": self.generation, "results": [result_json(r) for r in self.results]}
        if self.explain:
            out["understood"] = self.understood and self.understood.to_dict()
        if self.note:
            out["note"] = self.note
        if self.voice:
            out["voice"] = self.voice.to_dict()
        return out


def result_json(result: Result) -> dict[str, Any]:
    """``Result.to_dict()`` with media URLs in place of the server's file paths."""
    out = result.to_dict()
    for kind, key in (("image", "images"), ("audio", "audio")):
        out[key] = [views.media_url(result.id, kind, n) for n in range(len(result.media(kind)))]
    return out


def search(live: LiveIndex, params: SearchParams, image: Path | None = None, audio: Path | None = None, voice: Path | None = None) -> Answer:
    """On the live thread: what `mmsearch query` answers for the same options, and the
    same check that a filter which matched nothing names a column and value that exist.
    A voice file is transcribed first (the model loads on the first one) and its words
    are the query text."""
    searcher = live.searcher()
    filters = Filters.from_options(params.category, params.brand, params.min_price, params.max_price, params.where)
    heard = None
    if voice is not None:
        from .speech import spoken_query

        heard = spoken_query(params.q, voice, None, searcher.vocabulary())
        params = params.model_copy(update={"q": heard.text})
    options = {
        "k": params.k or DEFAULT_K,
        "filters": filters,
        "modalities": parse_modalities(params.modality, SIGNALS) if params.modality else None,
        "fusion": params.fusion,
        "weights": parse_weights(params.weight, SIGNALS),
    }
    query = SearchQuery(params.q, image, audio, params.like)
    understood, results = searcher.explain(query, **options) if params.explain else (None, searcher.search(query, **options))
    note = None
    if not results and not filters.is_empty():
        check_filters(searcher.store, filters)
        note = no_match_hint(searcher.store, filters)
    return Answer(searcher.folder.name, results, understood, note, params.explain, heard)


# -- uploads -----------------------------------------------------------------------
def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"upload too large: the limit is {limit / MB:g} MB (mmsearch serve --max-upload-mb)")


class _BodyLimit:
    """Refuses a request body over the upload limit (plus FORM_ALLOWANCE) as it arrives,
    a declared Content-Length at once, so an oversized upload is never held whole, in
    memory or in a temporary file. The refusal is an HTTPException raised where the app
    reads the body, so it gets the app's JSON error or error page (Starlette's own
    limiter answers a declared length in plain text)."""

    def __init__(self, app: ASGIApp, upload_limit: int):
        self.app, self.upload_limit = app, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_limit + FORM_ALLOWANCE
        declared = Headers(scope=scope).get("content-length", "")
        received = 0

        async def limited() -> Message:
            nonlocal received
            if declared.isdigit() and int(declared) > limit:
                raise _too_large(self.upload_limit)
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(self.upload_limit)
            return message

        await self.app(scope, limited, send)


@dataclass
class Upload:
    """An uploaded query file saved to a temporary file for the decoders."""

    kind: str  # image | audio | voice
    name: str  # the name the client gave, for messages
    path: Path


@asynccontextmanager
async def saved(uploads: Mapping[str, UploadFile | None], limit: int) -> AsyncIterator[dict[str, Upload]]:
    """{kind: Upload} for each given file, copied in chunks to a temporary file with the
    file's suffix (decoders read the format from it); every file is deleted afterwards.
    A file over ``limit`` bytes is refused with 413."""
    done: dict[str, Upload] = {}
    try:
        for kind, upload in uploads.items():
            if upload is not None:
                done[kind] = Upload(kind, upload.filename or kind, await run_in_threadpool(_copy, upload, limit))
        yield done
    finally:
        for upload in done.values():
            upload.path.unlink(missing_ok=True)


def _copy(upload: UploadFile, limit: int) -> Path:
    suffix = Path(upload.filename or "").suffix
    if not _SUFFIX.fullmatch(suffix):
        suffix = mimetypes.guess_extension(upload.content_type or "") or ""
    fd, name = tempfile.mkstemp(prefix="mmsearch-upload-", suffix=suffix.lower())
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            size = 0
            upload.file.seek(0)
            while chunk := upload.file.read(UPLOAD_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _given(upload: Any) -> UploadFile | None:
    """A form's file field, or None when no file was chosen (browsers send an empty part)."""
    if not isinstance(upload, StarletteUpload) or (not upload.filename and not upload.size):
        return None
    return upload


def upload_kind(upload: UploadFile) -> str:
    """image or audio, from the declared type, else the file name (the page's one file input takes both)."""
    for declared in (upload.content_type, mimetypes.guess_type(upload.filename or "")[0]):
        major = (declared or "").partition("/")[0]
        if major in MEDIA_KINDS:
            return major
    raise MMSearchError(f"the file {upload.filename!r} is neither a picture nor a sound: upload an image (JPEG, PNG, ...) or an audio clip (WAV, MP3, ...)")


async def search_with(live: LiveIndex, params: SearchParams, uploads: dict[str, Upload]) -> Answer:
    """``search`` with the uploaded files as the query's image, audio and voice. An error
    that names a temporary file names the upload instead."""
    image, audio, voice = uploads.get("image"), uploads.get("audio"), uploads.get("voice")
    try:
        return await live.run(search, live, params, image and image.path, audio and audio.path, voice and voice.path)
    except MMSearchError as exc:
        message = str(exc)
        for upload in uploads.values():
            message = message.replace(f"query file {upload.path}", f"uploaded {upload.kind} {upload.name!r}")
        raise type(exc)(message, exc.exit_code) from None


# -- catalog look-ups (on the live thread) -------------------------------------------
def product(live: LiveIndex, pid: str) -> dict[str, Any]:
    store = live.store()
    row = store.db.execute("SELECT * FROM products WHERE id=?", (pid,)).fetchone()
    if row is None:
        raise NotFound(f"no product {pid!r} in the store")
    media = {kind: 0 for kind in MEDIA_KINDS}
    for kind, count in store.db.execute("SELECT kind, count(*) FROM media WHERE product_id=? GROUP BY kind", (pid,)):
        media[kind] = count
    fields = {key: row[key] for key in ("id", "title", "description", "category", "brand", "price")}
    return {
        **fields,
        "attributes": json.loads(row["attributes"] or "{}"),
        "images": [views.media_url(pid, "image", n) for n in range(media["image"])],
        "audio": [views.media_url(pid, "audio", n) for n in range(media["audio"])],
    }


def media_file(live: LiveIndex, pid: str, kind: str, n: int) -> Path:
    """The n-th file of that kind the catalog registered for product ``pid``."""
    row = None
    if kind in MEDIA_KINDS and 0 <= n <= MAX_MEDIA_POSITION:
        sql = "SELECT path FROM media WHERE product_id=? AND kind=? ORDER BY position LIMIT 1 OFFSET ?"
        row = live.store().db.execute(sql, (pid, kind, n)).fetchone()
    if row is None:
        raise NotFound(f"product {pid!r} has no {kind} {n}")
    path = Path(row["path"])
    if not path.is_file():
        raise NotFound(f"{kind} {n} of product {pid!r} is no longer on disk: run `mmsearch ingest` again")
    return path


def health(live: LiveIndex) -> dict[str, Any]:
    searcher = live.searcher()
    products = searcher.store.db.execute("SELECT count(*) FROM products").fetchone()[0]
    return {
        "status": "ok",
        "store": str(live.root.resolve()),
        "generation": searcher.folder.name,
        "created": searcher.manifest.get("created"),
        "products": products,
        "parts": {name: entry.get("count") for name, entry in sorted(searcher.manifest["parts"].items())},
    }


# -- the page ------------------------------------------------------------------------
@dataclass
class Control:
    """One filter on the page: ``field`` is the form field (category, brand or where)."""

    field: str
    column: str
    options: list[tuple[str, int]]  # (value, products)
    suggest: bool = False  # too many values for a select: a text box with suggestions


@dataclass
class PageState:
    params: SearchParams = field(default_factory=SearchParams)
    answer: Answer | None = None
    label: str = ""
    error: str | None = None
    status: int = 200
    query_image: str | None = None


def filter_controls(store: Store) -> list[Control]:
    """On the live thread: a control for category, brand and each attribute column with
    at most MAX_OPTIONS distinct values, options in alphabetical order."""
    controls = []
    for column in filterable_columns(store):
        if column in CORE_COLUMNS and column not in ("category", "brand"):
            continue
        values = [(str(v), n) for v, n in common_values(store, column, MAX_OPTIONS + 1)]
        if len(values) > MAX_OPTIONS:
            if column not in ("category", "brand"):
                continue
            values = [(str(v), n) for v, n in common_values(store, column, MAX_SUGGESTIONS)]
        suggest = len(values) > MAX_OPTIONS
        values.sort(key=lambda pair: fold(pair[0]))
        controls.append(Control(column if column in ("category", "brand") else "where", column, values, suggest))
    return controls


class Page:
    """The search page: the form (its filters read from the catalog once per
    generation) and the cards of one search."""

    def __init__(self, live: LiveIndex):
        self.live = live
        self.template = views.environment().get_template("search.html")
        self._controls: tuple[str, list[Control]] | None = None

    def _current_controls(self) -> list[Control]:
        """On the live thread."""
        generation = self.live.searcher().folder.name
        if self._controls is None or self._controls[0] != generation:
            self._controls = (generation, filter_controls(self.live.store()))
        return self._controls[1]

    async def render(self, state: PageState) -> HTMLResponse:
        try:
            controls = await self.live.run(self._current_controls)
        except (MMSearchError, sqlite3.Error):  # the error shown is the request's; the form loses its filters
            controls = []
        params = state.params
        wheres = dict(item.partition("=")[::2] for item in params.where)
        selected = {"category": params.category, "brand": params.brand}
        answer = state.answer
        html = self.template.render(
            params=params,
            k=params.k or DEFAULT_K,
            max_k=MAX_K,
            controls=controls,
            selected=lambda c: selected.get(c.field) if c.field != "where" else wheres.get(c.column),
            answer=answer,
            label=state.label,
            cards=[views.card_data(r, views.served_media, like_url=f"/?like={quote(r.id, safe='')}") for r in answer.results] if answer else [],
            error=state.error,
            query_image=state.query_image,
        )
        return HTMLResponse(html, state.status)


def page_params(fields: Mapping[str, Any], getlist: Any) -> SearchParams:
    """SearchParams from a form or query string (``getlist(name)`` for repeated fields)."""
    data = {name: (getlist(name) if name in ("where", "weight") else fields[name]) for name in fields if name not in ("file", "voice")}
    return SearchParams.model_validate(data)


# -- errors --------------------------------------------------------------------------
def one_line(message: Any) -> str:
    return " ".join(str(message).split())


def validation_line(errors: list[Any]) -> str:
    """A validation error as one line naming the field: 'k: Input should be ... (got 'x')'."""
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path")) or "request"
    if first.get("type") == "extra_forbidden":
        line = f"unknown parameter {where!r}: see /docs for the parameters"
    else:
        line = f"{where}: {first.get('msg', 'invalid')}"
        value = first.get("input")
        if value is not None and not isinstance(value, (dict, list)):
            line += f" (got {str(value)[:80]!r})"
    more = len(errors) - 1
    return one_line(line + (f" (and {more} more)" if more else ""))


def status_of(exc: MMSearchError) -> int:
    return 404 if isinstance(exc, NotFound) else 400


# -- the app -------------------------------------------------------------------------
def create_app(store_path: Path, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * MB, warm: bool = False) -> FastAPI:
    """The server of the store at ``store_path``. Opens the live generation now (a
    store without an index raises MMSearchError); ``warm`` also loads every part and
    model, so the first query of each kind is as quick as the next."""
    live = LiveIndex(store_path)
    if warm:
        live.call(live.warm)
    page = Page(live)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        live.close()

    app = FastAPIOffline(
        title="mmsearch",
        summary="Local multimodal product search: text, photo, sound or product in, ranked products out.",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.live = live
    app.add_middleware(_BodyLimit, upload_limit=max_upload_bytes)

    async def error(request: Request, status: int, message: str) -> HTMLResponse | JSONResponse:
        if request.url.path == "/":
            return await page.render(PageState(error=message, status=status))
        return JSONResponse({"error": one_line(message)}, status_code=status)

    @app.exception_handler(MMSearchError)
    async def _mmsearch_error(request: Request, exc: MMSearchError) -> Any:
        return await error(request, status_of(exc), str(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Any:
        message = f"no such page {request.url.path!r}: see /docs" if exc.status_code == 404 else exc.detail
        return await error(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Any:
        return await error(request, 422, validation_line(exc.errors()))

    @app.exception_handler(sqlite3.DatabaseError)
    async def _database_error(request: Request, exc: sqlite3.DatabaseError) -> Any:
        known = Store(store_path).database_error(exc)
        if known is None:
            return await _unexpected(request, exc)
        return await error(request, 500, str(known))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Any:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return await error(request, 500, f"internal error ({type(exc).__name__}): see the server's log")

    # -- API ----------------------------------------------------------------------
    @app.get("/api/search", summary="Search", response_model=None, responses={200: {"model": SearchBody}, **_errors(400, 422, 500)})
    async def api_search(params: Annotated[SearchParams, Query()]) -> dict[str, Any]:
        """Search with text or a product (`like`), filters and fusion options, as `mmsearch query --json`."""
        return (await live.run(search, live, params)).to_dict()

    @app.post("/api/search", summary="Search with a photo, sound or spoken query", response_model=None, responses={200: {"model": SearchBody}, **_errors(400, 413, 422, 500)})
    async def api_search_upload(params: Annotated[UploadParams, Form(media_type="multipart/form-data")]) -> dict[str, Any]:
        """Search with an uploaded image, sound clip and/or spoken query (plus any field of GET /api/search)."""
        files = {"image": _given(params.image), "audio": _given(params.audio), "voice": _given(params.voice)}
        async with saved(files, max_upload_bytes) as uploads:
            return (await search_with(live, params, uploads)).to_dict()

    @app.get("/api/products/{product_id:path}", summary="A product", response_model=None, responses={200: {"model": ProductBody}, **_errors(404, 422)})
    async def api_product(product_id: str) -> dict[str, Any]:
        """One product's catalog row, with its media URLs."""
        return await live.run(product, live, product_id)

    @app.get("/api/health", summary="Health", response_model=None, responses={200: {"model": HealthBody}, **_errors(500)})
    async def api_health() -> dict[str, Any]:
        """The store, its live index generation, and how many products and items it holds."""
        return await live.run(health, live)

    @app.get("/media/{product_id:path}/{kind}/{n:int}", summary="A media file", response_class=FileResponse, responses=_errors(404, 422))
    async def media(product_id: str, kind: str, n: int) -> FileResponse:
        """A product's n-th image or audio file (kind: image or audio), as the catalog registered it."""
        path = await live.run(media_file, live, product_id, kind, n)
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media_type, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})

    # -- the page -----------------------------------------------------------------
    async def show(fields: Mapping[str, Any], getlist: Any, file: UploadFile | None = None, voice: UploadFile | None = None) -> HTMLResponse:
        state = PageState()
        try:
            state.params = params = page_params(fields, getlist)
            if params.q or params.like or file is not None or voice is not None:
                kind = upload_kind(file) if file is not None else None
                files = {**({kind: file} if kind else {}), **({"voice": voice} if voice is not None else {})}
                async with saved(files, max_upload_bytes) as uploads:
                    if kind == "image":
                        state.query_image = await run_in_threadpool(views.FileMedia().file, uploads[kind].path, kind)
                    state.answer = await search_with(live, params, uploads)
                named = Path(file.filename or kind or "") if file is not None else None
                heard = state.answer.voice.text if state.answer.voice else params.q
                state.label = views.query_label(
                    SearchQuery(heard, named if kind == "image" else None, named if kind == "audio" else None, params.like)
                )
        except ValidationError as exc:
            state.error, state.status = validation_line(exc.errors()), 422
        except MMSearchError as exc:
            state.error, state.status = one_line(exc), status_of(exc)
        except HTTPException as exc:
            state.error, state.status = one_line(exc.detail), exc.status_code
        return await page.render(state)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def search_page(request: Request) -> HTMLResponse:
        return await show(request.query_params, request.query_params.getlist)

    @app.post("/", response_class=HTMLResponse, include_in_schema=False)
    async def search_page_upload(request: Request) -> HTMLResponse:
        try:
            async with request.form() as form:  # its spooled files are closed after
                return await show(form, form.getlist, _given(form.get("file")), _given(form.get("voice")))
        except HTTPException as exc:  # the body went over the limit while it was read
            return await page.render(PageState(error=one_line(exc.detail), status=exc.status_code))

    return app


# -- running -------------------------------------------------------------------------
def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), or one line saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(2048)
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        raise MMSearchError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): choose another --host or --port") from None
    return sock


def url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(app: FastAPI, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until interrupted (uvicorn; its access log is off)."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
