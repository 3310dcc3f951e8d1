"""The store: one folder holding the catalog database, the store manifest and the indexes.

Layout (see README "Store layout")::

    STORE/
      catalog.db      SQLite: products, media, vectors (float32 blobs), embed failures
      manifest.json   models in use per modality and the text fields that are embedded
      lock, lock.json the writer lock and who holds it
      indexes/        one folder per index generation, CURRENT names the live one

SQLite runs in WAL mode so that readers (query, eval, status) are never blocked by the
single writer (ingest, embed, index), which holds a file lock for the whole command.
Readers open catalog.db read-only, so they work on a store they cannot write (a folder
shared read-only) and can never change one. catalog.db records the store's format
(``PRAGMA user_version``); a store of another format is refused, not misread.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .errors import ExitCode, MMSearchError, StoreLockedError

STORE_ENV = "MMSEARCH_STORE"
DEFAULT_STORE = "mmsearch-store"
FORMAT_VERSION = 1
#: the format of stores written before catalog.db recorded one (user_version 0)
UNRECORDED_FORMAT = 1
#: os.access checks the effective uid where it can: that is whose rights a write uses
_EFFECTIVE_IDS = os.access in os.supports_effective_ids
#: SQLite error names (Python 3.11+) and messages that mean the file itself is damaged
_CORRUPT = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
#: (mmsearch writes only UTF-8 text: text that does not decode is a damaged page)
_CORRUPT_MESSAGES = ("malformed", "file is not a database", "Could not decode to UTF-8")

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY,
    title TEXT,
    description TEXT,
    category TEXT,
    brand TEXT,
    price REAL,
    attributes TEXT NOT NULL DEFAULT '{}',  -- JSON object: every other CSV column
    content_hash TEXT NOT NULL,             -- hash of all fields and media hashes
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS media (
    product_id TEXT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('image', 'audio')),
    position INTEGER NOT NULL,
    path TEXT NOT NULL,                     -- resolved absolute path
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,              -- the file's size and mtime when it was hashed
    PRIMARY KEY (product_id, kind, position)
);
CREATE TABLE IF NOT EXISTS file_hashes (    -- media.FileHashes: a file is re-read only when it may have changed
    path TEXT PRIMARY KEY,                  -- resolved absolute path
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    hashed_ns INTEGER NOT NULL              -- when it was hashed (the racy-clean rule needs it)
);
CREATE TABLE IF NOT EXISTS rebuilt (        -- items a same-model `embed --rebuild` in progress has re-embedded
    modality TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    PRIMARY KEY (modality, content_hash)
);
CREATE TABLE IF NOT EXISTS vectors (
    modality TEXT NOT NULL,
    content_hash TEXT NOT NULL,             -- sha256 of the text or media file embedded
    model TEXT NOT NULL,                    -- encoder id that made the vector
    vector BLOB NOT NULL,                   -- little-endian float32, L2-normalised
    PRIMARY KEY (modality, content_hash)
);
CREATE TABLE IF NOT EXISTS failures (
    modality TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    model TEXT NOT NULL,
    path TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (modality, content_hash)
);
CREATE TABLE IF NOT EXISTS image_info (     -- duplicates.py: each image's size and perceptual hashes
    content_hash TEXT PRIMARY KEY,          -- sha256 of the image file
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    phash BLOB NOT NULL                     -- 256-bit phash of the image, then of its 90 % centre crop
);
"""
#: a table added after stores of this format were written: a reader of a store that no
#: writer has opened since sees it empty (as a TEMP table), so queries need no special case
SOUND_INFO = """
CREATE TABLE IF NOT EXISTS sound_info (     -- sound.py: each audio clip's AudioSet class scores and tags
    content_hash TEXT PRIMARY KEY,          -- sha256 of the audio file
    analysis TEXT NOT NULL,                 -- sound.ANALYSIS that made the row
    scores BLOB NOT NULL,                   -- little-endian float16, one per YAMNet class
    tags TEXT NOT NULL                      -- JSON list of class names, best first
);
"""


