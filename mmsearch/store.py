"""The store: one folder holding the catalog database, the store manifest and the indexes.

Layout (see README "Store layout")::

    STORE/
      catalog.db      SQLite: products, media, vectors (float32 blobs), embed failures
      manifest.json   models in use per modality and the text fields that are embedded
      lock, lock.json the writer lock and who holds it
      indexes/        one folder per index generation, CURRENT names the live one

SQLite runs in WAL mode so that readers (query, eval, status) are never blocked by the
single writer (ingest, embed, index), which holds a file lock for the whole command.
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

from .errors import MMSearchError, StoreLockedError

STORE_ENV = "MMSEARCH_STORE"
DEFAULT_STORE = "mmsearch-store"
FORMAT_VERSION = 1

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
    """A handle on a store folder. Cheap to create; opens SQLite lazily."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
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
        if not self.exists():
            raise MMSearchError(
                f"no store at {self.root}: run `mmsearch ingest CATALOG.csv --store {self.root}` first"
            )
        return self

    # -- database ------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self.root.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(SCHEMA)
            self._db = db
        return self._db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
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
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MMSearchError(
                # `embed` reads this file too, so it cannot rewrite it in place: the repair
                # is to remove it first (vectors are kept, keyed by model id).
                f"{self.manifest_path} is unreadable ({exc}): delete it and run `mmsearch embed` to rewrite it "
                "(with the same --text-fields and --*-model options as before, if any)"
            ) from exc

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.manifest_path, manifest)

    # -- writer lock ---------------------------------------------------------
    @contextmanager
    def writer(self, command: str, wait: float = 0.0) -> Iterator["Store"]:
        """Hold the store's single-writer lock for the duration of a command.

        The lock is an OS file lock (filelock), so a killed process releases it. Who
        holds it is written to lock.json so that a second writer can name the holder.
        """
        self.root.mkdir(parents=True, exist_ok=True)
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
