"""Evaluation: run a query set through the real search path and score it against
graded relevance judgments with trec_eval's measures (pytrec_eval).

Every query that has at least one relevant product counts; a query that returns
nothing scores 0 on every measure (trec_eval itself would silently drop it). f1@k is
computed per query from trec_eval's P@k and recall@k, then averaged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytrec_eval

from .encoders import parse_modalities
from .errors import ExitCode, MMSearchError
from .filters import Filters
from .search import SIGNALS, Query, Searcher

RUN_DEPTH = 100  # map and mrr are computed over this many results


@dataclass
class EvalQuery:
    id: str
    query: Query
    modalities: list[str] | None = None


@dataclass
class EvalReport:
    metrics: dict[str, float]
    queries: int
    k: list[int]
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "queries": self.queries, "k": self.k[0] if len(self.k) == 1 else self.k}


def _read_csv(path: Path, required: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise MMSearchError(f"{path} not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MMSearchError(f"{path} is not a readable UTF-8 CSV ({exc})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise MMSearchError(f"{path} has no {missing[0]!r} column (columns: {', '.join(frame.columns)})")
    return frame


def read_queries(path: Path) -> list[EvalQuery]:
    """QUERIES.csv: query_id and any of text, image, audio (paths relative to the file's
    folder unless absolute), optional modality (comma list)."""
    frame = _read_csv(path, ["query_id"])
    base = path.parent
    queries = []
    for line, row in enumerate(frame.to_dict("records"), start=2):
        def media(column: str) -> Path | None:
            value = row.get(column, "").strip()
            return (base / value if not Path(value).is_absolute() else Path(value)) if value else None

        query = Query(text=row.get("text", "").strip() or None, image=media("image"), audio=media("audio"))
        if query.is_empty():
            raise MMSearchError(f"{path} line {line}: query {row['query_id']!r} has no text, image or audio")
        modality = row.get("modality", "").strip()
        signals = parse_modalities(modality, SIGNALS, f"{path} line {line}: modality") if modality else None
        queries.append(EvalQuery(row["query_id"].strip(), query, signals))
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """QRELS.csv: query_id, product_id, relevance (integer grade, > 0 relevant)."""
    frame = _read_csv(path, ["query_id", "product_id", "relevance"])
    qrels: dict[str, dict[str, int]] = {}
    for line, row in enumerate(frame.to_dict("records"), start=2):
        try:
            grade = int(row["relevance"])
        except ValueError:
            raise MMSearchError(f"{path} line {line}: relevance {row['relevance']!r} is not an integer") from None
        qrels.setdefault(row["query_id"].strip(), {})[row["product_id"].strip()] = grade
    return qrels


def _measures(ks: Sequence[int]) -> set[str]:
    return {"map", "recip_rank"} | {f"{m}.{k}" for k in ks for m in ("recall", "P", "ndcg_cut")}


def score_run(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]], ks: Sequence[int]) -> dict[str, dict[str, float]]:
    """Per-query IR metrics under mmsearch's names, for every query with a relevant product."""
    judged = {q: rels for q, rels in qrels.items() if any(g > 0 for g in rels.values())}
    results = pytrec_eval.RelevanceEvaluator(judged, _measures(ks)).evaluate(
        {q: docs for q, docs in run.items() if q in judged and docs}
    )
    per_query = {}
    for qid in judged:
        r = results.get(qid, {})
        metrics = {"map": r.get("map", 0.0), "mrr": r.get("recip_rank", 0.0)}
        for k in ks:
            p, rec = r.get(f"P_{k}", 0.0), r.get(f"recall_{k}", 0.0)
            metrics |= {
                f"recall@{k}": rec,
                f"precision@{k}": p,
                f"f1@{k}": 2 * p * rec / (p + rec) if p + rec else 0.0,
                f"ndcg@{k}": r.get(f"ndcg_cut_{k}", 0.0),
            }
        per_query[qid] = metrics
    return per_query


def evaluate(
    searcher: Searcher,
    queries: list[EvalQuery],
    qrels: dict[str, dict[str, int]],
    ks: Sequence[int] = (10,),
    fusion: str = "rrf",
    modalities: list[str] | None = None,
    filters: Filters | None = None,
    progress: Any = None,
    weights: dict[str, float] | None = None,
) -> EvalReport:
    ks = sorted(set(ks))
    judged = [q for q in queries if any(g > 0 for g in qrels.get(q.id, {}).values())]
    if not judged:
        raise MMSearchError("no query in QUERIES.csv has a relevant product in QRELS.csv: check the query ids")
    depth = max(RUN_DEPTH, *ks)
    run: dict[str, dict[str, float]] = {}
    latencies = []
    # Load each query kind's models before timing, so latency is search, not start-up.
    kinds = {(bool(q.query.text), bool(q.query.image), bool(q.query.audio)): q for q in judged}
    for q in kinds.values():
        searcher.search(q.query, k=1, filters=filters, modalities=q.modalities or modalities, fusion=fusion, weights=weights)
    task = progress.add_task("eval", total=len(judged)) if progress else None
    for q in judged:
        started = time.perf_counter()
        results = searcher.search(
            q.query, k=depth, filters=filters, modalities=q.modalities or modalities, fusion=fusion, weights=weights
        )
        latencies.append(time.perf_counter() - started)
        # trec_eval orders by score and breaks ties by doc id: give strictly falling scores.
        run[q.id] = {r.id: float(depth - r.rank + 1) for r in results}
        if progress:
            progress.advance(task)
    per_query = score_run(run, {q.id: qrels[q.id] for q in judged}, ks)
    names = list(next(iter(per_query.values())))
    metrics = {name: float(np.mean([m[name] for m in per_query.values()])) for name in names}
    lat_ms = np.array(latencies) * 1000
    metrics |= {
        "latency_ms_p50": float(np.percentile(lat_ms, 50)),
        "latency_ms_p95": float(np.percentile(lat_ms, 95)),
        "qps": len(latencies) / float(np.sum(latencies)),
    }
    return EvalReport(metrics={k: round(v, 6) for k, v in metrics.items()}, queries=len(judged), k=ks, per_query=per_query)


def parse_thresholds(items: Sequence[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise MMSearchError(f"--fail-under {item!r}: expected METRIC=VALUE, e.g. ndcg@10=0.5", ExitCode.USAGE)
    return out


def below_thresholds(metrics: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """One message per metric on the wrong side of its bar (an unknown metric name is an
    error). A bar is a floor for quality and qps, a ceiling for latency (lower is better):
    `--fail-under latency_ms_p95=100` fails when p95 is above 100 ms."""
    failed = []
    for name, bar in thresholds.items():
        if name not in metrics:
            raise MMSearchError(f"--fail-under: unknown metric {name!r}; metrics are {', '.join(metrics)}", ExitCode.USAGE)
        if name.startswith("latency_") and metrics[name] > bar:
            failed.append(f"{name} = {metrics[name]:.4f} is above {bar}")
        elif not name.startswith("latency_") and metrics[name] < bar:
            failed.append(f"{name} = {metrics[name]:.4f} is below {bar}")
    return failed
