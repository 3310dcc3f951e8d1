"""Index generations on disk: which one is live, what each holds, and how a new one is
built aside and published. Search reads generations through this module alone, without
importing the build path (models, planning, backends' writers).

    STORE/indexes/
      CURRENT                  name of the live generation (replaced atomically)
      gen-<time>/manifest.json per part: backend, space, dim, M, ef_construction, count,
                               model, fingerprint, and size + sha256 of every file
      gen-<time>/text.hnsw, text.ids.json, image.*, audio.*, image_x.*, text_x.*,
                 lexical/..., the bridge's weights
      .building-<time>-<pid>/  a build in progress; finished parts leave PART.done.json

hnswlib is not safe for concurrent add and query, so nothing is modified in place: a
query process reads CURRENT once and keeps using that generation, and the previous
generation is kept until the next build so in-flight readers finish on it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import MMSearchError
from .store import Store, sha256_file, write_atomic, write_json_atomic

#: Part names besides one vector part per modality.
LEXICAL = "lexical"
BRIDGE = "bridge"
#: bridged parts: (part, modality of the items, what queries them)
BRIDGED = {"image_x": "image", "text_x": "text"}

#: A generation superseded less than this long ago is kept as well as the previous one.
#: A reader picks its generation once but loads parts lazily (`query` loads its models in
#: between, seconds), so pruning down to two generations let two quick rebuilds delete
#: the files under a running query ("index file ... is missing").
PRUNE_GRACE_SECONDS = 600


# -- reading ----------------------------------------------------------------------
def current(store: Store) -> Path | None:
    """The live generation's folder, or None before the first `mmsearch index`."""
    pointer = store.indexes_dir / "CURRENT"
    if not pointer.exists():
        return None
    return store.indexes_dir / pointer.read_text(encoding="utf-8").strip()


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MMSearchError(f"index manifest {folder / 'manifest.json'} is unreadable ({exc}): run `mmsearch index`") from None


def file_entry(path: Path, name: str | None = None) -> dict[str, Any]:
    """A manifest's record of one index file, checked before any loader reads it."""
    return {"name": name or path.name, "size": path.stat().st_size, "sha256": sha256_file(path)}


def file_matches(folder: Path, entry: dict[str, Any]) -> bool:
    """Is ``folder/entry["name"]`` the file its manifest entry describes (size, sha256)?"""
    path = folder / entry["name"]
    return path.is_file() and path.stat().st_size == entry["size"] and sha256_file(path) == entry["sha256"]


def verify_part(folder: Path, entry: dict[str, Any]) -> None:
    """Check size and checksum before a part's files are handed to a loader: hnswlib can
    crash on a truncated or corrupted file instead of raising."""
    for f in entry["files"]:
        path = folder / f["name"]
        if not path.is_file():
            raise MMSearchError(f"index file {path} is missing: run `mmsearch index` to rebuild")
        if not file_matches(folder, f):
            raise MMSearchError(f"index file {path} is corrupted (size or checksum differs): run `mmsearch index`")


# -- building ---------------------------------------------------------------------
class Scratch:
    """The folder the next generation is built in, reusing finished parts: those of an
    interrupted build in this folder, and unchanged ones of the live generation."""

    def __init__(self, store: Store):
        self.store = store
        live = current(store)
        self.live = live if live and live.exists() else None
        try:
            self.live_parts = read_manifest(self.live)["parts"] if self.live else {}
        except MMSearchError:  # a damaged live manifest must not block the build that repairs it
            self.live, self.live_parts = None, {}
        store.indexes_dir.mkdir(parents=True, exist_ok=True)
        self.folder = self._folder()
        self.parts: dict[str, Any] = {}

    def _folder(self) -> Path:
        """Resume the newest interrupted build, drop older ones."""
        leftovers = sorted(self.store.indexes_dir.glob(".building-*"))
        for old in leftovers[:-1]:
            shutil.rmtree(old, ignore_errors=True)
        if leftovers:
            return leftovers[-1]
        folder = self.store.indexes_dir / f".building-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        folder.mkdir()
        return folder

    def reuse(self, name: str, fingerprint: str, intact: Callable[[dict[str, Any]], bool]) -> bool:
        """Take a finished part with this fingerprint into this build: from this folder
        (an interrupted build) or from the live generation (files hard-linked), if its
        files match their checksums and ``intact(entry)`` (e.g. its Milvus collection is
        still there)."""
        for source, entries in ((self.folder, self._finished()), (self.live, self.live_parts)):
            entry = entries.get(name) if source else None
            if not entry or entry["fingerprint"] != fingerprint or not intact(entry):
                continue
            if source != self.folder:
                for f in entry["files"]:
                    target = self.folder / f["name"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.unlink(missing_ok=True)
                    if (source / f["name"]).is_file():  # a missing live file fails the check below: rebuild
                        _link_or_copy(source / f["name"], target)
            if all(file_matches(self.folder, f) for f in entry["files"]):
                self.parts[name] = entry
                return True
            for f in entry["files"]:  # a damaged copy must not be reused, nor written through
                (self.folder / f["name"]).unlink(missing_ok=True)
        return False

    def finish(self, name: str, entry: dict[str, Any]) -> None:
        """Record a part built in this folder; an interrupted build resumes from here."""
        write_json_atomic(self.folder / f"{name}.done.json", entry)
        self.parts[name] = entry

    def _finished(self) -> dict[str, Any]:
        parts = {}
        for done in self.folder.glob("*.done.json"):
            try:
                parts[done.name.removesuffix(".done.json")] = json.loads(done.read_text(encoding="utf-8"))
            except ValueError:
                continue
        return parts

    def same_as_live(self) -> bool:
        return bool(self.live) and self.parts == self.live_parts

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def publish(self) -> str:
        """Make this build the live generation: one rename of the folder, one of CURRENT."""
        for done in self.folder.glob("*.done.json"):
            done.unlink()
        write_json_atomic(self.folder / "manifest.json", {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "parts": self.parts})
        _fsync_tree(self.folder)
        name = f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 1_000_000:06d}"
        os.replace(self.folder, self.store.indexes_dir / name)
        write_atomic(self.store.indexes_dir / "CURRENT", name.encode())
        prune(self.store, keep={name, self.live.name if self.live else name})
        return name


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link when possible: generations share unchanged files for free. Files are
    never written in place (builders unlink first), so sharing is safe."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def prune(store: Store, keep: set[str]) -> None:
    """Keep ``keep`` (the new and the previous generation), and any generation superseded
    less than PRUNE_GRACE_SECONDS ago."""

    def published(gen: Path) -> float:  # manifest.json is written fresh by each publish
        try:
            return (gen / "manifest.json").stat().st_mtime
        except OSError:
            return 0.0

    gens = sorted(store.indexes_dir.glob("gen-*"), key=published)
    now = time.time()
    for gen, successor in zip(gens, gens[1:]):
        if gen.name not in keep and now - published(successor) >= PRUNE_GRACE_SECONDS:
            shutil.rmtree(gen, ignore_errors=True)
