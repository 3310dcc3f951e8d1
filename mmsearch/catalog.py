"""The catalog: reading a product CSV, validating rows, and upserting them into SQLite.

A bad row never stops an ingest: it becomes a Reject (line, column, reason) and every
valid row is stored. A bad *file* (wrong encoding, no id column, empty) stops the run
before anything is written, so nothing already stored is lost.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import MMSearchError
from .media import MediaError, check_media, resolve_media_path
from .store import Store, sha256_file

if TYPE_CHECKING:
    import pandas as pd

FIELDS = ("id", "title", "description", "category", "brand", "price", "image", "audio")
TEXT_FIELDS = ("title", "description", "category", "brand")
MEDIA_KINDS = ("image", "audio")
MAX_FIELD_CHARS = 100_000

csv.field_size_limit(sys.maxsize)


@dataclass
class Reject:
    """One refused CSV row: where it is and why."""

    line: int
    column: str
    reason: str
    product_id: str = ""


@dataclass
class MediaFile:
    kind: str
    position: int
    path: str
    sha256: str
    size: int
    mtime_ns: int


@dataclass
class Product:
    id: str
    title: str = ""
    description: str = ""
    category: str = ""
    brand: str = ""
    price: float | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    media: list[MediaFile] = field(default_factory=list)

    def content_hash(self) -> str:
        payload = {
            "fields": [self.id, self.title, self.description, self.category, self.brand, self.price],
            "attributes": self.attributes,
            "media": [(m.kind, m.position, m.sha256) for m in self.media],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def product_text(row: dict[str, Any], fields: Iterable[str] | None = None) -> str:
    """The text that stands for a product in the text embedding and in BM25.

    ``fields`` names core fields and attribute columns; None means the core text fields
    followed by every attribute, written as "column: value" so that the dense model sees
    what each value is.
    """
    attrs = row["attributes"]
    if isinstance(attrs, str):
        attrs = json.loads(attrs)
    names = list(fields) if fields is not None else [*TEXT_FIELDS, *sorted(attrs)]
    parts = []
    for name in names:
        if name in TEXT_FIELDS:
            value = row[name]
            if value:
                parts.append(str(value))
        elif attrs.get(name):
            parts.append(f"{name}: {attrs[name]}")
    return ". ".join(parts)


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": self.unchanged,
            "removed": len(self.removed),
            "rejected": len(self.rejects),
        }


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """Parse repeated ``FIELD=COLUMN`` options into {field: column}."""
    mapping: dict[str, str] = {}
    for item in items:
        name, sep, column = item.partition("=")
        if not sep or not column.strip():
            raise MMSearchError(f"--map {item!r}: expected FIELD=COLUMN, e.g. --map title=productDisplayName")
        if name.strip() not in FIELDS:
            raise MMSearchError(f"--map {item!r}: unknown field {name!r}; fields are {', '.join(FIELDS)}")
        mapping[name.strip()] = column.strip()
    return mapping


def read_catalog(path: Path, encoding: str | None = None) -> tuple[pd.DataFrame, list[int], dict[int, str]]:
    """Read the CSV as strings. Returns the rows, each row's starting line number, and
    {row index: reason} for rows that must be rejected because they have more fields
    than the header.

    One parser (the csv module) yields both the records and their line numbers. They
    used to come from two (pandas for records, csv.reader for lines), which disagreed:
    a row of bare commas shifted every later reported line, a first row with one extra
    field made pandas use the id column as the index (every field shifted by one,
    silently), a later row with extra fields failed the whole file, and a file with
    CR-only line ends crashed the line counter with a traceback.
    """
    if not path.is_file():
        raise MMSearchError(f"catalog {path} not found")
    raw = path.read_bytes()
    enc = encoding or "utf-8-sig"  # utf-8-sig reads plain UTF-8 and strips a BOM
    try:
        text = raw.decode(enc)
    except UnicodeDecodeError as exc:
        raise MMSearchError(
            f"{path} is not valid {enc} (byte {raw[exc.start]:#04x} at offset {exc.start}): "
            "pass its encoding, e.g. --encoding latin-1 or --encoding gbk"
        ) from None
    except LookupError:
        raise MMSearchError(f"--encoding {encoding!r} is not an encoding Python knows") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise MMSearchError(f"{path} is empty: a catalog needs a header row and at least one product")
    records = _read_records(path, text)
    if not records:
        raise MMSearchError(f"{path} has no header row: a catalog needs a header row and at least one product")
    (_, header), body = records[0], records[1:]
    columns: list[str] = []
    for position, base in enumerate(header):  # pandas' names for blank and repeated headers
        base = base or f"Unnamed: {position}"
        name, n = base, 0
        while name in columns:
            n += 1
            name = f"{base}.{n}"
        columns.append(name)
    width = len(columns)
    rows: list[list[str]] = []
    lines: list[int] = []
    too_wide: dict[int, str] = {}
    for start, cells in body:
        if len(cells) != width:
            if "".join(cells[width:]).strip():  # empty trailing cells are harmless
                too_wide[len(rows)] = (
                    f"row has {len(cells)} fields but the header has {width}: "
                    "quote fields that contain a comma, or add the missing header"
                )
            cells = (cells + [""] * width)[:width]  # short rows: missing fields are empty
        rows.append(cells)
        lines.append(start)
    import pandas as pd  # here, not at the top: only ingest reads a CSV

    return pd.DataFrame(rows, columns=columns, dtype=str), lines, too_wide


def _read_records(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """(starting line, cells) of every non-blank record; records may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""))
    records, previous_end = [], 0
    try:
        for cells in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if "".join(cells).strip():  # skip blank lines and rows of bare commas
                records.append((start, cells))
    except csv.Error as exc:
        raise MMSearchError(f"{path} is not a readable CSV (line {reader.line_num}: {exc})") from None
    if records:
        # Non-strict csv reads an unclosed quote as one field running to the end of the
        # file, silently swallowing every later row; parse the last record strictly to
        # tell. (Only the last record can hold an unclosed quote: it runs to EOF.)
        last = records[-1][0]
        tail = "".join(itertools.islice(io.StringIO(text, newline=""), last - 1, None))
        try:
            for _ in csv.reader(io.StringIO(tail, newline=""), strict=True):
                pass
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise MMSearchError(
                    f"{path} is not a readable CSV: a quoted field in the record starting on line {last} "
                    "is never closed (add the missing '\"')"
                ) from None
    return records


