"""A million products: ingest, index build, query latency, recall and memory at the
scale where one machine's limits start to show.

    .venv/bin/python -m benchmarks.million [--products 1000000] [--queries 200]

Needs the Myntra train store that `python -m benchmarks.run` builds
(benchmarks/work/myntra/train-store): its real MiniLM text vectors seed the synthetic ones.

How the catalog is made (honestly synthetic): row i copies the attributes of train
product i mod 26,432 and gets a title of its own (the source title plus "Style <i>"), so
every row's text is distinct. Embedding a million texts with MiniLM would take about an
hour here, so the text vectors are made, not embedded: each row's vector is its source
product's real vector plus Gaussian noise (cosine to the source about 0.9), which keeps
the real catalog's clustered density. They are written into the store's ``vectors``
table under the text model's id, exactly where `mmsearch embed` writes them; `embed`
then finds nothing to do, and `index` and `query` run unchanged. No images: the text
part and BM25 are what grow with the catalog.

Measured: `mmsearch ingest` and `mmsearch index` as whole processes (wall time, peak
RSS via wait4), each part's build time, the store's size on disk; in process, fused
text queries (WANDS query texts, encoded by the real model) p50/p95, and the text part's
recall@10 against an exact scan of the same million vectors. Writes
benchmarks/results/million.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .run import DEFAULT_DATA, RESULTS, WORK, du_mib, mmsearch, timed_with_peak_memory

NOISE_COSINE = 0.9


def write_catalog(path: Path, train_store: Path, n: int) -> list[str]:
    """The synthetic CSV; returns each row's source product id."""
    from mmsearch import Store
    from mmsearch.catalog import iter_products

    source = list(iter_products(Store(train_store)))
    header = ["id", "title", "category", "brand", "price", *sorted({k for r in source for k in json.loads(r["attributes"] or "{}")})]
    sources = []
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for i in range(n):
            row = source[i % len(source)]
            attributes = json.loads(row["attributes"] or "{}")
            writer.writerow(
                [f"m{i}", f"{row['title']} Style {i}", row["category"], row["brand"], row["price"] or "", *(attributes.get(c, "") for c in header[5:])]
            )
            sources.append(row["id"])
    return sources


