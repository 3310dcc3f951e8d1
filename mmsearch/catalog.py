"""The catalog: reading a product CSV, validating rows, and upserting them into SQLite.

A bad row never stops an ingest: it becomes a Reject (line, column, reason) and every
valid row is stored. A bad *file* (wrong encoding, no id column, empty) stops the run
before anything is written, so nothing already stored is lost, and so does a --prune
that would remove most of the store (unless forced).
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import language
from .errors import ExitCode, MMSearchError
from .media import (
    FileHashes,
    MediaError,
    MediaNotFound,
    check_media,
    resolve_media_path,
)
from .options import parse_pairs
from .store import Store

if TYPE_CHECKING:
    import pandas as pd

FIELDS = ("id", "title", "description", "category", "brand", "price", "image", "audio")
TEXT_FIELDS = ("title", "description", "category", "brand")
MEDIA_KINDS = ("image", "audio")
MAX_FIELD_CHARS = 100_000
# A hint that --media-dir is wrong when at least this many media paths, and at least half
# of those looked up, name no file.
MISSING_MEDIA_HINT = 3

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
class Columns:
    """How CSV columns are read: ``mapping`` {field: column} (--map) and ``ignore``, the
    columns neither stored nor indexed (--ignore). The store remembers both from the last
    ingest; ``remembered`` names those ("map", "ignore") that were taken from it."""

    mapping: dict[str, str] = field(default_factory=dict)
    ignore: list[str] = field(default_factory=list)
    remembered: list[str] = field(default_factory=list)

    def note(self, option: str) -> str:
        """Where a setting came from, for an error about it."""
        if option not in self.remembered:
            return ""
        return f" (--{option} remembered from an earlier ingest: pass --{option} to replace it)"


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    columns: Columns = field(default_factory=Columns)
    media_dir: str = ""
    hints: list[str] = field(default_factory=list)  # printed once, after the report
    dry_run: bool = False
    #: the catalog's languages after this ingest (language.py); None on a dry run
    languages: dict[str, Any] | None = None

    def summary(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": self.unchanged,
            "removed": len(self.removed),
            "rejected": len(self.rejects),
        }

    def to_dict(self) -> dict[str, Any]:
        """The --json summary: the counts, the removed ids, how the columns were read, hints, rejects."""
        return {
            **self.summary(),
            "removed_ids": self.removed,
            "dry_run": self.dry_run,
            "map": self.columns.mapping,
            "ignore": self.columns.ignore,
            "remembered": self.columns.remembered,
            "media_dir": self.media_dir,
            "hints": self.hints,
            "languages": self.languages,
            "rejects": [r.__dict__ for r in self.rejects],
        }


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """Parse repeated ``FIELD=COLUMN`` options into {field: column}; an empty item
    (``--map ''``) stands for no mapping."""
    mapping = parse_pairs([item for item in items if item.strip()], "--map", "title=productDisplayName", "FIELD=COLUMN")
    for name, column in mapping.items():
        if name not in FIELDS:
            raise MMSearchError(f"--map {name}={column}: unknown field {name!r}; fields are {', '.join(FIELDS)}", ExitCode.USAGE)
        if not column:
            raise MMSearchError(f"--map {name}=: name the CSV column to read {name} from, e.g. --map title=productDisplayName", ExitCode.USAGE)
    return mapping


def column_settings(store: Store, mapping: dict[str, str] | None, ignore: Iterable[str] | None) -> Columns:
    """The --map and --ignore to read the CSV with: those given (None: not given), else
    those the store remembers, so that a re-ingest without them reads it the same way."""
    saved = store.manifest().get("ingest", {})
    remembered = [name for name, given in (("map", mapping), ("ignore", ignore)) if given is None and saved.get(name)]
    return Columns(
        dict(saved.get("map", {})) if mapping is None else dict(mapping),
        list(saved.get("ignore", [])) if ignore is None else [c.strip() for c in ignore if c.strip()],
        remembered,
    )


def remember_columns(store: Store, columns: Columns) -> None:
    """Keep the settings of this ingest in the store's manifest for the next one."""
    manifest = store.manifest()
    settings = {"map": columns.mapping, "ignore": columns.ignore}
    if manifest.get("ingest", {"map": {}, "ignore": []}) != settings:
        manifest["ingest"] = settings
        store.write_manifest(manifest)