class _MediaCache:
    """Reuse a file's stored hash when its path, size and mtime are unchanged, so a
    re-ingest of an unchanged catalog neither re-hashes nor re-decodes media."""

    def __init__(self, store: Store):
        self._known = {
            (r["path"], r["size"], r["mtime_ns"]): r["sha256"]
            for r in store.db.execute("SELECT path, size, mtime_ns, sha256 FROM media")
        }

    def describe(self, kind: str, position: int, path: Path) -> MediaFile:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        digest = self._known.get(key)
        if digest is None:
            check_media(kind, path)
            digest = sha256_file(path)
        return MediaFile(kind, position, str(path), digest, stat.st_size, stat.st_mtime_ns)


def _parse_price(raw: str) -> float | None:
    if not raw.strip():
        return None
    try:
        price = float(raw.strip())
    except ValueError:
        raise ValueError(f"price {raw.strip()[:40]!r} is not a number: use digits with '.' for decimals") from None
    if not math.isfinite(price):
        raise ValueError(f"price {raw.strip()!r} is not a finite number")
    if price < 0:
        raise ValueError(f"price {price:g} is negative")
    return price


def parse_rows(
    frame: pd.DataFrame,
    lines: list[int],
    media_dir: Path,
    mapping: dict[str, str],
    store: Store,
    progress: Callable[[], None] = lambda: None,
    row_errors: dict[int, str] | None = None,
) -> tuple[list[Product], list[Reject], set[str]]:
    """Validate every row. Returns the valid products, the rejects, and every id seen
    (valid or not), which --prune must not remove. ``row_errors`` ({row index: reason})
    rejects rows that read_catalog already found unusable."""
    columns = check_columns(frame, mapping)
    attribute_columns = [c for c in frame.columns if c not in set(columns.values())]
    cache = _MediaCache(store)
    products: list[Product] = []
    rejects: list[Reject] = []
    first_line: dict[str, int] = {}
    for index, row in enumerate(frame.to_dict("records")):
        line = lines[index] if index < len(lines) else index + 2
        pid = row[columns["id"]].strip()
        try:
            if row_errors and index in row_errors:
                raise _RowError("", row_errors[index])
            product = _parse_row(row, pid, columns, attribute_columns, media_dir, cache)
            if pid in first_line:
                raise _RowError("id", f"duplicate id {pid!r} (first on line {first_line[pid]})")
        except _RowError as exc:
            rejects.append(Reject(line, exc.column, exc.reason, pid))
        else:
            products.append(product)
        if pid:
            first_line.setdefault(pid, line)
        progress()
    return products, rejects, set(first_line)


def check_columns(frame: pd.DataFrame, mapping: dict[str, str]) -> dict[str, str]:
    """{field: column}, after checking that the id column and every --map column exist."""
    columns = {f: mapping.get(f, f) for f in FIELDS}
    if columns["id"] not in frame.columns:
        hint = "map it with --map id=COLUMN" if "id" not in mapping else "check the --map id=... column name"
        raise MMSearchError(
            f"catalog has no {columns['id']!r} column (columns: {', '.join(map(str, frame.columns))}): {hint}"
        )
    for name, column in mapping.items():
        if column not in frame.columns:
            raise MMSearchError(f"--map {name}={column}: the catalog has no column {column!r}")
    return columns


class _RowError(Exception):
    def __init__(self, column: str, reason: str):
        reason = " ".join(reason.splitlines())  # a reject is one line, whatever a decoder said
        super().__init__(reason)
        self.column, self.reason = column, reason


