"""What a store holds and what is out of date, as one plain dict (the CLI renders it)."""

from __future__ import annotations

import sqlite3
from typing import Any

from . import generations, language
from .backends import DEFAULT_EF_CONSTRUCTION, DEFAULT_M, DEFAULT_TARGET_RECALL
from .embedding import rebuilt_items, wanted_items
from .encoders import MODALITIES
from .errors import MMSearchError
from .filters import column_summary
from .generations import BRIDGE, LEXICAL
from .indexing import PartPlanner
from .lexical import STANDARD
from .store import Store


def store_status(store: Store) -> dict[str, Any]:
    store.require()
    db, manifest = store.db, store.manifest()
    text_fields = manifest.get("text_fields")
    models, rebuilding = manifest.get("models", {}), manifest.get("rebuilding", {})
    media = dict(db.execute("SELECT kind, count(*) FROM media GROUP BY kind").fetchall())
    modalities: dict[str, Any] = {}
    for modality in MODALITIES:
        model = models.get(modality)
        wanted = set(wanted_items(store, modality, text_fields))
        vectors = failed = set()
        if model:
            vectors = _hashes(store, "vectors", modality, model["id"]) & wanted
            failed = _hashes(store, "failures", modality, model["id"]) & wanted
        modalities[modality] = {
            "model": model,
            "items": len(wanted),
            "vectors": len(vectors),
            "failed": len(failed),
            "to_embed": len(wanted - vectors - failed),
            "rebuilding": _rebuild_status(store, modality, rebuilding.get(modality), wanted),
        }
    return {
        "store": str(store.root),
        "products": db.execute("SELECT count(*) FROM products").fetchone()[0],
        "media": {"image": media.get("image", 0), "audio": media.get("audio", 0)},
        "text_fields": text_fields,
        "languages": _languages(store),
        "modalities": modalities,
        "filters": column_summary(store),
        "index": _index_status(store),
    }


def _languages(store: Store) -> dict[str, Any]:
    """The catalog's languages (language.py): products per language, those that count
    as the catalog's, and whether ingest recorded them (else they were detected now)."""
    found = language.recorded(store)
    return {
        "products": found["products"],
        "rows": language.by_share(found),
        "catalog": language.catalog_languages(found),
        "recorded": language.MANIFEST_KEY in store.manifest(),
    }


def _rebuild_status(store: Store, modality: str, marker: dict[str, Any] | None, wanted: set[str]) -> dict[str, Any] | None:
    """An interrupted rebuild or model switch (that `embed` continues): its model, when it
    started, and how many of the items it has embedded."""
    if marker is None:
        return None
    if marker["rebuild"]:
        done = rebuilt_items(store, modality)
    else:
        done = _hashes(store, "vectors", modality, marker["id"])
    return {"model": marker["name"], "rebuild": marker["rebuild"], "started": marker["started"], "done": len(done & wanted), "items": len(wanted)}


def _hashes(store: Store, table: str, modality: str, model: str) -> set[str]:
    rows = store.db.execute(f"SELECT content_hash FROM {table} WHERE modality=? AND model=?", (modality, model))
    return {h for (h,) in rows}


def _index_status(store: Store) -> dict[str, Any]:
    folder = generations.current(store)
    if folder is None or not folder.exists():
        return {"generation": None, "parts": {}, "stale": True}
    parts = generations.read_manifest(folder)["parts"]
    # Take M/ef_construction from a vector part: manifests are written with sorted keys,
    # so the first part is often "lexical", which has neither, and an index built with
    # non-default --m/--ef-construction was then reported stale for ever.
    any_part = next((p for p in parts.values() if "M" in p), {})
    planner = PartPlanner(
        store, any_part.get("M", DEFAULT_M), any_part.get("ef_construction", DEFAULT_EF_CONSTRUCTION), target_recall=any_part.get("target_recall", DEFAULT_TARGET_RECALL)
    )
    expected = {plan.name: plan.fingerprint for plan in planner.plans()}
    out = {
        name: {
            "count": entry["count"],
            "dim": entry.get("dim"),
            "model": entry.get("model", {}).get("name") or entry.get("kind"),
            "backend": entry.get("backend"),
            "where": entry.get("collection") and f"{entry['uri']} {entry['collection']}",
            "ef_search": entry.get("ef_search"),
            "calibrated_recall": entry.get("calibrated_recall"),
            **({"analyzer": entry.get("analyzer", STANDARD)} if name == LEXICAL else {}),
            "stale": expected.get(name) != entry["fingerprint"],
        }
        for name, entry in parts.items()
    }
    missing = [name for name in expected if name not in parts]
    return {
        "generation": folder.name,
        "created": generations.read_manifest(folder).get("created"),
        "parts": out,
        "missing_parts": missing,
        "stale": any(p["stale"] for p in out.values()) or bool(missing),
    }


