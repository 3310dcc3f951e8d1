"""One command for every benchmark: `python -m benchmarks.run [--limit N]`.

Builds eval sets from ../shared/data (train and dev splits only), runs them through
the real CLI (`python -m mmsearch ...`, so the product's own evaluator is exercised)
and the library, and writes benchmarks/results/results.{md,json}. Scratch stores and
CSVs go to benchmarks/work/ (git-ignored). Exits 0 with a message when ../shared is
absent.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from . import datasets, photo

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
WORK = REPO / "benchmarks" / "work"
RESULTS = REPO / "benchmarks" / "results"


# -- running the CLI --------------------------------------------------------------
def mmsearch(store: Path, *args: str, expect: tuple[int, ...] = (0,)) -> tuple[dict | list | None, float, int]:
    """Run `python -m mmsearch ARGS --json`; return (parsed JSON, wall seconds, peak RSS MiB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmsearch", *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MMSEARCH_STORE": str(store)},
    )
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode not in expect:
        raise RuntimeError(f"mmsearch {' '.join(args)} exited {proc.returncode}: {stderr.strip()[-2000:]}")
    return (json.loads(stdout) if stdout.strip() else None), seconds, proc.returncode


def timed_with_peak_memory(store: Path, *args: str) -> tuple[dict, float, float]:
    """Like mmsearch() but also the child's peak resident memory (MiB), via wait4."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmsearch", *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MMSEARCH_STORE": str(store)},
    )
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"mmsearch {' '.join(args)} exited {proc.returncode}")
    return json.loads(stdout), seconds, usage.ru_maxrss / 1024


def write_csv(path: Path, header: list[str], rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(h, "") for h in header] if isinstance(row, dict) else row)
    return path


def write_eval_set(folder: Path, es: datasets.EvalSet) -> tuple[Path, Path]:
    header = ["query_id", "text", "image", "audio", "modality"]
    return (
        write_csv(folder / f"{es.name}.queries.csv", header, es.queries),
        write_csv(folder / f"{es.name}.qrels.csv", ["query_id", "product_id", "relevance"], es.qrels),
    )


def evaluate(store: Path, es_files: tuple[Path, Path], *extra: str) -> dict[str, Any]:
    queries, qrels = es_files
    report, _, _ = mmsearch(store, "eval", "--queries", str(queries), "--qrels", str(qrels), *extra)
    return report


def du_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


# -- the benchmarks ----------------------------------------------------------------
def build_store(store: Path, catalog: Path, media_dir: Path, results: dict, key: str) -> None:
    """Ingest, embed and index a fresh store, recording throughput, memory and time."""
    shutil.rmtree(store, ignore_errors=True)
    _, ingest_s, _ = mmsearch(store, "ingest", str(catalog), "--media-dir", str(media_dir), expect=(0, 3))
    embed, embed_s, embed_mib = timed_with_peak_memory(store, "embed")
    index, index_s, index_mib = timed_with_peak_memory(store, "index")
    gen = store / "indexes" / (store / "indexes" / "CURRENT").read_text().strip()
    _, reembed_s, _ = mmsearch(store, "embed")
    _, reindex_s, _ = mmsearch(store, "index")
    results[key] = {
        "ingest_s": ingest_s,
        "embed": {m: {"items": r["embedded"], "seconds": r["seconds"], "per_second": r["per_second"]} for m, r in embed["modalities"].items()},
        "embed_wall_s": embed_s,
        "embed_peak_rss_mib": embed_mib,
        "index_parts_s": index["built"],
        "index_wall_s": index_s,
        "index_peak_rss_mib": index_mib,
        "index_size_mib": du_mib(gen),
        "rerun_embed_s": reembed_s,
        "rerun_index_s": reindex_s,
    }


def myntra(data: Path, limit: int | None, results: dict) -> None:
    root = data / "myntra"
    rows = list(csv.DictReader(open(root / "products.csv", encoding="utf-8")))
    train = datasets.only_allowed(rows, ["train"])[:limit]
    dev = datasets.only_allowed(rows, ["dev"])[:limit]
    work = WORK / "myntra"
    header = datasets.CATALOG_COLUMNS
    train_store, dev_store = work / "train-store", work / "dev-store"
    print(f"myntra: train store ({len(train)} products)", flush=True)
    build_store(train_store, write_csv(work / "train.csv", header, datasets.myntra_catalog(train)), root, results, "myntra_train_store")
    print(f"myntra: dev store ({len(dev)} products)", flush=True)
    build_store(dev_store, write_csv(work / "dev.csv", header, datasets.myntra_catalog(dev)), root, results, "myntra_dev_store")

    print("myntra: photo embedding throughput", flush=True)
    results["myntra_train_photos"] = photo_throughput(root, train, work)

    sets = {
        "attributes": datasets.attribute_queries(dev, n=300),
        "known_item": datasets.known_item_queries(dev),
    }
    sets.update(photo_sets(dev, root, work))
    files = {name: write_eval_set(work / "sets", es) for name, es in sets.items()}
    quality: dict[str, Any] = {"queries": {name: len(es.queries) for name, es in sets.items()}}
    print("myntra: quality with the zero-shot bridge", flush=True)
    quality["zeroshot"] = _quality_runs(dev_store, files)

    print("myntra: align on the train store, load into the dev store", flush=True)
    heads = work / "heads.safetensors"
    align, align_s, align_mib = timed_with_peak_memory(train_store, "align", "--save", str(heads))
    results["align"] = {**align, "wall_s": align_s, "peak_rss_mib": align_mib}
    mmsearch(dev_store, "align", "--load", str(heads))
    mmsearch(dev_store, "index")
    quality["aligned"] = _quality_runs(dev_store, files)
    results["myntra_quality"] = quality
    results["myntra_photo"] = photo_quality(dev_store, files)
    results["text_fusion"] = text_fusion(rows, train_store, dev_store)
    results["speed"] = speed(train_store, dev, root, data)


def text_sets(rows: list[dict[str, str]], split: str) -> dict[str, datasets.EvalSet]:
    """The text query sets of one split: dev with seed 0 (the attribute set is the
    quality section's), train with seed 1 (where the fusion default was chosen)."""
    seed = 0 if split == "dev" else 1
    part = datasets.only_allowed(rows, [split])
    sets = (datasets.attribute_queries(part, n=300, seed=seed), datasets.natural_queries(part, n=300, seed=seed))
    return {f"{split}_{es.name}": replace(es, name=f"{split}_{es.name}") for es in sets}


def text_fusion(rows: list[dict[str, str]], train_store: Path, dev_store: Path) -> dict[str, Any]:
    """Every text query set x (BM25, dense text, fused default, tuned): ndcg@10 through
    `mmsearch eval`, and `mmsearch tune`'s 5-fold cross-validated default and tuned
    figures on the set's own queries (the store is not changed: no --save)."""
    out: dict[str, Any] = {}
    for split, store in (("train", train_store), ("dev", dev_store)):
        for name, es in text_sets(rows, split).items():
            print(f"text fusion: {name}", flush=True)
            files = write_eval_set(WORK / "myntra" / "sets", es)
            row = {
                config: evaluate(store, files, *flags)["metrics"]
                for config, flags in {"bm25": ["--modality", "lexical"], "dense_text": ["--modality", "text"], "fused": []}.items()
            }
            tuned, tune_s, _ = mmsearch(store, "tune", "--queries", str(files[0]), "--qrels", str(files[1]))
            row["tune"] = {**tuned, "wall_s": tune_s}
            out[name] = row
    return out


def photo_throughput(root: Path, train: list[dict[str, str]], work: Path) -> dict[str, Any]:
    """Image embedding throughput on 512-px photos (the train products that have one),
    beside the 60x80 thumbnails the stores hold."""
    rows = [{**r, "image": r["photo"]} for r in train if r["photo"]]
    store = work / "photo-store"
    shutil.rmtree(store, ignore_errors=True)
    catalog = write_csv(work / "photos.csv", datasets.CATALOG_COLUMNS, datasets.myntra_catalog(rows))
    mmsearch(store, "ingest", str(catalog), "--media-dir", str(root), expect=(0, 3))
    report, _, peak_mib = timed_with_peak_memory(store, "embed", "--modality", "image")
    image = report["modalities"]["image"]
    return {"items": image["embedded"], "seconds": image["seconds"], "per_second": image["per_second"], "embed_peak_rss_mib": peak_mib}


def photo_sets(dev: list[dict[str, str]], root: Path, work: Path) -> dict[str, datasets.EvalSet]:
    """The 512-px photo protocols and the altered-thumbnail (near-duplicate) ones."""
    sets = dict(zip(("photo_exact", "photo_category"), datasets.photo_queries(dev, root)))
    return {**sets, **photo.distorted_queries(dev, root, work / "distorted")}


def photo_quality(store: Path, files: dict[str, tuple[Path, Path]]) -> dict[str, Any]:
    """Same-product recall of each image query set, by the image signal alone and with the
    near-duplicate signal beside it."""
    names = ["photo_exact", *(name for name in files if name.startswith("duplicate_"))]
    return {
        name: {
            signals: evaluate(store, files[name], "--modality", signals, "-k", "1", "-k", "10")["metrics"]
            for signals in ("image", "image,duplicate")
        }
        for name in names
    }


def photo_only(data: Path, limit: int | None, out: Path) -> dict[str, Any]:
    """`--only photo`: the image query sets on the dev store an earlier full run built,
    merged into that run's results (the other sections are kept as they were)."""
    dev_store, work = WORK / "myntra" / "dev-store", WORK / "myntra"
    if not (dev_store / "catalog.db").exists():
        raise SystemExit(f"--only photo needs the dev store a full run builds: {dev_store} is missing")
    mmsearch(dev_store, "embed")  # records the image sizes and hashes of a store embedded before they were
    mmsearch(dev_store, "index")
    rows = list(csv.DictReader(open(data / "myntra" / "products.csv", encoding="utf-8")))
    dev = datasets.only_allowed(rows, ["dev"])[:limit]
    files = {name: write_eval_set(work / "sets", es) for name, es in photo_sets(dev, data / "myntra", work).items()}
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for state in ("zeroshot", "aligned"):  # `--modality image` does not use the bridge: one run serves both
        results["myntra_quality"][state]["photo_exact"] = evaluate(dev_store, files["photo_exact"], "--modality", "image", "-k", "1", "-k", "10")
        results["myntra_quality"][state]["photo_category"] = evaluate(dev_store, files["photo_category"], "--modality", "image", "-k", "10")
    results["myntra_photo"] = photo_quality(dev_store, files)
    return results


def _quality_runs(store: Path, files: dict[str, tuple[Path, Path]]) -> dict[str, Any]:
    attrs = {
        config: evaluate(store, files["attributes"], *flags)
        for config, flags in {
            "bm25": ["--modality", "lexical"],
            "dense_text": ["--modality", "text"],
            "image_only": ["--modality", "image"],
            "fused": [],
            "fused_image_weight_0.5": ["--weight", "image=0.5"],
            "fused_without_image": ["--modality", "lexical,text,attributes"],
            "fused_without_understanding": ["--modality", "lexical,text,image"],
        }.items()
    }
    return {
        "attributes": attrs,
        "known_item": evaluate(store, files["known_item"], "--modality", "image", "-k", "1", "-k", "10"),
        "photo_exact": evaluate(store, files["photo_exact"], "--modality", "image", "-k", "1", "-k", "10"),
        "photo_category": evaluate(store, files["photo_category"], "--modality", "image", "-k", "10"),
    }


def speed(store_path: Path, dev: list[dict[str, str]], root: Path, data: Path) -> dict[str, Any]:
    """Latency in-process and cold, HNSW recall vs exact, mmsearch vs raw hnswlib vs numpy."""
    from mmsearch import Query, Searcher, Store
    from mmsearch.media import load_image

    wands = [line.split("\t")[1] for line in (data / "wands" / "queries.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    searcher = Searcher(Store(store_path))
    out: dict[str, Any] = {
        **query_latency(searcher, [Query(text="warm up"), *(Query(text=t) for t in wands)], [[t] for t in wands[:5]]),
        "filtered": _filtered(searcher, wands),
    }
    # WANDS queries are about furniture: out of this catalog's distribution, the hard
    # case for HNSW. Dev titles and dev thumbnails are in distribution.
    text = searcher.encoder("text")
    query_sets = {
        "text, WANDS queries": ("text", text.encode(wands)),
        "text, dev titles": ("text", text.encode([r["title"] for r in dev[:480]])),
        "image, dev thumbnails": ("image", searcher.encoder("image").encode([load_image(root / r["image"]) for r in dev[:200]])),
    }
    out["search_paths"] = {name: _search_paths(searcher, part, queries) for name, (part, queries) in query_sets.items()}
    return out


def _filtered(searcher: Any, wands: list[str], k: int = 10) -> dict[str, Any]:
    """Fused query latency under filters of growing selectivity, and the text signal's
    recall@10 within the filter against an exact scan of the allowed products."""
    from mmsearch import Query
    from mmsearch.backends import Scope
    from mmsearch.filters import Filters

    part = searcher.part("text")
    text = searcher.encoder("text")
    out = {}
    for where in ({"gender": "Women"}, {"gender": "Men", "usage": "Casual"}, {"usage": "Casual"}):
        filters = Filters(where=where)
        allowed = searcher._allowed(filters)
        latencies, recall = [], []
        for query in wands[:100]:
            started = time.perf_counter()
            searcher.search(Query(text=query), k=k, filters=filters)
            latencies.append((time.perf_counter() - started) * 1000)
        for q in text.encode(wands[:100]):
            exact = part.score(q[None], allowed & part.products())
            kth = sorted(exact.values(), reverse=True)[k - 1]
            found = part.candidates(q[None], k, Scope(filters, allowed))
            recall.append(sum(exact[p] >= kth - 1e-6 for p in found) / k)
        out[",".join(f"{c}={v}" for c, v in where.items())] = {
            "allowed_fraction": len(allowed) / len(searcher.store.db.execute("SELECT id FROM products").fetchall()),
            "p50_ms": float(np.percentile(latencies, 50)),
            "p95_ms": float(np.percentile(latencies, 95)),
            "text_recall@10_vs_exact": float(np.mean(recall)),
        }
    return out


def _search_paths(searcher: Any, part_name: str, queries: np.ndarray, k: int = 10) -> dict[str, Any]:
    part = searcher.part(part_name)
    from mmsearch.backends import Scope
    from mmsearch.backends.hnsw import recall_vs_exact

    index = part.index
    vectors = index.vectors(np.arange(index.count))
    unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)

    def per_query_ms(fn) -> float:
        started = time.perf_counter()
        for q in unit:
            fn(q)
        return (time.perf_counter() - started) / len(unit) * 1000

    # An approximate hit counts when its similarity reaches the exact k-th best, so that
    # ties (products with the same text share a vector) are not counted as misses.
    index.index.set_ef(index.ef_search)
    graph_recall = recall_vs_exact(index.index.knn_query(unit, k=k)[0], vectors, unit, k)
    raw_ms = per_query_ms(lambda q: index.index.knn_query(q, k=k))
    numpy_ms = per_query_ms(lambda q: np.argpartition(-(vectors @ q), k)[:k])
    mmsearch_ms = per_query_ms(lambda q: part.score(q[None], part.candidates(q[None], k, Scope())))
    searched = np.stack([index.search(q, k)[0] for q in unit])
    return {
        "items": part.count,
        "nodes": int(index.count),
        "dim": int(vectors.shape[1]),
        "method": index.method,
        "ef_search": index.ef_search,
        "hnsw_recall@10_vs_exact": graph_recall,
        "mmsearch_recall@10_vs_exact": recall_vs_exact(searched, vectors, unit, k),
        "raw_hnswlib_ms": raw_ms,
        "numpy_exact_ms": numpy_ms,
        "mmsearch_path_ms": mmsearch_ms,
        "mmsearch_over_hnswlib": mmsearch_ms / raw_ms,
        "numpy_over_hnswlib": numpy_ms / raw_ms,
    }


#: the audio encoders compared: the default (DTW re-rank at query time) and the previous summary
FSDD_MODELS = ("librosa-mfcc-v1", "librosa-mfcc")


def fsdd(data: Path, results: dict) -> None:
    """Audio -> audio per held-out speaker (other speakers' clips) and within each speaker
    (its other takes), for each encoder; one full store embedded once per encoder, then
    each protocol's store is a copy re-ingested with --prune (so embed does no work)."""
    root = data / "fsdd"
    clips = datasets.only_allowed(list(csv.DictReader(open(root / "clips.csv", encoding="utf-8"))), ["train", "dev"])
    speakers = sorted({c["speaker"] for c in clips})
    work = WORK / "fsdd"
    everything = [{"id": c["file"].rsplit("/", 1)[-1].removesuffix(".wav"), "title": f"recording by {c['speaker']}", "audio": c["file"]} for c in clips]
    splits = {"other": datasets.fsdd_speaker_split, "same": datasets.fsdd_same_speaker_split}
    out: dict[str, Any] = {"encoders": {}, "same_speaker": {}, "clips": len(everything)}
    for model in FSDD_MODELS:
        full = work / f"all-store-{model}"
        print(f"fsdd: embedding {len(everything)} clips with {model}", flush=True)
        shutil.rmtree(full, ignore_errors=True)
        mmsearch(full, "ingest", str(write_csv(work / "all.csv", ["id", "title", "audio"], everything)), "--media-dir", str(root))
        embed, embed_s, embed_mib = timed_with_peak_memory(full, "embed", "--modality", "audio", "--audio-model", model)
        for protocol, split in splits.items():
            per_speaker = {}
            for speaker in speakers:
                catalog, es = split(clips, speaker, root)
                store = work / f"store-{protocol}-{speaker}"
                shutil.rmtree(store, ignore_errors=True)
                shutil.copytree(full, store)
                csv_path = write_csv(work / f"{protocol}-{speaker}.csv", ["id", "title", "audio"], catalog)
                mmsearch(store, "ingest", str(csv_path), "--media-dir", str(root), "--prune", "--force")
                mmsearch(store, "embed", "--modality", "audio")
                mmsearch(store, "index")
                per_speaker[speaker] = evaluate(store, write_eval_set(work / "sets", es), "-k", "10")["metrics"]
                if protocol == "other" and speaker == speakers[0] and model == FSDD_MODELS[-1]:
                    out["latency"] = fsdd_latency(store, es)
                shutil.rmtree(store)
            (out["encoders"] if protocol == "other" else out["same_speaker"])[model] = {
                "map": float(np.mean([m["map"] for m in per_speaker.values()])),
                "precision@10": float(np.mean([m["precision@10"] for m in per_speaker.values()])),
                "per_speaker": per_speaker,
            }
        if model == FSDD_MODELS[-1]:
            out.update(clips_per_second=embed["modalities"]["audio"]["per_second"], embed_peak_rss_mib=embed_mib)
    results["fsdd"] = out


def fsdd_latency(store_path: Path, es: datasets.EvalSet) -> dict[str, Any]:
    """Audio query latency on one speaker's store (2,250 clips): in process through
    `Searcher.search` (k=10, after one warm-up query) and as cold `mmsearch query --audio`."""
    from mmsearch import Query, Searcher, Store

    paths = [Path(q["audio"]) for q in es.queries]
    queries = [Query(audio=paths[0]), *(Query(audio=p) for p in paths)]
    return query_latency(Searcher(Store(store_path)), queries, [["--audio", str(p)] for p in paths[:5]])


def query_latency(searcher: Any, queries: list[Any], cold_args: list[list[str]], k: int = 10) -> dict[str, Any]:
    """In-process latency of ``queries[1:]`` after ``queries[0]`` as a warm-up, and the
    median of cold `mmsearch query ARGS -k K` processes, one per ``cold_args``."""
    searcher.search(queries[0], k=k)
    latencies = []
    for query in queries[1:]:
        started = time.perf_counter()
        searcher.search(query, k=k)
        latencies.append(time.perf_counter() - started)
    lat = np.array(latencies) * 1000
    cold = [mmsearch(searcher.store.root, "query", *args, "-k", str(k))[1] * 1000 for args in cold_args]
    return {
        "queries": len(queries) - 1,
        "in_process_ms": {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95))},
        "cold_process_ms": {"p50": float(np.median(cold)), "runs": len(cold)},
    }


