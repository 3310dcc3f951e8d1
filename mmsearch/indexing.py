"""Index generations: build every modality's vector index and the BM25 index aside,
then switch readers to them with one atomic rename.

    STORE/indexes/
      CURRENT                  name of the live generation (replaced atomically)
      gen-<time>/manifest.json per index: backend, space, dim, M, ef_construction, count,
                               model, fingerprint, and size + sha256 of every file
      gen-<time>/text.hnsw, text.ids.json, image.*, audio.*, lexical/...

hnswlib is not safe for concurrent add and query, so nothing is ever modified in
place: a query process reads CURRENT once and keeps using that generation, and the
previous generation is kept until the next build so in-flight readers finish on it.
A modality whose inputs did not change is hard-linked from the live generation, not
rebuilt; an interrupted build leaves a ``.building-*`` folder whose finished parts the
next run reuses.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backends.hnsw import HnswIndex
from .catalog import iter_products, product_text
from .embed import load_vectors, text_hash
from .encoders import MODALITIES
from .errors import MMSearchError
from .lexical import LexicalIndex
from .media import sha256_file
from .store import Store, write_json_atomic

LEXICAL = "lexical"


@dataclass
class IndexReport:
    generation: str | None = None
    built: dict[str, float] = field(default_factory=dict)  # part -> seconds
    reused: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)  # items with no vector yet
    up_to_date: bool = False


def index_items(store: Store, modality: str, text_fields: list[str] | None) -> list[tuple[str, str, str]]:
    """(product id, media path or "", content hash) for every item of ``modality``."""
    if modality == "text":
        items = []
        for row in iter_products(store):
            text = product_text(row, text_fields)
            if text:
                items.append((row["id"], "", text_hash(text)))
        return items
    rows = store.db.execute(
        "SELECT product_id, path, sha256 FROM media WHERE kind=? ORDER BY product_id, position", (modality,)
    )
    return [tuple(r) for r in rows]


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _file_entry(path: Path) -> dict[str, Any]:
    return {"name": path.name, "size": path.stat().st_size, "sha256": sha256_file(path)}


def current_generation(store: Store) -> Path | None:
    pointer = store.indexes_dir / "CURRENT"
    if not pointer.exists():
        return None
    return store.indexes_dir / pointer.read_text(encoding="utf-8").strip()


def read_generation_manifest(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MMSearchError(f"index manifest {folder / 'manifest.json'} is unreadable ({exc}): run `mmsearch index`") from None


class _Build:
    """One index build in a scratch folder, reusing finished parts where it can."""

    def __init__(self, store: Store, m: int, ef_construction: int):
        self.store, self.m, self.ef_construction = store, m, ef_construction
        self.manifest = store.manifest()
        self.text_fields = self.manifest.get("text_fields")
        live = current_generation(store)
        self.live = live if live and live.exists() else None
        self.live_manifest = read_generation_manifest(self.live) if self.live else {"parts": {}}
        store.indexes_dir.mkdir(parents=True, exist_ok=True)
        self.folder = self._scratch_folder()
        self.parts: dict[str, Any] = {}

    def _scratch_folder(self) -> Path:
        """Resume the newest interrupted build, drop older ones."""
        leftovers = sorted(self.store.indexes_dir.glob(".building-*"))
        for old in leftovers[:-1]:
            shutil.rmtree(old, ignore_errors=True)
        if leftovers:
            return leftovers[-1]
        folder = self.store.indexes_dir / f".building-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        folder.mkdir()
        return folder

    def _reuse(self, part: str, fingerprint: str) -> bool:
        """Take a finished part from this scratch folder or the live generation."""
        for source, entries in ((self.folder, self._scratch_parts()), (self.live, self.live_manifest["parts"])):
            entry = entries.get(part) if source else None
            if not entry or entry["fingerprint"] != fingerprint:
                continue
            if source != self.folder:
                for f in entry["files"]:
                    target = self.folder / f["name"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.unlink(missing_ok=True)
                    _link_or_copy_file(source / f["name"], target)
            if all(_file_ok(self.folder, f) for f in entry["files"]):
                self.parts[part] = entry
                return True
            for f in entry["files"]:  # a damaged copy must not be reused, nor written through
                (self.folder / f["name"]).unlink(missing_ok=True)
        return False

    def _scratch_parts(self) -> dict[str, Any]:
        parts = {}
        for done in self.folder.glob("*.done.json"):
            try:
                parts[done.name.removesuffix(".done.json")] = json.loads(done.read_text(encoding="utf-8"))
            except ValueError:
                continue
        return parts

    def _finish_part(self, part: str, entry: dict[str, Any]) -> None:
        write_json_atomic(self.folder / f"{part}.done.json", entry)
        self.parts[part] = entry


def _link_or_copy_file(src: Path, dst: Path) -> None:
    """Hard-link when possible: generations share unchanged files for free. Files are
    never written in place (builders unlink first), so sharing is safe."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _file_ok(folder: Path, entry: dict[str, Any]) -> bool:
    path = folder / entry["name"]
    return path.is_file() and path.stat().st_size == entry["size"] and sha256_file(path) == entry["sha256"]


