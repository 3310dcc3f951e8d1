"""fp32 against dynamic int8 for the default text model on ONNX Runtime: texts per
second and dense-only retrieval quality, to decide whether int8 may be the default.

    .venv/bin/python -m benchmarks.quantization

Needs the dev store and query sets of `python -m benchmarks.run`. The int8 model is
onnxruntime's `quantize_dynamic` (QInt8 weights) of the cached fp32 export. Both
encode the dev products' texts (throughput: the same 1,500 texts, interleaved, twice)
and the 300 attribute queries; each query ranks the products by cosine alone, scored
with pytrec_eval against the benchmark's qrels. Writes results/quantization.{json,md}.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from typing import Any

import numpy as np

from .run import RESULTS, WORK


def attribute_set() -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    sets = WORK / "myntra" / "sets"
    with open(sets / "attributes.queries.csv", encoding="utf-8") as fh:
        queries = {r["query_id"]: r["text"] for r in csv.DictReader(fh)}
    qrels: dict[str, dict[str, int]] = {}
    with open(sets / "attributes.qrels.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            qrels.setdefault(r["query_id"], {})[r["product_id"]] = int(r["relevance"])
    return queries, qrels


def quality(encoder: Any, ids: list[str], texts: list[str], queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    import pytrec_eval

    products, vectors = encoder.encode(texts), encoder.encode(list(queries.values()))
    run = {}
    for qid, q in zip(queries, vectors):
        sims = products @ q
        run[qid] = {ids[i]: float(sims[i]) for i in np.argsort(-sims)[:10]}
    scores = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10"}).evaluate(run)
    return {
        "ndcg@10": float(np.mean([s["ndcg_cut_10"] for s in scores.values()])),
        "recall@10": float(np.mean([s["recall_10"] for s in scores.values()])),
    }


def main() -> int:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from mmsearch import Store
    from mmsearch.catalog import iter_products, product_text
    from mmsearch.encoders.onnx import session
    from mmsearch.encoders.text import OnnxSentenceEncoder

    dev = WORK / "myntra" / "dev-store"
    if not (dev / "catalog.db").exists():
        print("benchmark skipped: run `python -m benchmarks.run` first (it builds the dev store and query sets)")
        return 0
    rows = list(iter_products(Store(dev)))
    ids, texts = [r["id"] for r in rows], [product_text(r, None) for r in rows]
    queries, qrels = attribute_set()
    fp32 = OnnxSentenceEncoder()
    int8_path = WORK / "minilm-int8.onnx"
    quantize_dynamic(str(fp32.model_path), str(int8_path), weight_type=QuantType.QInt8)
    int8 = OnnxSentenceEncoder()
    int8.session = session(int8_path)
    encoders = {"fp32": fp32, "int8": int8}
    speed: dict[str, list[float]] = {name: [] for name in encoders}
    for encoder in encoders.values():
        encoder.encode(texts[:20])
    for _ in range(2):
        for name, encoder in encoders.items():
            started = time.perf_counter()
            encoder.encode(texts[:1500])
            speed[name].append(1500 / (time.perf_counter() - started))
    a, b = fp32.encode(texts[:500]), int8.encode(texts[:500])
    cosine = np.sum(a * b, axis=1)
    results = {
        name: {"texts_per_s": max(speed[name]), **quality(encoder, ids, texts, queries, qrels)} for name, encoder in encoders.items()
    }
    results["int8_vs_fp32_cosine"] = {"min": float(cosine.min()), "mean": float(cosine.mean())}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quantization.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    lines = [
        "# fp32 vs dynamic int8, default text model (dense only, 300 dev attribute queries)",
        "",
        "| model | texts/s | ndcg@10 | recall@10 |",
        "|---|---:|---:|---:|",
        *(f"| {n} | {results[n]['texts_per_s']:.0f} | {results[n]['ndcg@10']:.4f} | {results[n]['recall@10']:.4f} |" for n in encoders),
        "",
        f"Cosine of int8 to fp32 vectors (500 product texts): min {cosine.min():.3f}, mean {cosine.mean():.3f}.",
        "",
    ]
    (RESULTS / "quantization.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
