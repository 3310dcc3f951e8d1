"""Index generations: build every part (one vector index per modality, the bridged
cross-modal indexes, BM25) aside, then switch readers to them with one atomic rename.

    STORE/indexes/
      CURRENT                  name of the live generation (replaced atomically)
      gen-<time>/manifest.json per part: backend, space, dim, M, ef_construction, count,
                               model, fingerprint, and size + sha256 of every file
      gen-<time>/text.hnsw, text.ids.json, image.*, audio.*, image_x.*, text_x.*,
                 lexical/..., the bridge's weights

hnswlib is not safe for concurrent add and query, so nothing is modified in place: a
query process reads CURRENT once and keeps using that generation, and the previous
generation is kept until the next build so in-flight readers finish on it. Each part
has a fingerprint of its inputs; a part whose fingerprint did not change is hard-linked
from the live generation, and an interrupted build leaves a ``.building-*`` folder whose
finished parts the next run reuses.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .backends import BACKENDS, DEFAULT_TARGET_RECALL, Backend, Item, make_backend
from .bridge import AlignedBridge, Bridge, ClipBridge, ZeroShotBridge
from .catalog import iter_products, product_text
from .embedding import text_hash, vector_matrix
from .encoders import MODALITIES, encoder_family, load_encoder
from .errors import MMSearchError
from .lexical import LexicalIndex
from .store import Store, file_entry, file_matches, write_json_atomic

LEXICAL = "lexical"
BRIDGE = "bridge"
#: bridged parts: (part, modality of the items, what queries them)
BRIDGED = {"image_x": "image", "text_x": "text"}


@dataclass
class IndexReport:
    generation: str | None = None
    built: dict[str, float] = field(default_factory=dict)  # part -> seconds
    reused: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)  # items with no vector yet
    backend: dict[str, Any] = field(default_factory=dict)
    synced: dict[str, dict[str, int]] = field(default_factory=dict)  # Milvus part -> upserted, deleted
    up_to_date: bool = False


@dataclass
class PartPlan:
    """What one part of the next generation holds, and how to build it."""

    name: str
    fingerprint: str
    count: int
    build: Callable[[Path], dict[str, Any]]  # writes the part's files, returns its entry
    missing: int | None = None


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


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


# -- backend settings -----------------------------------------------------------
def index_config(store: Store) -> dict[str, Any]:
    """The store's index backend settings, kept in its manifest so that `index` run
    from cron, `query` and `eval` use the backend chosen once with `index --backend`."""
    return store.manifest().get("index", {"backend": "hnswlib"})


def configured_backend(store: Store, token: str | None = None) -> Backend:
    return make_backend(index_config(store), store.manifest().get("store_id", ""), token)


def configure_backend(store: Store, backend: str, uri: str | None = None, collection_prefix: str | None = None) -> dict[str, Any]:
    """Record the backend (and for Milvus where it is) in the store's manifest.

    Tokens are never written to the store: pass --token or set $MMSEARCH_MILVUS_TOKEN."""
    if backend not in BACKENDS:
        raise MMSearchError(f"--backend {backend}: use one of {', '.join(BACKENDS)}")
    manifest = store.manifest()
    previous = manifest.get("index", {})
    config: dict[str, Any] = {"backend": backend}
    if backend == "milvus":
        from .backends.milvus import DEFAULT_PREFIX, check_prefix, normalize_uri

        uri = uri or previous.get("uri")
        if not uri:
            raise MMSearchError("--backend milvus needs --uri http://HOST:19530 (a server) or --uri FILE.db (milvus-lite)")
        config["uri"] = normalize_uri(uri)
        config["collection_prefix"] = check_prefix(collection_prefix or previous.get("collection_prefix") or DEFAULT_PREFIX)
        manifest.setdefault("store_id", uuid.uuid4().hex)
    elif uri or collection_prefix:
        raise MMSearchError("--uri and --collection-prefix only apply to --backend milvus")
    manifest["index"] = config
    store.write_manifest(manifest)
    return config


# -- planning -------------------------------------------------------------------
class Planner:
    """Works out every part of the next generation from the store, cheaply: vectors and
    models are only loaded by a part's ``build``, which runs only if it must."""

    def __init__(
        self, store: Store, m: int, ef_construction: int, backend: Backend | None = None, target_recall: float = DEFAULT_TARGET_RECALL
    ):
        self.store = store
        self.manifest = store.manifest()
        self.backend = backend or configured_backend(store)
        self.params: dict[str, Any] = {"M": m, "ef_construction": ef_construction}
        if self.backend.name == "hnswlib":  # Milvus searches with its own ef
            self.params["target_recall"] = target_recall
        self.text_fields = self.manifest.get("text_fields")
        self.models = self.manifest.get("models", {})

    def kept_items(self, modality: str) -> tuple[list[Item], int]:
        """The items of ``modality`` that have a vector from the current model, and how
        many still lack one."""
        model = self.models[modality]
        items = self._items(modality)
        have = {
            h
            for (h,) in self.store.db.execute(
                "SELECT content_hash FROM vectors WHERE modality=? AND model=?", (modality, model["id"])
            )
        }
        kept = [item for item in items if item[2] in have]
        return kept, len(items) - len(kept)

    def _items(self, modality: str) -> list[Item]:
        if modality == "text":
            return [(pid, "", text_hash(text)) for pid, text in self.texts.items() if text]
        rows = self.store.db.execute(
            "SELECT product_id, path, sha256 FROM media WHERE kind=? ORDER BY product_id, position", (modality,)
        )
        return [tuple(r) for r in rows]

    @cached_property
    def catalog(self) -> dict[str, dict[str, Any]]:
        return {row["id"]: row for row in iter_products(self.store)}

    @cached_property
    def texts(self) -> dict[str, str]:
        return {pid: product_text(row, self.text_fields) for pid, row in self.catalog.items()}

    def vectors(self, modality: str, items: list[Item]) -> np.ndarray:
        # A vector of the wrong length (a damaged catalog.db) must stop the build with the
        # repair, not with a numpy traceback from np.frombuffer / np.stack below.
        model = self.models[modality]
        if model.get("dim"):
            bad = self.store.db.execute(
                "SELECT count(*) FROM vectors WHERE modality=? AND model=? AND length(vector) != ?",
                (modality, model["id"], 4 * model["dim"]),
            ).fetchone()[0]
            if bad:
                raise MMSearchError(
                    f"{bad} {modality} vectors in catalog.db have the wrong length: "
                    f"run `mmsearch embed --modality {modality} --rebuild`, then `mmsearch index`"
                )
        matrix, found = vector_matrix(self.store, modality, model["id"], [h for _, _, h in items])
        if found != len(items):  # the items were chosen as those with a vector: one went missing since
            raise MMSearchError(f"{len(items) - found} {modality} vectors disappeared from catalog.db during the build: run `mmsearch index` again")
        return matrix

    def plans(self) -> list[PartPlan]:
        plans, kept = [], {}
        for modality in MODALITIES:
            if modality not in self.models:
                continue
            kept[modality], missing = self.kept_items(modality)
            if kept[modality]:
                plans.append(self._vector_plan(modality, kept[modality], missing))
        if kept.get("image") and kept.get("text"):
            plans += self._bridge_plans(kept)
        if self.texts:
            plans.append(self._lexical_plan())
        return plans

    def _vector_fingerprint(self, model_id: str, items: list[Item]) -> str:
        return _fingerprint(model_id, self.params, items, *self.backend.fingerprint(items, model_id, self.catalog))

    def _vector_plan(self, modality: str, items: list[Item], missing: int) -> PartPlan:
        model = self.models[modality]
        return PartPlan(
            modality,
            self._vector_fingerprint(model["id"], items),
            len(items),
            lambda folder: self._write_vectors(folder, modality, items, lambda some: self.vectors(modality, some), model),
            missing,
        )

    def _write_vectors(
        self, folder: Path, name: str, items: list[Item], vectors: Callable[[list[Item]], np.ndarray], model: dict[str, Any]
    ) -> dict[str, Any]:
        return self.backend.write(folder, name, items, vectors, model, self.params, self.catalog)

    # -- bridge -------------------------------------------------------------------
    @cached_property
    def _alignment_path(self) -> Path | None:
        alignment = self.manifest.get("alignment")
        return self.store.root / alignment["file"] if alignment else None

    def bridge_id(self) -> str:
        """The bridge's identity, known without loading any model."""
        if self._alignment_path:
            return f"aligned:{hashlib.sha256(self._alignment_path.read_bytes()).hexdigest()[:16]}"
        image, text = self.models["image"], self.models["text"]
        if self._image_text_tower:
            return f"open_clip:{image['id']}"
        return f"zeroshot:{image['id']}|{text['id']}"

    @property
    def _image_text_tower(self) -> bool:
        """Whether the image model brings its own text tower (CLIP): then that is the bridge."""
        return encoder_family("image", self.models["image"]["name"]).text_tower

    @cached_property
    def bridge(self) -> Bridge:
        if self._alignment_path:
            return AlignedBridge.from_file(self._alignment_path)
        image_encoder = load_encoder("image", self.models["image"]["name"])
        if self._image_text_tower:
            return ClipBridge(image_encoder)
        return self._saved_zeroshot_bridge() or ZeroShotBridge.build(image_encoder, load_encoder("text", self.models["text"]["name"]))

    def _saved_zeroshot_bridge(self) -> ZeroShotBridge | None:
        """The live generation's zero-shot bridge when it is the same one: building it
        encodes 1,000 class names (about 20 s on two cores), every time items change."""
        live = current_generation(self.store)
        try:
            entry = read_generation_manifest(live)["parts"].get(BRIDGE) if live else None
        except MMSearchError:
            return None
        if not entry or entry["id"] != self.bridge_id() or not all(file_matches(live, f) for f in entry["files"]):
            return None
        return ZeroShotBridge.load(live, entry)

    def _bridge_plans(self, kept: dict[str, list[Item]]) -> list[PartPlan]:
        bridge_id = self.bridge_id()

        def write_bridge(folder: Path) -> dict[str, Any]:
            files = self.bridge.save(folder)
            return {"kind": self.bridge.kind, "id": bridge_id, "count": 0, "files": [file_entry(f) for f in files]}

        def bridged(name: str, modality: str) -> PartPlan:
            items = kept[modality]

            def projected(some: list[Item]) -> np.ndarray:
                vectors = self.vectors(modality, some)
                if modality == "image":
                    return self.bridge.image_items(vectors)
                return self.bridge.text_items([self.texts[pid] for pid, _, _ in some], vectors)

            def write(folder: Path) -> dict[str, Any]:
                return self._write_vectors(folder, name, items, projected, {"name": self.bridge.kind, "id": bridge_id})

            return PartPlan(name, self._vector_fingerprint(bridge_id, items), len(items), write)

        return [
            PartPlan(BRIDGE, _fingerprint(bridge_id), 0, write_bridge),
            *(bridged(name, modality) for name, modality in BRIDGED.items()),
        ]

    def _lexical_plan(self) -> PartPlan:
        docs = list(self.texts.items())

        def write(folder: Path) -> dict[str, Any]:
            target = folder / LEXICAL
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            LexicalIndex.build([text for _, text in docs]).save(target)
            (target / "ids.json").write_text(json.dumps([pid for pid, _ in docs]), encoding="utf-8")
            files = [file_entry(p, f"{LEXICAL}/{p.name}") for p in sorted(target.iterdir())]
            return {"backend": "bm25s", "count": len(docs), "files": files}

        return PartPlan(LEXICAL, _fingerprint("bm25s", docs), len(docs), write)


