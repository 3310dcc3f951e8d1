"""hnswlib vs milvus-lite vs a Milvus standalone server on the same real vectors:
`python -m benchmarks.milvus [--limit N]`.

The vectors are the Myntra train + dev products embedded by `python -m benchmarks.run`
(its stores under benchmarks/work/myntra are reused; the `test` split is never read).
One store is indexed with each backend through the real CLI; then, per backend:

- build: `mmsearch index` wall time and seconds per part (a first full sync for Milvus);
- search: per-query latency (p50/p95) of a part's nearest-neighbour search and of the
  whole fused `Searcher.search`, and recall@10 against exact search over the same
  vectors, without and with filters (which Milvus evaluates itself);
- incremental: `mmsearch index` after 1% of the products changed and 0.3% were removed.

Writes benchmarks/results/milvus.{json,md} (benchmarks/work/milvus/ with --limit). Exits 0 with a message when the data or
the stores of `benchmarks.run` are missing.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch import Store

from .run import DEFAULT_DATA, RESULTS, WORK, mmsearch, write_csv

K = 10
QUERIES_PER_SET = 50  # milvus-lite evaluates a filter row by row in Python: about 1 s a query at 30k
FILTERS = {  # name -> Filters kwargs; selectivity is reported with the results
    "none": None,
    "gender=Women": {"where": {"gender": "Women"}},
    "category=Tshirts": {"category": "Tshirts"},
    "gender=Men, baseColour=Black": {"where": {"gender": "Men", "baseColour": "Black"}},
}


def combined_store(store: Path, limit: int | None) -> int:
    """A store holding train + dev products with the vectors already embedded by
    benchmarks.run (copied by content hash, so `embed` has nothing to do)."""
    source = WORK / "myntra"
    rows: list[dict[str, str]] = []
    for name in ("train.csv", "dev.csv"):
        with open(source / name, newline="", encoding="utf-8") as fh:
            rows += list(csv.DictReader(fh))[:limit]
    shutil.rmtree(store, ignore_errors=True)
    catalog = write_csv(store.parent / "catalog.csv", list(rows[0]), rows)
    mmsearch(store, "ingest", str(catalog), "--media-dir", str(DEFAULT_DATA / "myntra"), expect=(0, 3))
    train = json.loads((source / "train-store" / "manifest.json").read_text())
    Store(store).write_manifest({"format": train["format"], "models": train["models"], "text_fields": train["text_fields"]})
    db = sqlite3.connect(store / "catalog.db")
    for part in ("train-store", "dev-store"):
        db.execute("ATTACH ? AS src", (str(source / part / "catalog.db"),))
        db.execute("INSERT OR IGNORE INTO vectors SELECT * FROM src.vectors")
        db.commit()
        db.execute("DETACH src")
    db.close()
    report, _, _ = mmsearch(store, "embed")
    embedded = sum(m["embedded"] for m in report["modalities"].values())
    if embedded > 0.01 * len(rows):
        raise RuntimeError(f"{embedded} items had to be embedded: run `python -m benchmarks.run` first")
    return len(rows)


def build(store: Path, *flags: str) -> dict[str, Any]:
    report, seconds, _ = mmsearch(store, "index", *flags)
    return {"wall_s": seconds, "parts_s": report["built"], "synced": report.get("synced", {})}


# -- search ---------------------------------------------------------------------------
def query_sets(searcher: Any, data: Path, limit: int | None) -> dict[str, tuple[str, np.ndarray]]:
    from mmsearch.media import load_image

    wands = [line.split("\t")[1] for line in (data / "wands" / "queries.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    products = [r for r in csv.DictReader(open(data / "myntra" / "products.csv", encoding="utf-8")) if r["split"] in ("train", "dev")]
    rng = random.Random(0)
    titles = [r["title"] for r in rng.sample(products, QUERIES_PER_SET)]
    photos = [r["photo"] for r in products if r["photo"]]
    n = min(limit or QUERIES_PER_SET, QUERIES_PER_SET)
    text, image = searcher.encoder("text"), searcher.encoder("image")
    return {
        "text, WANDS queries": ("text", text.encode(wands[:n])),
        "text, catalog titles": ("text", text.encode(titles[:n])),
        "image, 512-px photos": ("image", image.encode([load_image(data / "myntra" / p) for p in photos[:n]])),
    }


class Exact:
    """Exact product-level search over one part's vectors (read from the hnswlib store)."""

    def __init__(self, part: Any):
        owners = [(pid, node) for pid, nodes in part.labels.items() for node in nodes]  # one row per item
        self.vectors = part.index.vectors(np.array([node for _, node in owners], dtype=np.int64))
        self.products = np.array([pid for pid, _ in owners])
        self.names, self.index = np.unique(self.products, return_inverse=True)

    def best(self, query: np.ndarray, allowed: set[str] | None) -> dict[str, float]:
        sims = self.vectors @ query
        best = np.full(len(self.names), -np.inf, dtype=np.float32)
        np.maximum.at(best, self.index, sims)
        mask = np.ones(len(self.names), dtype=bool) if allowed is None else np.isin(self.names, list(allowed))
        return dict(zip(self.names[mask], best[mask]))