def read_catalog(path: Path, encoding: str | None = None) -> tuple[pd.DataFrame, list[int], dict[int, str]]:
    """Read the CSV as strings. Returns the rows, each row's starting line number, and
    {row index: reason} for rows that must be rejected because they have more fields
    than the header or a broken quote.

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
    (_, header, _), body = records[0], records[1:]
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
    row_errors: dict[int, str] = {}
    for start, cells, error in body:
        if error:
            row_errors[len(rows)] = error
        elif len(cells) != width and "".join(cells[width:]).strip():  # empty trailing cells are harmless
            row_errors[len(rows)] = (
                f"row has {len(cells)} fields but the header has {width}: "
                "quote fields that contain a comma, or add the missing header"
            )
        rows.append((cells + [""] * width)[:width])  # short rows: missing fields are empty
        lines.append(start)
    import pandas as pd  # here, not at the top: only ingest reads a CSV

    return pd.DataFrame(rows, columns=columns, dtype=str), lines, row_errors


def _read_records(path: Path, text: str) -> list[tuple[int, list[str], str | None]]:
    """(starting line, cells, why it cannot be read or None) of every non-blank record;
    records may span lines.

    The parser is strict, so a broken quote is caught at its record instead of silently
    merging the rows up to the next quote into one field (or all rows up to the end of
    the file). That record is rejected by its first line, its cells read from that line
    alone (so that its id is known), and reading starts again on the next line. The
    restart is trusted only if the lines the broken quote had swallowed, and the record
    after it, read back as whole rows (as many fields as the header): otherwise they may
    be the inside of a multi-line field, and the file is refused, naming the line.
    """
    lines = list(io.StringIO(text, newline=""))
    records: list[tuple[int, list[str], str | None]] = []
    swallowed: list[tuple[int, int, str]] = []  # (bad record's line, line where it failed, why)
    offset = 0
    while True:
        reader = csv.reader((lines[i] for i in range(offset, len(lines))), strict=True)
        previous_end = offset
        try:
            for cells in reader:
                start, previous_end = previous_end + 1, offset + reader.line_num
                if "".join(cells).strip():  # skip blank lines and rows of bare commas
                    records.append((start, cells, None))
            break
        except csv.Error as exc:
            start, failed = previous_end + 1, offset + reader.line_num
            reason = _record_problem(str(exc), start, failed)
            if not records:  # the header itself
                raise MMSearchError(f"{path} is not a readable CSV: {reason}") from None
            records.append((start, _cells_of_line(lines[start - 1]), reason))
            swallowed.append((start, failed, reason))
            offset = start
    starts = [start for start, _, _ in records]
    for bad, failed, reason in swallowed:
        first = bisect.bisect_right(starts, bad)
        after = records[first : max(first + 1, bisect.bisect_right(starts, failed))]
        if any(error is None and len(cells) != len(records[0][1]) for _, cells, error in after):
            raise MMSearchError(
                f"{path} is not a readable CSV: {reason} (the lines after line {bad} cannot be told apart "
                "from the inside of that field, so nothing was stored)"
            )
    return records


def _record_problem(error: str, start: int, failed: int) -> str:
    """A csv module error, said in terms of the CSV's lines."""
    if "unexpected end of data" in error:
        return f"the quoted field opened on line {start} is never closed: add the missing '\"'"
    if "expected after" in error and failed == start:
        return f"on line {start} a '\"' ends a quoted field but more text follows it: inside quotes write a '\"' as '\"\"'"
    if "expected after" in error:
        return (
            f"the quoted field opened on line {start} runs on to line {failed}, where a '\"' ends it but more "
            f"text follows: close it on line {start}, and inside quotes write a '\"' as '\"\"'"
        )
    return f"the record on line {start} cannot be read ({error})"