# -- building ---------------------------------------------------------------------
class _Build:
    """One build in a scratch folder, reusing finished parts where it can."""

    def __init__(self, store: Store, backend: Backend):
        self.store, self.backend = store, backend
        live = current_generation(store)
        self.live = live if live and live.exists() else None
        try:
            self.live_parts = read_generation_manifest(self.live)["parts"] if self.live else {}
        except MMSearchError:  # a damaged live manifest must not block the build that repairs it
            self.live, self.live_parts = None, {}
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

    def reuse(self, plan: PartPlan) -> bool:
        """Take a finished part from this scratch folder or from the live generation."""
        for source, entries in ((self.folder, self._scratch_parts()), (self.live, self.live_parts)):
            entry = entries.get(plan.name) if source else None
            if not entry or entry["fingerprint"] != plan.fingerprint:
                continue
            if entry.get("backend") == self.backend.name and not self.backend.is_intact(entry):
                continue  # e.g. a Milvus collection dropped or changed behind our back
            if source != self.folder:
                for f in entry["files"]:
                    target = self.folder / f["name"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.unlink(missing_ok=True)
                    if (source / f["name"]).is_file():  # a missing live file fails the check below: rebuild
                        _link_or_copy_file(source / f["name"], target)
            if all(file_matches(self.folder, f) for f in entry["files"]):
                self.parts[plan.name] = entry
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

    def build(self, plan: PartPlan) -> dict[str, int] | None:
        """Build one part; returns what a syncing backend changed (upserted, deleted)."""
        entry = {**plan.build(self.folder), "fingerprint": plan.fingerprint}
        synced = entry.pop("synced", None)
        write_json_atomic(self.folder / f"{plan.name}.done.json", entry)
        self.parts[plan.name] = entry
        return synced


def _link_or_copy_file(src: Path, dst: Path) -> None:
    """Hard-link when possible: generations share unchanged files for free. Files are
    never written in place (builders unlink first), so sharing is safe."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_index(
    store: Store,
    m: int = 16,
    ef_construction: int = 200,
    progress: Any = None,
    backend: Backend | None = None,
    target_recall: float = DEFAULT_TARGET_RECALL,
) -> IndexReport:
    """Build (or reuse) every part, then publish the new generation atomically.

    ``target_recall`` is the recall@10 against exact search that each hnswlib part's
    search ``ef`` is calibrated to reach (backends/hnsw.py).

    With the Milvus backend the vector parts are synced into collections in place; the
    generation (manifest, BM25, bridge) is still built aside and published atomically."""
    store.require()
    planner = Planner(store, m, ef_construction, backend, target_recall)
    try:
        return _build_index(store, planner, progress)
    finally:
        planner.backend.close()


def _build_index(store: Store, planner: Planner, progress: Any) -> IndexReport:
    plans = planner.plans()
    build = _Build(store, planner.backend)
    report = IndexReport(backend=planner.backend.settings())
    task = progress.add_task("index", total=len(plans)) if progress else None
    for plan in plans:
        report.counts[plan.name] = plan.count
        if plan.missing is not None:
            report.missing[plan.name] = plan.missing
        if build.reuse(plan):
            report.reused.append(plan.name)
        else:
            started = time.perf_counter()
            synced = build.build(plan)
            report.built[plan.name] = time.perf_counter() - started
            if synced is not None:
                report.synced[plan.name] = synced
        if progress:
            progress.advance(task)
    # Only "up to date" if nothing had to be built: a part rebuilt because the live copy
    # was damaged (truncated, bit-flipped, deleted) records the same entry as the live
    # manifest, and must still be published or `mmsearch index` never repairs it.
    if build.live and not report.built and build.parts == build.live_parts:
        shutil.rmtree(build.folder, ignore_errors=True)
        report.generation, report.up_to_date = build.live.name, True
        return report
    report.generation = _publish(store, build)
    return report


def _publish(store: Store, build: _Build) -> str:
    for done in build.folder.glob("*.done.json"):
        done.unlink()
    write_json_atomic(build.folder / "manifest.json", {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "parts": build.parts})
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


#: A generation superseded less than this long ago is kept as well as the previous one.
#: A reader picks its generation once but loads parts lazily (`query` loads its models in
#: between, seconds), so pruning down to two generations let two quick rebuilds delete
#: the files under a running query ("index file ... is missing").
PRUNE_GRACE_SECONDS = 600


def _prune_generations(store: Store, keep: set[str]) -> None:
    """Keep the new and the previous generation, and any superseded < PRUNE_GRACE_SECONDS ago."""

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