def checked_status(store: Store) -> dict[str, Any]:
    """`status --verify`: the status and every problem found. A catalog.db that SQLite
    cannot read, or that fails its integrity check, is itself the finding (nothing else
    read from it could be trusted): the report is then the store and that problem."""
    try:
        store.require()
        rows = [row[0] for row in store.db.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        if not store.is_corrupt(exc):
            raise
        detail = str(exc)
    else:  # "ok", or findings one per line, under a "*** in database main ***" heading
        found = [line for row in rows for line in row.splitlines() if line.strip() and not line.startswith("***")] or rows
        more = f" and {len(found) - 1} more findings" if len(found) > 1 else ""
        detail = None if rows == ["ok"] else f"integrity check: {found[0]}{more}"
    if detail:
        return {"store": str(store.root), "problems": [str(store.corrupt_error(detail))]}
    info = store_status(store)
    info["problems"] = verify_store(store, info)
    return info


def verify_store(store: Store, info: dict[str, Any]) -> list[str]:
    """Deep checks of a catalog.db that passed its integrity check, each problem as one
    line that names the repair command.

    Index files are checked against their recorded size and sha256 before anything
    loads them (hnswlib may crash on a corrupted file rather than raise)."""
    from .search import Searcher

    problems: list[str] = []
    for modality, m in info["modalities"].items():
        model = m["model"]
        if not model:
            continue
        bad = store.db.execute(
            "SELECT count(*) FROM vectors WHERE modality=? AND model=? AND length(vector) != ?",
            (modality, model["id"], 4 * (model["dim"] or 0)),
        ).fetchone()[0]
        if bad:
            problems.append(f"{bad} {modality} vectors have the wrong length: run `mmsearch embed --modality {modality} --rebuild`")
        if m["to_embed"]:
            problems.append(f"{m['to_embed']} {modality} items are not embedded: run `mmsearch embed`")
        if m["rebuilding"]:
            r = m["rebuilding"]
            problems.append(f"an interrupted {modality} rebuild has re-embedded {r['done']} of {r['items']} items: run `mmsearch embed` to finish it")
    index = info["index"]
    if not index["generation"]:
        if any(m["vectors"] for m in info["modalities"].values()):
            problems.append("no index has been built: run `mmsearch index`")
        return problems
    searcher = Searcher(store)
    products = {pid for (pid,) in store.db.execute("SELECT id FROM products")}
    for name in index["parts"]:
        try:
            part = searcher.part(name)
        except MMSearchError as exc:
            problems.append(str(exc))
            continue
        if name == BRIDGE:
            continue  # weights only: checked against their checksums when loaded above
        indexed = set(part.ids) if name == LEXICAL else part.products()
        if name != LEXICAL and part.count != searcher.manifest["parts"][name]["count"]:
            problems.append(f"{name} index holds {part.count} vectors, its manifest says otherwise: run `mmsearch index`")
        if indexed - products:
            problems.append(f"{name} index holds {len(indexed - products)} products no longer in the catalog: run `mmsearch index`")
        if index["parts"][name]["stale"]:
            problems.append(f"{name} index is older than the catalog or the vectors: run `mmsearch index`")
    problems += [f"the index has no {name} part yet: run `mmsearch index`" for name in index["missing_parts"]]
    return problems