def _cells_of_line(line: str) -> list[str]:
    """The cells of one physical line, read leniently (a broken record's id, for --prune)."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return []


class _MediaFiles:
    """A catalog's media files: resolved under the media folder (counting paths that name
    no file), hashed (FileHashes: an unchanged file is not read again) and fully decoded
    unless the same content already passed (a re-ingest of an unchanged catalog neither
    re-reads nor re-decodes media)."""

    def __init__(self, store: Store, media_dir: Path):
        self.root = media_dir.resolve()
        self.hashes = FileHashes(store)
        self._checked = {(kind, digest) for kind, digest in store.db.execute("SELECT DISTINCT kind, sha256 FROM media")}
        self.looked_up = self.missing = 0

    def resolve(self, raw: str) -> Path:
        self.looked_up += 1
        try:
            return resolve_media_path(self.root, raw)
        except MediaNotFound:
            self.missing += 1
            raise

    def describe(self, kind: str, position: int, path: Path) -> MediaFile:
        digest, stat = self.hashes.sha256(path)
        if (kind, digest) not in self._checked:
            check_media(kind, path)
            self._checked.add((kind, digest))
        return MediaFile(kind, position, str(path), digest, stat.st_size, stat.st_mtime_ns)

    def hint(self) -> str | None:
        """When most media paths name no file, the folder is more likely wrong than the files."""
        if self.missing < MISSING_MEDIA_HINT or 2 * self.missing < self.looked_up:
            return None
        return (
            f"{self.missing} of {self.looked_up} media files were not found under {self.root}: "
            "is --media-dir right? (media paths resolve against it; default: the CSV's folder)"
        )


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
    columns: dict[str, str],
    files: _MediaFiles,
    progress: Callable[[], None] = lambda: None,
    row_errors: dict[int, str] | None = None,
) -> tuple[list[Product], list[Reject]]:
    """Validate every row of ``frame`` (ignored columns already dropped). Returns the
    valid products and the rejects. ``row_errors`` ({row index: reason}) rejects rows
    that read_catalog already found unusable."""
    attribute_columns = [c for c in frame.columns if c not in set(columns.values())]
    products: list[Product] = []
    rejects: list[Reject] = []
    first_line: dict[str, int] = {}
    for index, row in enumerate(frame.to_dict("records")):
        line = lines[index] if index < len(lines) else index + 2
        pid = row[columns["id"]].strip()
        try:
            if row_errors and index in row_errors:
                raise _RowError("", row_errors[index])
            product = _parse_row(row, pid, columns, attribute_columns, files)
            if pid in first_line:
                raise _RowError("id", f"duplicate id {pid!r} (first on line {first_line[pid]})")
        except _RowError as exc:
            rejects.append(Reject(line, exc.column, exc.reason, pid))
        else:
            products.append(product)
        if pid:
            first_line.setdefault(pid, line)
        progress()
    return products, rejects


def check_columns(frame: pd.DataFrame, settings: Columns) -> dict[str, str]:
    """{field: column}, after checking that the id column and every --map column exist,
    and that --ignore names columns that are there and that no field is read from."""
    mapping = settings.mapping
    columns = {f: mapping.get(f, f) for f in FIELDS}
    if columns["id"] not in frame.columns:
        hint = "map it with --map id=COLUMN" if "id" not in mapping else f"check --map id={columns['id']}"
        raise MMSearchError(
            f"catalog has no {columns['id']!r} column (columns: {', '.join(map(str, frame.columns))}): "
            f"{hint}{settings.note('map')}"
        )
    for name, column in mapping.items():
        if column not in frame.columns:
            raise MMSearchError(f"--map {name}={column}: the catalog has no column {column!r}{settings.note('map')}")
    for column in settings.ignore:
        if column == columns["id"]:
            raise MMSearchError(f"--ignore {column}: it is the id column, which every product needs{settings.note('ignore')}")
        if column in mapping.values():
            raise MMSearchError(f"--ignore {column}: --map reads a field from it{settings.note('ignore')}")
        if column not in frame.columns and "ignore" not in settings.remembered:  # a remembered one may be gone
            raise MMSearchError(f"--ignore {column}: the catalog has no column {column!r}")
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
    files: _MediaFiles,
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
                path = files.resolve(raw)  # its reasons quote the path already
            except MediaError as exc:
                raise _RowError(columns[kind], str(exc)) from None
            try:
                media.append(files.describe(kind, position, path))
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


def upsert(store: Store, products: list[Product], removed: list[str], hashes: FileHashes, dry_run: bool = False) -> IngestReport:
    """Write products in one transaction: add new, update changed, leave unchanged
    alone, delete the ``removed`` ids, record the media hashes taken. With ``dry_run``,
    only say what that would do."""
    report = IngestReport(removed=removed, dry_run=dry_run)
    stored = dict(store.db.execute("SELECT id, content_hash FROM products"))
    changed = []
    for product in products:
        digest = product.content_hash()
        previous = stored.get(product.id)
        if previous == digest:
            report.unchanged += 1
            continue
        (report.added if previous is None else report.updated).append(product.id)
        changed.append((product, digest))
    if dry_run:
        return report
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    with store.transaction() as db:
        for product, digest in changed:
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
        db.executemany("DELETE FROM products WHERE id = ?", [(pid,) for pid in removed])
        hashes.save(db)
        db.execute("DELETE FROM file_hashes WHERE path NOT IN (SELECT path FROM media)")
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
    *,
    ignore: Iterable[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> IngestReport:
    """Read, validate and upsert a catalog CSV. ``mapping`` and ``ignore`` None mean those
    the store remembers from the last ingest; ``force`` lets --prune remove more than half
    of the store; ``dry_run`` reports what would change and writes nothing (not even a
    store that does not exist yet). ``progress`` is a rich Progress or None."""
    args = (catalog, media_dir, mapping, encoding, prune, progress, ignore, force, dry_run)
    if not (dry_run and not store.exists()):
        return _ingest(store, *args)
    with tempfile.TemporaryDirectory(prefix="mmsearch-dry-run-") as scratch:  # everything would be added
        throwaway = Store(scratch)
        try:
            return _ingest(throwaway, *args)
        finally:
            throwaway.close()


def _ingest(
    store: Store,
    catalog: Path,
    media_dir: Path | None,
    mapping: dict[str, str] | None,
    encoding: str | None,
    prune: bool,
    progress: Any,
    ignore: Iterable[str] | None,
    force: bool,
    dry_run: bool,
) -> IngestReport:
    frame, lines, row_errors = read_catalog(catalog, encoding)
    media_dir = media_dir or catalog.parent
    if not media_dir.is_dir():
        raise MMSearchError(f"media folder {media_dir} does not exist: pass --media-dir")
    if prune and frame.empty:
        # A header-only file is most often a failed export; pruning with it would empty
        # the store. Without --prune it is harmless: nothing to do.
        stored = _stored_count(store)
        if stored:
            raise MMSearchError(
                f"{catalog} has no product rows: refusing to --prune all {stored} stored products "
                "(run without --prune; to empty the store, delete its folder)"
            )
    settings = column_settings(store, mapping, ignore)
    try:  # before the progress bar starts, so that the error is the only line printed
        columns = check_columns(frame, settings)
    except MMSearchError as exc:  # a missing column is a file-level error: name the file
        raise MMSearchError(f"{catalog}: {exc}", exc.exit_code) from None
    frame = frame.drop(columns=[c for c in settings.ignore if c in frame.columns])
    hints: list[str] = []
    removed = _pruned(store, frame[columns["id"]]) if prune else []
    if 2 * len(removed) > (stored := _stored_count(store)) and not force:
        # Most of the store gone is more likely a truncated or wrong export than a
        # shop that dropped most of its range overnight.
        refusal = (
            f"--prune would remove {len(removed)} of the {stored} stored products (not in {catalog}): "
            "check that it is the whole catalog (--dry-run lists them), or pass --force to remove them"
        )
        if not dry_run:
            raise MMSearchError(refusal)
        hints.append(f"without --dry-run this is refused: {refusal}")
    task = progress.add_task("ingest", total=len(frame)) if progress else None
    advance = (lambda: progress.advance(task)) if progress else (lambda: None)
    files = _MediaFiles(store, media_dir)
    products, rejects = parse_rows(frame, lines, columns, files, advance, row_errors)
    report = upsert(store, products, removed, files.hashes, dry_run)
    if not dry_run:
        remember_columns(store, settings)
        report.languages = language.record(store, changed=bool(report.added or report.updated or report.removed))
    if hint := files.hint():
        hints.append(hint)
    report.rejects, report.columns, report.media_dir, report.hints = rejects, settings, str(files.root), hints
    return report


def _pruned(store: Store, ids: Iterable[str]) -> list[str]:
    """The stored ids that --prune removes: those not in the CSV. A row that is rejected
    still counts as there, so its stored product is kept."""
    seen = {pid.strip() for pid in ids}
    return sorted({pid for (pid,) in store.db.execute("SELECT id FROM products")} - seen)


def _stored_count(store: Store) -> int:
    return store.db.execute("SELECT count(*) FROM products").fetchone()[0]