def _parse_row(
    row: dict[str, str],
    pid: str,
    columns: dict[str, str],
    attribute_columns: list[str],
    media_dir: Path,
    cache: _MediaCache,
) -> Product:
    if not pid:
        raise _RowError(columns["id"], "missing id")
    for column, value in row.items():
        if len(value) > MAX_FIELD_CHARS:
            raise _RowError(str(column), f"field is {len(value):,} characters (limit {MAX_FIELD_CHARS:,})")

    def get(name: str) -> str:
        column = columns[name]
        return row[column].strip() if column in row else ""

    try:
        price = _parse_price(get("price"))
    except ValueError as exc:
        raise _RowError(columns["price"], str(exc)) from None
    media: list[MediaFile] = []
    for kind in MEDIA_KINDS:
        paths = [p for p in get(kind).split("|") if p.strip()]
        for position, raw in enumerate(paths):
            try:
                path = resolve_media_path(media_dir, raw)  # its reasons quote the path already
            except MediaError as exc:
                raise _RowError(columns[kind], str(exc)) from None
            try:
                media.append(cache.describe(kind, position, path))
            except MediaError as exc:
                # Name the file: a cell may list several ("a.jpg|b.jpg").
                raise _RowError(columns[kind], f"{raw.strip()!r}: {exc}") from None
            except OSError as exc:
                raise _RowError(columns[kind], f"{raw!r} is unreadable ({exc.strerror})") from None
    return Product(
        id=pid,
        title=get("title"),
        description=get("description"),
        category=get("category"),
        brand=get("brand"),
        price=price,
        attributes={str(c): row[c].strip() for c in attribute_columns if row[c].strip()},
        media=media,
    )


def upsert(store: Store, products: list[Product], keep_ids: set[str], prune: bool) -> IngestReport:
    """Write products in one transaction: add new, update changed, leave unchanged
    alone; with ``prune``, delete products whose id is not in ``keep_ids``."""
    report = IngestReport()
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    with store.transaction() as db:
        stored = dict(db.execute("SELECT id, content_hash FROM products"))
        for product in products:
            digest = product.content_hash()
            previous = stored.get(product.id)
            if previous == digest:
                report.unchanged += 1
                continue
            (report.added if previous is None else report.updated).append(product.id)
            db.execute("DELETE FROM products WHERE id = ?", (product.id,))
            db.execute(
                "INSERT INTO products (id, title, description, category, brand, price, attributes,"
                " content_hash, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    product.id,
                    product.title,
                    product.description,
                    product.category,
                    product.brand,
                    product.price,
                    json.dumps(product.attributes, ensure_ascii=False, sort_keys=True),
                    digest,
                    now,
                ),
            )
            db.executemany(
                "INSERT INTO media (product_id, kind, position, path, sha256, size, mtime_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(product.id, m.kind, m.position, m.path, m.sha256, m.size, m.mtime_ns) for m in product.media],
            )
        if prune:
            report.removed = sorted(set(stored) - keep_ids)
            db.executemany("DELETE FROM products WHERE id = ?", [(pid,) for pid in report.removed])
    return report


def iter_products(store: Store) -> Iterator[dict[str, Any]]:
    for row in store.db.execute("SELECT * FROM products ORDER BY id"):
        yield dict(row)


def write_rejects(path: Path, rejects: list[Reject]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["line", "column", "product_id", "reason"])
        for r in rejects:
            writer.writerow([r.line, r.column, r.product_id, r.reason])


def ingest(
    store: Store,
    catalog: Path,
    media_dir: Path | None = None,
    mapping: dict[str, str] | None = None,
    encoding: str | None = None,
    prune: bool = False,
    progress: Any = None,
) -> IngestReport:
    """Read, validate and upsert a catalog CSV. ``progress`` is a rich Progress or None."""
    frame, lines, row_errors = read_catalog(catalog, encoding)
    media_dir = media_dir or catalog.parent
    if not media_dir.is_dir():
        raise MMSearchError(f"media folder {media_dir} does not exist: pass --media-dir")
    if prune and frame.empty:
        # A header-only file is most often a failed export; pruning with it would empty
        # the store. Without --prune it is harmless: nothing to do.
        stored = store.db.execute("SELECT count(*) FROM products").fetchone()[0]
        if stored:
            raise MMSearchError(
                f"{catalog} has no product rows: refusing to --prune all {stored} stored products "
                "(run without --prune; to empty the store, delete its folder)"
            )
    try:  # before the progress bar starts, so that the error is the only line printed
        check_columns(frame, mapping or {})
    except MMSearchError as exc:  # a missing column is a file-level error: name the file
        raise MMSearchError(f"{catalog}: {exc}", exc.exit_code) from None
    task = progress.add_task("ingest", total=len(frame)) if progress else None
    advance = (lambda: progress.advance(task)) if progress else (lambda: None)
    products, rejects, seen = parse_rows(frame, lines, media_dir, mapping or {}, store, advance, row_errors)
    report = upsert(store, products, seen, prune)
    report.rejects = rejects
    return report