def plan_vectors(store: Store, modality: str, model_id: str, text_fields: list[str] | None) -> tuple[list[tuple[str, str, str]], int]:
    """The items an index of ``modality`` holds now (those with a vector from
    ``model_id``) and how many items still lack one."""
    items = index_items(store, modality, text_fields)
    have = {
        h for (h,) in store.db.execute("SELECT content_hash FROM vectors WHERE modality=? AND model=?", (modality, model_id))
    }
    kept = [item for item in items if item[2] in have]
    return kept, len(items) - len(kept)


def vectors_fingerprint(model_id: str, params: dict[str, int], items: list[tuple[str, str, str]]) -> str:
    return _fingerprint(model_id, params, items)


def lexical_docs(store: Store, text_fields: list[str] | None) -> list[tuple[str, str]]:
    return [(row["id"], product_text(row, text_fields)) for row in iter_products(store)]


def lexical_fingerprint(docs: list[tuple[str, str]]) -> str:
    return _fingerprint("bm25s", docs)


def _build_vectors(build: _Build, modality: str, report: IndexReport) -> None:
    model = build.manifest.get("models", {}).get(modality)
    if not model:
        return
    kept, report.missing[modality] = plan_vectors(build.store, modality, model["id"], build.text_fields)
    report.counts[modality] = len(kept)
    if not kept:
        return
    params = {"M": build.m, "ef_construction": build.ef_construction}
    fingerprint = vectors_fingerprint(model["id"], params, kept)
    if build._reuse(modality, fingerprint):
        report.reused.append(modality)
        return
    started = time.perf_counter()
    found = load_vectors(build.store, modality, model["id"], sorted({h for _, _, h in kept}))
    vectors = np.stack([found[h] for _, _, h in kept])
    index = HnswIndex.build(vectors, m=build.m, ef_construction=build.ef_construction)
    index_path, ids_path = build.folder / f"{modality}.hnsw", build.folder / f"{modality}.ids.json"
    for path in (index_path, ids_path):  # may be hard links into the live generation
        path.unlink(missing_ok=True)
    index.save(index_path)
    ids_path.write_text(json.dumps([[pid, key] for pid, key, _ in kept]), encoding="utf-8")
    build._finish_part(
        modality,
        {
            "backend": index.backend,
            "space": "cosine",
            "dim": int(vectors.shape[1]),
            "count": len(kept),
            "model": model,
            "fingerprint": fingerprint,
            "files": [_file_entry(index_path), _file_entry(ids_path)],
            **params,
        },
    )
    report.built[modality] = time.perf_counter() - started


def _build_lexical(build: _Build, report: IndexReport) -> None:
    docs = lexical_docs(build.store, build.text_fields)
    report.counts[LEXICAL] = len(docs)
    if not docs:
        return
    fingerprint = lexical_fingerprint(docs)
    if build._reuse(LEXICAL, fingerprint):
        report.reused.append(LEXICAL)
        return
    started = time.perf_counter()
    folder = build.folder / LEXICAL
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    LexicalIndex.build([text for _, text in docs]).save(folder)
    (folder / "ids.json").write_text(json.dumps([pid for pid, _ in docs]), encoding="utf-8")
    files = [{**_file_entry(p), "name": f"{LEXICAL}/{p.name}"} for p in sorted(folder.iterdir())]
    build._finish_part(LEXICAL, {"backend": "bm25s", "count": len(docs), "fingerprint": fingerprint, "files": files})
    report.built[LEXICAL] = time.perf_counter() - started


def build_index(store: Store, m: int = 16, ef_construction: int = 200, progress: Any = None) -> IndexReport:
    """Build (or reuse) every part, then publish the new generation atomically."""
    store.require()
    build = _Build(store, m, ef_construction)
    report = IndexReport()
    task = progress.add_task("index", total=len(MODALITIES) + 1) if progress else None
    for modality in MODALITIES:
        _build_vectors(build, modality, report)
        if progress:
            progress.advance(task)
    _build_lexical(build, report)
    if progress:
        progress.advance(task)
    if build.live and build.parts == build.live_manifest["parts"]:
        shutil.rmtree(build.folder, ignore_errors=True)
        report.generation, report.up_to_date = build.live.name, True
        return report
    report.generation = _publish(store, build)
    return report


def _publish(store: Store, build: _Build) -> str:
    for done in build.folder.glob("*.done.json"):
        done.unlink()
    write_json_atomic(
        build.folder / "manifest.json",
        {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "text_fields": build.text_fields, "parts": build.parts},
    )
    _fsync_tree(build.folder)
    name = f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 1_000_000:06d}"
    os.replace(build.folder, store.indexes_dir / name)
    pointer = store.indexes_dir / "CURRENT"
    tmp = pointer.with_name(f".CURRENT.{os.getpid()}.tmp")
    tmp.write_text(name, encoding="utf-8")
    os.replace(tmp, pointer)
    _prune_generations(store, keep={name, build.live.name if build.live else name})
    return name


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def _prune_generations(store: Store, keep: set[str]) -> None:
    """Keep the new and the previous generation (readers may still be on it)."""
    for gen in store.indexes_dir.glob("gen-*"):
        if gen.name not in keep:
            shutil.rmtree(gen, ignore_errors=True)