def write_vectors(store_path: Path, train_store: Path, sources: list[str], seed: int = 0) -> None:
    """Each product text's vector: its source product's real vector plus noise."""
    from mmsearch import Store
    from mmsearch.catalog import iter_products, product_text
    from mmsearch.embedding import text_hash, vector_matrix

    train = Store(train_store)
    text_model = train.manifest()["models"]["text"]
    train_ids = [r["id"] for r in iter_products(train)]
    real, _ = vector_matrix(train, "text", text_model["id"], [text_hash(product_text(r, None)) for r in iter_products(train)])
    row_of = {pid: i for i, pid in enumerate(train_ids)}
    dim = text_model["dim"]
    sigma = np.sqrt((1 / NOISE_COSINE**2 - 1) / dim)
    rng = np.random.default_rng(seed)
    store = Store(store_path)
    rows = [(r["id"], text_hash(product_text(r, None))) for r in iter_products(store)]
    for start in range(0, len(rows), 50_000):
        chunk = rows[start : start + 50_000]
        base = real[[row_of[sources[int(pid[1:])]] for pid, _ in chunk]]
        noisy = base + sigma * rng.standard_normal(base.shape, dtype=np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        with store.transaction() as tx:
            tx.executemany(
                "INSERT OR REPLACE INTO vectors (modality, content_hash, model, vector) VALUES ('text', ?, ?, ?)",
                [(h, text_model["id"], v.astype("<f4").tobytes()) for (_, h), v in zip(chunk, noisy)],
            )
    store.close()


def query_figures(store_path: Path, wands: list[str], k: int = 10) -> dict[str, Any]:
    from mmsearch import Query, Searcher, Store
    from mmsearch.backends.hnsw import EF_LADDER, recall_vs_exact

    searcher = Searcher(Store(store_path))
    searcher.search(Query(text="warm up"), k=k)
    latencies = []
    for text in wands:
        started = time.perf_counter()
        searcher.search(Query(text=text), k=k)
        latencies.append((time.perf_counter() - started) * 1000)
    part = searcher.part("text")
    index = part.index
    queries = searcher.encoder("text").encode(wands)
    found = np.stack([index.search(q, k)[0] for q in queries])
    sweep = []  # what the graph alone gives at each ef, whichever method the part chose
    index.index.set_num_threads(1)
    for ef in EF_LADDER:
        index.index.set_ef(ef)
        started = time.perf_counter()
        labels = index.index.knn_query(queries, k=k)[0]
        ms = (time.perf_counter() - started) / len(queries) * 1000
        sweep.append({"ef": ef, "recall@10": recall_vs_exact(labels, index.matrix, queries, k), "ms": ms})
    return {
        "graph_by_ef": sweep,
        "queries": len(wands),
        "fused_p50_ms": float(np.percentile(latencies, 50)),
        "fused_p95_ms": float(np.percentile(latencies, 95)),
        "text_method": index.method,
        "text_ef_search": index.ef_search,
        "text_recall@10_vs_exact": recall_vs_exact(found, index.matrix, queries, k),
    }


def markdown(r: dict[str, Any]) -> str:
    q = r["query"]
    return "\n".join(
        [
            "# A million products",
            "",
            f"Machine: {r['machine']}. {r['products']:,} synthetic products (benchmarks/million.py), text + BM25 parts.",
            "",
            "| measure | value | target |",
            "|---|---:|---:|",
            f"| `mmsearch ingest` of the CSV, wall s | {r['ingest_s']:.0f} | ≤ 180 |",
            f"| ingest peak RSS MiB | {r['ingest_peak_rss_mib']:.0f} | |",
            f"| `mmsearch index` wall s | {r['index_s']:.0f} | |",
            f"| text part build s (graph, calibration, files) | {r['index_parts_s'].get('text', 0):.0f} | ≤ 900 |",
            f"| lexical part build s | {r['index_parts_s'].get('lexical', 0):.0f} | |",
            f"| index peak RSS MiB | {r['index_peak_rss_mib']:.0f} | ≤ 6144 |",
            f"| store on disk MiB (catalog.db + index) | {r['disk_mib']:.0f} | |",
            f"| text part: method, calibrated ef | {q['text_method']}, {q['text_ef_search']} | |",
            f"| text recall@10 vs exact ({q['queries']} WANDS queries) | {q['text_recall@10_vs_exact']:.3f} | ≥ 0.98 |",
            f"| fused text query in process, p50 ms | {q['fused_p50_ms']:.1f} | ≤ 10 |",
            f"| fused text query in process, p95 ms | {q['fused_p95_ms']:.1f} | |",
            "",
            "The graph alone (M=16, ef_construction=200), one query at a time, WANDS queries:",
            "",
            "| ef | recall@10 vs exact | ms per query |",
            "|---:|---:|---:|",
            *(f"| {row['ef']} | {row['recall@10']:.3f} | {row['ms']:.2f} |" for row in q["graph_by_ef"]),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("MMSEARCH_BENCH_DATA", DEFAULT_DATA)))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--queries-only", action="store_true", help="reuse the store of the last run and its build figures")
    args = parser.parse_args(argv)
    train_store = WORK / "myntra" / "train-store"
    if not (train_store / "catalog.db").exists() or not (args.data / "wands" / "queries.tsv").exists():
        print(f"benchmark skipped: needs {train_store} (run `python -m benchmarks.run` first) and {args.data}/wands")
        return 0
    work = WORK / "million"
    store = work / "store"
    wands = [line.split("\t")[1] for line in (args.data / "wands" / "queries.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    if args.queries_only:
        results = json.loads((args.out / "million.json").read_text(encoding="utf-8"))
        results["query"] = query_figures(store, wands[: args.queries])
        return write(results, args.out)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    print(f"million: writing {args.products:,} catalog rows", flush=True)
    sources = write_catalog(work / "catalog.csv", train_store, args.products)
    print("million: ingest", flush=True)
    _, ingest_s, ingest_mib = timed_with_peak_memory(store, "ingest", str(work / "catalog.csv"))
    print("million: text vectors (real vectors plus noise)", flush=True)
    write_vectors(store, train_store, sources)
    mmsearch(store, "embed")  # finds every vector present: records the model, embeds nothing
    print("million: index", flush=True)
    index, index_s, index_mib = timed_with_peak_memory(store, "index")
    print("million: queries", flush=True)
    results = {
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "products": args.products,
        "ingest_s": ingest_s,
        "ingest_peak_rss_mib": ingest_mib,
        "index_s": index_s,
        "index_parts_s": index["built"],
        "index_peak_rss_mib": index_mib,
        "disk_mib": du_mib(store),
        "query": query_figures(store, wands[: args.queries]),
        "total_s": time.perf_counter() - started,
    }
    return write(results, args.out)


def write(results: dict[str, Any], out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    (out / "million.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (out / "million.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