def resolve_store_path(path: Path | str | None) -> Path:
    """--store wins, then $MMSEARCH_STORE, then ./mmsearch-store."""
    if path:
        return Path(path)
    return Path(os.environ.get(STORE_ENV) or DEFAULT_STORE)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write beside the target, fsync, and rename into place, so a reader or a crash
    never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True).encode())


class Store:
    """A handle on a store folder. Cheap to create; opens SQLite lazily.

    ``read_only`` opens catalog.db read-only (the reader commands do), and a store whose
    folder or catalog.db this process cannot write is opened read-only in any case."""

    def __init__(self, root: Path | str, read_only: bool = False):
        self.root = Path(root)
        self.read_only = read_only
        self._db: sqlite3.Connection | None = None

    # -- paths ---------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.root / "catalog.db"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def indexes_dir(self) -> Path:
        return self.root / "indexes"

    def exists(self) -> bool:
        return self.db_path.exists()

    def require(self) -> "Store":
        """There is a store here, and this mmsearch reads its format."""
        self._check_not_a_file()
        if not self.exists():
            raise MMSearchError(
                f"no store at {self.root}: run `mmsearch ingest CATALOG.csv --store {self.root}` first"
            )
        self.db  # opening it checks the format
        return self

    def writable(self) -> bool:
        """Can this process change the store: its folder, and catalog.db, the lock file
        and indexes/ where they exist? (Files are replaced by renames in their folder.)"""
        paths = [self.root, *(p for p in (self.db_path, self.root / "lock", self.indexes_dir) if p.exists())]
        return all(os.access(p, os.W_OK, effective_ids=_EFFECTIVE_IDS) for p in paths)

    def _check_not_a_file(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise MMSearchError(
                f"store {self.root} is a file, not a store folder: pass --store a folder (ingest creates it)",
                ExitCode.USAGE,
            )

    def _make_folder(self) -> None:
        self._check_not_a_file()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MMSearchError(f"cannot create the store folder {self.root} ({exc.strerror}): pass --store a folder you can write") from None

    # -- database ------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            if self.read_only or (self.exists() and not self.writable()):
                self._db = self._open_reader()
            else:
                self._db = self._open_writer()
        return self._db

    def _open_reader(self) -> sqlite3.Connection:
        """Read-only, no WAL pragma, no schema. SQLite reads a WAL database through its
        -shm file, which it cannot create in a folder it cannot write: there the file is
        opened as immutable, which is exact while no -wal holds commits it lacks."""
        uri = f"{self.db_path.absolute().as_uri()}?mode=ro"
        wal = self.db_path.with_name(f"{self.db_path.name}-wal")
        if not os.access(self.root, os.W_OK, effective_ids=_EFFECTIVE_IDS) and not (wal.exists() and wal.stat().st_size):
            uri += "&immutable=1"
        db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            self._check_format(db.execute("PRAGMA user_version").fetchone()[0] or UNRECORDED_FORMAT, self.db_path)
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sound_info'").fetchone() is None:
                db.execute(SOUND_INFO.replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE", 1))
        except BaseException:
            db.close()
            raise
        return db

    def _open_writer(self) -> sqlite3.Connection:
        self._make_folder()
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            recorded = db.execute("PRAGMA user_version").fetchone()[0]
            fresh = not recorded and db.execute("SELECT 1 FROM sqlite_master").fetchone() is None
            self._check_format(recorded or (FORMAT_VERSION if fresh else UNRECORDED_FORMAT), self.db_path)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(SCHEMA + SOUND_INFO)
            if recorded != FORMAT_VERSION:
                db.execute(f"PRAGMA user_version = {int(FORMAT_VERSION)}")
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _check_format(found: int, source: Path) -> None:
        """A store of another format is refused with what to do: no migration exists yet."""
        if found > FORMAT_VERSION:
            raise MMSearchError(
                f"{source} is in store format {found}, newer than this mmsearch reads ({FORMAT_VERSION}): "
                "upgrade mmsearch (pip install -U mmsearch)"
            )
        if found < FORMAT_VERSION:
            raise MMSearchError(
                f"{source} is in store format {found}, older than this mmsearch reads ({FORMAT_VERSION}): "
                "ingest the catalog into a new store (`mmsearch ingest CATALOG.csv --store NEW`, then embed and index), "
                "or use the mmsearch version that wrote it"
            )

    @staticmethod
    def is_corrupt(exc: sqlite3.DatabaseError) -> bool:
        """Does this SQLite error mean catalog.db itself is damaged?"""
        name = getattr(exc, "sqlite_errorname", "") or ""
        return name.startswith(_CORRUPT) or (not name and any(m in str(exc) for m in _CORRUPT_MESSAGES))

    def corrupt_error(self, detail: str) -> MMSearchError:
        return MMSearchError(
            f"{self.db_path} is corrupt ({detail}): restore the store folder from a backup, or ingest the catalog "
            "into a new store (`mmsearch ingest CATALOG.csv --store NEW`, then embed and index)"
        )

    def database_error(self, exc: sqlite3.DatabaseError) -> MMSearchError | None:
        """The one line a user sees for an SQLite error on catalog.db; None for an error
        that is a bug (a misused API), which should surface as one."""
        if self.is_corrupt(exc):
            return self.corrupt_error(str(exc))
        if isinstance(exc, sqlite3.OperationalError):
            return MMSearchError(f"{self.db_path}: {exc}")
        return None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (unless SQLite has
        already rolled back, as it does on some errors: ROLLBACK would then fail and hide
        the error that matters)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def select_in(self, sql: str, values: Iterable[Any], params: Sequence[Any] = ()) -> Iterator[sqlite3.Row]:
        """Run ``sql`` (with ``{marks}`` where the IN list goes) over ``values`` in chunks
        that stay under SQLite's bound-parameter limit."""
        values = list(values)
        for start in range(0, len(values), 900):
            chunk = values[start : start + 900]
            yield from self.db.execute(sql.format(marks=",".join("?" * len(chunk))), (*params, *chunk))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- manifest ------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"format": FORMAT_VERSION, "models": {}, "text_fields": None}
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MMSearchError(
                # `embed` reads this file too, so it cannot rewrite it in place: the repair
                # is to remove it first (vectors are kept, keyed by model id).
                f"{self.manifest_path} is unreadable ({exc}): delete it and run `mmsearch embed` to rewrite it "
                "(with the same --text-fields and --*-model options as before, if any)"
            ) from exc
        self._check_format(manifest.get("format", FORMAT_VERSION), self.manifest_path)
        return manifest

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self._make_folder()
        write_json_atomic(self.manifest_path, manifest)

    # -- writer lock ---------------------------------------------------------
    @contextmanager
    def writer(self, command: str, wait: float = 0.0) -> Iterator["Store"]:
        """Hold the store's single-writer lock for the duration of a command.

        The lock is an OS file lock (filelock), so a killed process releases it. Who
        holds it is written to lock.json so that a second writer can name the holder.
        A store that exists is opened first: its format and header are checked before
        the command does any work.
        """
        self._make_folder()
        if self.read_only or not self.writable():
            raise MMSearchError(
                f"store {self.root} is read-only: `mmsearch {command}` changes it; "
                f"make it writable (chmod -R u+w {self.root}) or copy it to a writable folder"
            )
        lock = FileLock(self.root / "lock", timeout=wait if wait > 0 else 0)
        try:
            lock.acquire()
        except Timeout:
            raise StoreLockedError(
                f"store {self.root} is locked by {self._holder()}; "
                "wait for it to finish or pass --wait SECONDS"
            ) from None
        info = self.root / "lock.json"
        try:
            write_json_atomic(
                info,
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "command": command,
                    "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                },
            )
            if self.exists():
                self.db  # opening it checks the format and the header
            yield self
        finally:
            info.unlink(missing_ok=True)
            lock.release()

    def _holder(self) -> str:
        try:
            h = json.loads((self.root / "lock.json").read_text(encoding="utf-8"))
            return f"`mmsearch {h['command']}` (pid {h['pid']} on {h['host']}, since {h['since']})"
        except (OSError, ValueError, KeyError):
            return "another mmsearch process"
