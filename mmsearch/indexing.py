"""Building the index: plan every part of the next generation (one vector index per
modality, the bridged cross-modal indexes, BM25) from what the store holds, build the
parts whose inputs changed in a scratch folder, and publish it (generations.py owns the
folders, reuse and the atomic switch).

Each part has a fingerprint of its inputs; a part whose fingerprint did not change is
hard-linked from the live generation, and an interrupted build's finished parts are
reused by the next run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from . import crosslingual, duplicates, generations, language, sound
from .audio_rerank import SEQ_PART, SEQ_VERSION, audio_frames, write_part
from .backends import (
    BACKENDS,
    DEFAULT_EF_CONSTRUCTION,
    DEFAULT_M,
    DEFAULT_TARGET_RECALL,
    Backend,
    Item,
    Synced,
    make_backend,
)
from .bridge import Bridge, ZeroShotBridge, bridge_id, make_bridge, stale_alignment
from .embedding import record_missing_facts, wanted_items
from .encoders import MODALITIES, load_encoder
from .encoders.audio import DEFAULT_AUDIO_MODEL
from .errors import ExitCode, MMSearchError
from .generations import BRIDGE, BRIDGED, LEXICAL
from .items import StoreItems
from .lexical import ANALYZERS, CJK, STANDARD, LexicalIndex
from .store import Store
from .understanding import VOCABULARY, Vocabulary, catalog_vocabulary


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
    notes: list[str] = field(default_factory=list)  # what the user should know (a stale alignment)


@dataclass
class PartPlan:
    """What one part of the next generation holds, and how to build it."""

    name: str
    fingerprint: str
    count: int
    build: Callable[[Path], tuple[dict[str, Any], Synced | None]]  # writes the part: (its entry, what a sync changed)
    missing: int | None = None


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


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


#: ``index --analyzer auto``: the analyzer follows the catalog's languages (language.py)
AUTO = "auto"
#: the manifest key of an analyzer chosen with `index --analyzer`
LEXICAL_KEY = "lexical"


def configure_analyzer(store: Store, analyzer: str) -> None:
    """Remember `index --analyzer` in the store's manifest, so that `index` run from cron
    keeps it; ``auto`` forgets it (the analyzer then follows the catalog's languages)."""
    if analyzer not in (AUTO, *ANALYZERS):
        raise MMSearchError(f"--analyzer {analyzer}: use one of {', '.join((AUTO, *ANALYZERS))}", ExitCode.USAGE)
    manifest = store.manifest()
    chosen = {"analyzer": analyzer} if analyzer != AUTO else None
    if manifest.get(LEXICAL_KEY) != chosen:
        if chosen:
            manifest[LEXICAL_KEY] = chosen
        else:
            manifest.pop(LEXICAL_KEY, None)
        store.write_manifest(manifest)


def lexical_analyzer(store: Store) -> str:
    """The analyzer the next BM25 part is built with: the one `index --analyzer` chose,
    else ``cjk`` for a catalog with Chinese, Japanese or Korean text, else ``standard``."""
    chosen = store.manifest().get(LEXICAL_KEY, {}).get("analyzer")
    if chosen in ANALYZERS:
        return chosen
    return CJK if language.has_cjk(language.recorded(store)) else STANDARD


# -- planning -------------------------------------------------------------------
class PartPlanner:
    """Works out every part of the next generation from the store, cheaply: vectors and
    models are only loaded by a part's ``build``, which runs only if it must."""

    def __init__(
        self, store: Store, m: int, ef_construction: int, backend: Backend | None = None, target_recall: float = DEFAULT_TARGET_RECALL
    ):
        self.store = store
        self.items = StoreItems(store)
        self.backend = backend or configured_backend(store)
        self.params: dict[str, Any] = {"M": m, "ef_construction": ef_construction}
        if self.backend.name == "hnswlib":  # Milvus searches with its own ef
            self.params["target_recall"] = target_recall

    def plans(self) -> list[PartPlan]:
        plans, kept = [], {}
        for modality in MODALITIES:
            if modality not in self.items.models:
                continue
            kept[modality], missing = self.items.kept_items(modality)
            if kept[modality]:
                plans.append(self._vector_plan(modality, kept[modality], missing))
        if kept.get("audio") and self.items.models["audio"].get("name") == DEFAULT_AUDIO_MODEL:
            plans.append(self._sequence_plan(kept["audio"]))
        if kept.get("image") and kept.get("text"):
            plans += self._bridge_plans(kept)
        if kept.get("text") and (tagged := sound.scored_items(self.store.db, self.items.items("audio"))):
            plans.append(self._sound_plan(tagged))
        if kept.get("image"):
            plans.append(self._duplicate_plan(kept["image"]))
        if any(self.items.texts.values()):  # bm25s cannot index a corpus of empty texts
            plans.append(self._lexical_plan())
        return plans

    def check_text(self) -> None:
        """Text fields that give no product any text leave the store without a text index:
        stop with the repair (stores saved such fields before `embed` checked them)."""
        fields, texts = self.items.text_fields, self.items.texts
        if fields is not None and texts and not any(texts.values()):
            raise MMSearchError(
                f"the store's text fields ({', '.join(fields)}) give no product any text: "
                "run `mmsearch embed --text-fields all` (or name fields the catalog has), then `mmsearch index`"
            )

    def _vector_fingerprint(self, model_id: str, items: list[Item]) -> str:
        return _fingerprint(model_id, self.params, items, *self.backend.fingerprint(items, model_id, self.items.catalog))

    def _vector_plan(self, modality: str, items: list[Item], missing: int) -> PartPlan:
        model = self.items.models[modality]
        return PartPlan(
            modality,
            self._vector_fingerprint(model["id"], items),
            len(items),
            lambda folder: self._write_vectors(folder, modality, items, lambda some: self.items.vectors(modality, some), model),
            missing,
        )

    def _write_vectors(
        self, folder: Path, name: str, items: list[Item], vectors: Callable[[list[Item]], np.ndarray], model: dict[str, Any]
    ) -> tuple[dict[str, Any], Synced | None]:
        return self.backend.write(folder, name, items, vectors, model, self.params, self.items.catalog)

    def _sequence_plan(self, items: list[Item]) -> PartPlan:
        """The audio items' MFCC frame sequences that queries re-rank by (audio_rerank.py)."""
        return PartPlan(SEQ_PART, _fingerprint(SEQ_VERSION, items), len(items), lambda folder: (write_part(folder, items, audio_frames), None))

    # -- bridge -------------------------------------------------------------------
    @cached_property
    def stale_alignment(self) -> str | None:
        """Why the store's alignment is not used (trained for other models), or None."""
        return stale_alignment(self.items.manifest.get("alignment"), self.items.models)

    @cached_property
    def _alignment_path(self) -> Path | None:
        alignment = self.items.manifest.get("alignment")
        return self.store.root / alignment["file"] if alignment and not self.stale_alignment else None

    @cached_property
    def bridge(self) -> Bridge:
        return make_bridge(self.items.models, self._alignment_path, self._saved_bridge)

    def _saved_bridge(self, bridge_id: str) -> ZeroShotBridge | None:
        """The live generation's zero-shot bridge when it is the same one: building it
        encodes 1,000 class names (about 20 s on two cores), every time items change."""
        live = generations.current(self.store)
        try:
            entry = generations.read_manifest(live)["parts"].get(BRIDGE) if live else None
        except MMSearchError:
            return None
        if not entry or entry["id"] != bridge_id or not all(generations.file_matches(live, f) for f in entry["files"]):
            return None
        return ZeroShotBridge.load(live, entry)

    def _bridge_plans(self, kept: dict[str, list[Item]]) -> list[PartPlan]:
        identity = bridge_id(self.items.models, self._alignment_path)

        def write_bridge(folder: Path) -> tuple[dict[str, Any], None]:
            files = self.bridge.save(folder)
            return {"kind": self.bridge.kind, "id": identity, "count": 0, "files": [generations.file_entry(f) for f in files]}, None

        def bridged(name: str, modality: str) -> PartPlan:
            items = kept[modality]

            def projected(some: list[Item]) -> np.ndarray:
                vectors = self.items.vectors(modality, some)
                if modality == "image":
                    return self.bridge.image_items(vectors, [Path(path) for _, path, _ in some])
                return self.bridge.text_items([self.items.texts[pid] for pid, _, _ in some], vectors)

            def write(folder: Path) -> tuple[dict[str, Any], Synced | None]:
                return self._write_vectors(folder, name, items, projected, {"name": self.bridge.kind, "id": identity})

            return PartPlan(name, self._vector_fingerprint(identity, items), len(items), write)

        return [
            PartPlan(BRIDGE, _fingerprint(identity), 0, write_bridge),
            *(bridged(name, modality) for name, modality in BRIDGED.items()),
        ]

    def _sound_plan(self, items: list[Item]) -> PartPlan:
        """``audio_x``: the clips' class scores in the text model's space (sound.py), so a
        text query reaches products by what their clips sound like."""
        text_model = self.items.models["text"]
        identity = sound.bridge_id(text_model["id"])
        labels: list[np.ndarray] = []

        def projected(some: list[Item]) -> np.ndarray:
            if not labels:  # the class names are encoded once, only when the part is built
                labels.append(sound.label_vectors(load_encoder("text", text_model["name"])))
            return sound.text_space(sound.item_scores(self.store, some), labels[0])

        def write(folder: Path) -> tuple[dict[str, Any], Synced | None]:
            return self._write_vectors(folder, sound.PART, items, projected, {"name": "sound", "id": identity})

        return PartPlan(sound.PART, self._vector_fingerprint(identity, items), len(items), write)

    def _duplicate_plan(self, items: list[Item]) -> PartPlan:
        facts = duplicates.stored_facts(self.store.db, items)
        fingerprint = _fingerprint("phash", [(pid, w, h, p.hex()) for pid, w, h, p in facts])
        return PartPlan(duplicates.PART, fingerprint, len(facts), lambda folder: (duplicates.write_part(folder, facts), None))

    def _lexical_plan(self) -> PartPlan:
        docs = [(pid, text) for pid, text in self.items.texts.items() if text]  # no text: not scored 0, left out
        vocabulary = catalog_vocabulary(self.store)  # kept beside BM25 for query understanding
        analyzer = lexical_analyzer(self.store)

        def write(folder: Path) -> tuple[dict[str, Any], None]:
            target = folder / LEXICAL
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            LexicalIndex.build([text for _, text in docs], analyzer).save(target)
            (target / "ids.json").write_text(json.dumps([pid for pid, _ in docs]), encoding="utf-8")
            (target / VOCABULARY).write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
            crosslingual.write(target, Vocabulary(vocabulary).values)  # values named in another language
            files = [generations.file_entry(p, f"{LEXICAL}/{p.name}") for p in sorted(target.iterdir())]
            return {"backend": "bm25s", "analyzer": analyzer, "count": len(docs), "files": files}, None

        fingerprint = _fingerprint("bm25s", docs, vocabulary, analyzer, crosslingual.model_id())
        return PartPlan(LEXICAL, fingerprint, len(docs), write)


def build_index(
    store: Store,
    m: int = DEFAULT_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
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
    record_missing_facts(store, wanted_items(store, "image", None))  # a store embedded before they were recorded
    planner = PartPlanner(store, m, ef_construction, backend, target_recall)
    try:
        planner.check_text()
        return _build_index(store, planner, progress)
    finally:
        planner.backend.close()


def _build_index(store: Store, planner: PartPlanner, progress: Any) -> IndexReport:
    plans = planner.plans()
    backend = planner.backend
    scratch = generations.Scratch(store)
    report = IndexReport(backend=backend.settings())
    if {"image", "text"} <= set(planner.items.models) and planner.stale_alignment:
        report.notes.append(planner.stale_alignment)
    task = progress.add_task("index", total=len(plans)) if progress else None
    for plan in plans:
        report.counts[plan.name] = plan.count
        if plan.missing is not None:
            report.missing[plan.name] = plan.missing
        # e.g. a Milvus collection dropped or changed behind our back is not reused
        if scratch.reuse(plan.name, plan.fingerprint, lambda e: e.get("backend") != backend.name or backend.is_intact(e)):
            report.reused.append(plan.name)
        else:
            started = time.perf_counter()
            entry, synced = plan.build(scratch.folder)
            scratch.finish(plan.name, {**entry, "fingerprint": plan.fingerprint})
            report.built[plan.name] = time.perf_counter() - started
            if synced is not None:
                report.synced[plan.name] = synced
        if progress:
            progress.advance(task)
    # Only "up to date" if nothing had to be built: a part rebuilt because the live copy
    # was damaged (truncated, bit-flipped, deleted) records the same entry as the live
    # manifest, and must still be published or `mmsearch index` never repairs it.
    if not report.built and scratch.same_as_live():
        scratch.discard()
        report.generation, report.up_to_date = scratch.live.name, True
        return report
    report.generation = scratch.publish()
    return report