def machine() -> dict[str, Any]:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem / 2**20, 1), "python": platform.python_version(), "torch": torch.__version__}


def text_only(args: argparse.Namespace) -> int:
    """The text fusion section alone, on the stores of an earlier full run, merged into
    its results (the other sections are kept as they were)."""
    work = WORK / "myntra"
    if not (work / "dev-store").exists() or not (work / "train-store").exists():
        print(f"no stores in {work}: run the full benchmark first")
        return 1
    rows = list(csv.DictReader(open(args.data / "myntra" / "products.csv", encoding="utf-8")))
    path = args.out / "results.json"
    results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"machine": machine(), "limit": None}
    started = time.perf_counter()
    results["text_fusion"] = text_fusion(rows, work / "train-store", work / "dev-store")
    results.setdefault("started", time.strftime("%Y-%m-%d %H:%M:%S"))
    results.setdefault("total_s", time.perf_counter() - started)
    write_results(results, args.out)
    return 0


def write_results(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    from .report import markdown

    (out / "results.md").write_text(markdown(results), encoding="utf-8")
    print((out / "results.md").read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("MMSEARCH_BENCH_DATA", DEFAULT_DATA)))
    parser.add_argument("--limit", type=int, default=None, help="products per split (quick runs)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--only", choices=["myntra", "fsdd", "photo", "text"], default=None,
        help="one section; photo or text: those rows alone, on the stores an earlier full run built, merged into its results",
    )
    args = parser.parse_args(argv)
    if not (args.data / "myntra" / "products.csv").exists():
        print(f"benchmarks skipped: no data at {args.data} (expected ../shared/data beside the repo)")
        return 0
    random.seed(0)
    if args.only == "photo":
        write_results(photo_only(args.data, args.limit, args.out), args.out)
        return 0
    results: dict[str, Any] = {"machine": machine(), "limit": args.limit, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    if args.only == "text":
        return text_only(args)
    started = time.perf_counter()
    if args.only in (None, "myntra"):
        myntra(args.data, args.limit, results)
    if args.only in (None, "fsdd"):
        fsdd(args.data, results)
    results["total_s"] = time.perf_counter() - started
    if args.only and (args.out / "results.json").exists():  # one section re-run: keep the others
        results = {**json.loads((args.out / "results.json").read_text(encoding="utf-8")), **results}
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