def recall_at_k(found: set[str], exact: dict[str, float]) -> float:
    """Hits over k; a found product counts when its exact score reaches the exact k-th
    best, so ties (products sharing a vector) are not misses."""
    if not exact:
        return 1.0
    k = min(K, len(exact))
    kth = sorted(exact.values(), reverse=True)[k - 1]
    return sum(1 for pid in found if exact.get(pid, -np.inf) >= kth - 1e-6) / k


def search_figures(searchers: dict[str, Any], queries: dict[str, tuple[str, np.ndarray]], reference: Any) -> dict[str, Any]:
    from mmsearch.backends import Scope
    from mmsearch.filters import Filters

    out: dict[str, Any] = {}
    total = reference.store.db.execute("SELECT count(*) FROM products").fetchone()[0]
    for qname, (part_name, vectors) in queries.items():
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        exact = Exact(reference.part(part_name))
        for fname, kwargs in FILTERS.items():
            filters = Filters(**kwargs) if kwargs else None
            allowed = reference._allowed(filters)
            scope = Scope(filters, allowed)
            truth = [exact.best(q, allowed) for q in unit]
            row: dict[str, Any] = {"selectivity": 1.0 if allowed is None else len(allowed) / total}
            for backend, searcher in searchers.items():
                part = searcher.part(part_name)
                part.candidates(unit[0][None], K, scope)  # warm up
                latencies, recalls = [], []
                for q, t in zip(unit, truth):
                    started = time.perf_counter()
                    found = part.candidates(q[None], K, scope)
                    latencies.append((time.perf_counter() - started) * 1000)
                    recalls.append(recall_at_k(found, t))
                row[backend] = {
                    "p50_ms": float(np.percentile(latencies, 50)),
                    "p95_ms": float(np.percentile(latencies, 95)),
                    "recall@10": float(np.mean(recalls)),
                }
            out[f"{qname} | {fname}"] = row
            print(f"  {qname} | {fname}: " + ", ".join(f"{b} {row[b]['recall@10']:.3f}/{row[b]['p50_ms']:.1f}ms" for b in searchers), flush=True)
    return out


def fused_latency(searchers: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """Whole `Searcher.search` (BM25 + dense text + bridged images, fused) per backend."""
    from mmsearch import Query
    from mmsearch.filters import Filters

    out: dict[str, Any] = {}
    for fname, kwargs in (("none", None), ("gender=Women", FILTERS["gender=Women"])):
        row = {}
        for backend, searcher in searchers.items():
            searcher.search(Query(text=texts[0]), k=K)
            latencies = []
            for text in texts:
                started = time.perf_counter()
                searcher.search(Query(text=text), k=K, filters=Filters(**kwargs) if kwargs else None)
                latencies.append((time.perf_counter() - started) * 1000)
            row[backend] = {"p50_ms": float(np.percentile(latencies, 50)), "p95_ms": float(np.percentile(latencies, 95))}
        out[fname] = row
    return out


# -- incremental ----------------------------------------------------------------------
def incremental(stores: dict[str, Path], catalog: Path, n: int) -> dict[str, Any]:
    """1% of titles changed, 0.3% of products removed; then `embed` and a timed `index`."""
    with open(catalog, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rng = random.Random(1)
    removed = set(rng.sample([r["id"] for r in rows], max(1, n * 3 // 1000)))
    changed = set(rng.sample([r["id"] for r in rows if r["id"] not in removed], max(1, n // 100)))
    edited = [{**r, "title": r["title"] + " (new season)"} if r["id"] in changed else r for r in rows if r["id"] not in removed]
    path = write_csv(catalog.with_name("catalog-edited.csv"), list(rows[0]), edited)
    out: dict[str, Any] = {"changed": len(changed), "removed": len(removed)}
    for backend, store in stores.items():
        mmsearch(store, "ingest", str(path), "--media-dir", str(DEFAULT_DATA / "myntra"), "--prune", expect=(0, 3))
        mmsearch(store, "embed")
        out[backend] = build(store)
    return out


def report(results: dict[str, Any]) -> str:
    lines = [
        "# Milvus benchmark",
        "",
        f"{results['machine']}; {results['products']:,} products (Myntra train + dev), "
        f"{results['started']}, `{results['command']}`.",
        "",
        "## Build (first `mmsearch index`, seconds)",
        "",
        "| backend | wall | " + " | ".join(results["build"]["hnswlib"]["parts_s"]) + " |",
        "|---|---:|" + "---:|" * len(results["build"]["hnswlib"]["parts_s"]),
    ]
    for backend, b in results["build"].items():
        lines.append(f"| {backend} | {b['wall_s']:.1f} | " + " | ".join(f"{b['parts_s'].get(p, 0):.1f}" for p in results["build"]["hnswlib"]["parts_s"]) + " |")
    backends = list(results["build"])
    lines += [
        "",
        "## Nearest-neighbour search of one part, k=10 (recall@10 vs exact; p50 / p95 ms)",
        "",
        "| queries | filter | selectivity | " + " | ".join(backends) + " |",
        "|---|---|---:|" + "---|" * len(backends),
    ]
    for key, row in results["search"].items():
        qname, fname = key.split(" | ")
        cells = [f"{row[b]['recall@10']:.3f}; {row[b]['p50_ms']:.2f} / {row[b]['p95_ms']:.2f}" for b in backends]
        lines.append(f"| {qname} | {fname} | {row['selectivity']:.1%} | " + " | ".join(cells) + " |")
    lines += ["", "## Whole fused text query (`Searcher.search`, p50 / p95 ms)", "", "| filter | " + " | ".join(backends) + " |", "|---|" + "---|" * len(backends)]
    for fname, row in results["fused"].items():
        lines.append(f"| {fname} | " + " | ".join(f"{row[b]['p50_ms']:.1f} / {row[b]['p95_ms']:.1f}" for b in backends) + " |")
    inc = results["incremental"]
    lines += [
        "",
        f"## Incremental `mmsearch index` after {inc['changed']} titles changed and {inc['removed']} products removed (seconds)",
        "",
        "| backend | wall | text part | rows upserted / deleted (text) |",
        "|---|---:|---:|---|",
    ]
    for backend in backends:
        b = inc[backend]
        synced = b["synced"].get("text")
        rows = f"{synced['upserted']} / {synced['deleted']}" if synced else "whole index rebuilt"
        lines.append(f"| {backend} | {b['wall_s']:.1f} | {b['parts_s'].get('text', 0):.1f} | {rows} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="products per split (a quick run)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    if not (args.data / "myntra").exists() or not (WORK / "myntra" / "train-store" / "catalog.db").exists():
        print("skipped: needs ../shared/data and the stores of `python -m benchmarks.run`")
        return 0
    from mmsearch import Searcher
    from tests.milvus_server import MilvusServerProcess

    work = WORK / "milvus"
    started = time.strftime("%Y-%m-%d %H:%M")
    stores = {name: work / f"{name}-store" for name in ("hnswlib", "milvus-lite", "milvus-server")}
    print("combined store", flush=True)
    n = combined_store(stores["hnswlib"], args.limit)
    results: dict[str, Any] = {
        "started": started,
        "command": "python -m benchmarks.milvus" + (f" --limit {args.limit}" if args.limit else ""),
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}",
        "products": n,
        "build": {"hnswlib": build(stores["hnswlib"])},
    }
    for name in ("milvus-lite", "milvus-server"):
        shutil.rmtree(stores[name], ignore_errors=True)
        shutil.copytree(stores["hnswlib"], stores[name])
    shutil.rmtree(work / "server", ignore_errors=True)
    shutil.rmtree(work / "vectors.db", ignore_errors=True)  # milvus-lite 3 keeps a folder
    server = MilvusServerProcess(work / "server")
    uri = server.start()
    try:
        for name, target in (("milvus-lite", str(work / "vectors.db")), ("milvus-server", uri)):
            print(f"index {name}", flush=True)
            results["build"][name] = build(stores[name], "--backend", "milvus", "--uri", target)
        searchers = {name: Searcher(Store(path)) for name, path in stores.items()}
        print("search", flush=True)
        queries = query_sets(searchers["hnswlib"], args.data, args.limit)
        results["search"] = search_figures(searchers, queries, searchers["hnswlib"])
        wands = [line.split("\t")[1] for line in (args.data / "wands" / "queries.tsv").read_text(encoding="utf-8").splitlines()[1:]]
        results["fused"] = fused_latency(searchers, wands[: min(args.limit or QUERIES_PER_SET, QUERIES_PER_SET)])
        from mmsearch.backends.milvus import disconnect

        disconnect(str((work / "vectors.db").resolve()))  # milvus-lite: one process at a time
        print("incremental", flush=True)
        results["incremental"] = incremental(stores, work / "catalog.csv", n)
    finally:
        server.stop()
    out = RESULTS if not args.limit else work  # a quick run's figures are not results
    out.mkdir(exist_ok=True)
    (out / "milvus.json").write_text(json.dumps(results, indent=2))
    (out / "milvus.md").write_text(report(results))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
