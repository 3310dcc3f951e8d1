"""Evaluation: run a query set through the real search path and score it against
graded relevance judgments with trec_eval's measures (pytrec_eval).

Every query that has at least one relevant product in the store counts; a query that
returns nothing scores 0 on every measure (trec_eval itself would silently drop it).
f1@k is computed per query from trec_eval's P@k and recall@k, then averaged. What is
not scored (queries without a relevant product, judgments of unknown queries or of
products the store does not hold) is listed in the report, never dropped in silence.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytrec_eval

from .encoders import parse_modalities
from .errors import ExitCode, MMSearchError
from .filters import Filters
from .options import parse_pairs
from .search import SIGNALS, Query, Result, Searcher

if TYPE_CHECKING:
    from .speech import Transcriber, Transcript
    from .understanding import Vocabulary

RUN_DEPTH = 100  # map and mrr are computed over this many results
DEFAULT_KS = (10,)
#: the metrics, under mmsearch's names: over the whole run, at each cutoff k, and timing
RANKED = ("map", "mrr")
AT_K = ("recall", "precision", "f1", "ndcg")
TIMING = ("latency_ms_p50", "latency_ms_p95", "qps")
EXAMPLES = 3  # ids named per kind in the one-line summary of what was not scored


def metric_names(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    """Every metric `evaluate` reports for these cutoffs, in its order."""
    return [*RANKED, *(f"{m}@{k}" for k in sorted(set(ks)) for m in AT_K), *TIMING]


@dataclass
class EvalQuery:
    id: str
    query: Query
    modalities: list[str] | None = None
    #: a spoken query (the voice column): its transcript becomes the query's text
    voice: Path | None = None


@dataclass
class EvalReport:
    metrics: dict[str, float]
    queries: int
    k: list[int]
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    #: what was not scored: queries_without_relevant (query ids), qrels_unknown_queries
    #: (query ids in QRELS only), qrels_unknown_products ([query id, product id] pairs)
    skipped: dict[str, list[Any]] = field(default_factory=dict)
    #: the fusion settings the queries ran with (FusionSettings.to_dict)
    fusion: dict[str, Any] = field(default_factory=dict)
    #: what `eval --report` shows besides the numbers (report.py), kept from the one run
    #: that was scored: the scored queries, their judgments (of products the store holds),
    #: each one's ranking as scored ({product: score}, to RUN_DEPTH) and its first max(k)
    #: results in full
    scored: list[EvalQuery] = field(default_factory=list, repr=False)
    judgments: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)
    run: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)
    rankings: dict[str, list[Result]] = field(default_factory=dict, repr=False)
    #: what each scored voice query was heard as, by query id
    voice: dict[str, Transcript] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        k = self.k[0] if len(self.k) == 1 else self.k
        out = {"metrics": self.metrics, "queries": self.queries, "k": k, "skipped": self.skipped, "fusion": self.fusion}
        if self.voice:
            out["voice"] = {qid: heard.to_dict() for qid, heard in self.voice.items()}
        return out

    def unheard(self) -> str | None:
        """One line naming the voice queries in which no words were recognised (they
        returned nothing and scored 0), or None."""
        ids = [qid for qid, heard in self.voice.items() if not heard.text]
        if not ids:
            return None
        return f"{len(ids)} voice quer{'y' if len(ids) == 1 else 'ies'} with no words recognised, scored 0: {', '.join(ids[:EXAMPLES])}" + (", …" if len(ids) > EXAMPLES else "")

    def skipped_summary(self) -> str | None:
        """One line: how many of each kind were not scored, with a few examples."""

        def some(items: list[str]) -> str:
            return ", ".join(items[:EXAMPLES]) + (", …" if len(items) > EXAMPLES else "")

        queries = self.skipped.get("queries_without_relevant", [])
        unknown_queries = self.skipped.get("qrels_unknown_queries", [])
        products = [f"{q}/{p}" for q, p in self.skipped.get("qrels_unknown_products", [])]
        parts = [
            f"queries without a relevant product in QRELS: {len(queries)} ({some(queries)})" if queries else "",
            f"QRELS query ids not in QUERIES: {len(unknown_queries)} ({some(unknown_queries)})" if unknown_queries else "",
            f"judgments of products not in the store: {len(products)} ({some(products)})" if products else "",
        ]
        return "; ".join(p for p in parts if p) or None


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
    """QUERIES.csv: query_id and any of text, voice, image, audio (paths relative to the
    file's folder unless absolute), optional modality (comma list). A voice clip's words
    are the query's text, so a query gives text or voice, not both."""
    frame = _read_csv(path, ["query_id"])
    base = path.parent
    queries = []
    seen: dict[str, int] = {}
    for line, row in enumerate(frame.to_dict("records"), start=2):
        qid = row["query_id"].strip()
        if qid in seen:
            raise MMSearchError(f"{path} line {line}: query_id {qid!r} repeats line {seen[qid]}: give each query its own id")
        seen[qid] = line

        def media(column: str) -> Path | None:
            value = row.get(column, "").strip()
            return (base / value if not Path(value).is_absolute() else Path(value)) if value else None

        query = Query(text=row.get("text", "").strip() or None, image=media("image"), audio=media("audio"))
        voice = media("voice")
        if query.is_empty() and voice is None:
            raise MMSearchError(f"{path} line {line}: query {row['query_id']!r} has no text, voice, image or audio")
        if query.text and voice is not None:
            raise MMSearchError(f"{path} line {line}: query {row['query_id']!r} has both text and voice: the voice's transcript is its text, give one")
        modality = row.get("modality", "").strip()
        signals = parse_modalities(modality, SIGNALS, f"{path} line {line}: modality") if modality else None
        queries.append(EvalQuery(qid, query, signals, voice))
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """QRELS.csv: query_id, product_id, relevance (integer grade, > 0 relevant)."""
    frame = _read_csv(path, ["query_id", "product_id", "relevance"])
    qrels: dict[str, dict[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    for line, row in enumerate(frame.to_dict("records"), start=2):
        try:
            grade = int(row["relevance"])
        except ValueError:
            raise MMSearchError(f"{path} line {line}: relevance {row['relevance']!r} is not an integer") from None
        pair = (row["query_id"].strip(), row["product_id"].strip())
        if pair in seen:
            raise MMSearchError(
                f"{path} line {line}: query {pair[0]!r} judges product {pair[1]!r} again (line {seen[pair]}): keep one grade"
            )
        seen[pair] = line
        qrels.setdefault(pair[0], {})[pair[1]] = grade
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
        metrics = dict(zip(RANKED, (r.get("map", 0.0), r.get("recip_rank", 0.0))))
        for k in ks:
            p, rec = r.get(f"P_{k}", 0.0), r.get(f"recall_{k}", 0.0)
            at_k = (rec, p, 2 * p * rec / (p + rec) if p + rec else 0.0, r.get(f"ndcg_cut_{k}", 0.0))
            metrics |= {f"{m}@{k}": value for m, value in zip(AT_K, at_k)}
        per_query[qid] = metrics
    return per_query


def split_qrels(
    searcher: Searcher, queries: list[EvalQuery], qrels: dict[str, dict[str, int]]
) -> tuple[list[EvalQuery], dict[str, dict[str, int]], dict[str, list[Any]]]:
    """The queries to score and their judgments, and what is left out: judgments of
    query ids QUERIES lacks, and of products the store does not hold (no search can
    return them: they would measure the catalog, not the search); then the queries left
    without a relevant product."""
    asked = {q.id for q in queries}
    pids = {p for q in asked & qrels.keys() for p in qrels[q]}
    known = {pid for (pid,) in searcher.store.select_in("SELECT id FROM products WHERE id IN ({marks})", pids)}
    kept = {q: {p: g for p, g in qrels[q].items() if p in known} for q in asked & qrels.keys()}
    judged = [q for q in queries if any(g > 0 for g in kept.get(q.id, {}).values())]
    scored = {q.id for q in judged}
    skipped = {
        "queries_without_relevant": [q.id for q in queries if q.id not in scored],
        "qrels_unknown_queries": [q for q in qrels if q not in asked],
        "qrels_unknown_products": [[q.id, p] for q in queries for p in qrels.get(q.id, {}) if p not in known],
    }
    return judged, {q.id: kept[q.id] for q in judged}, skipped


def evaluate(
    searcher: Searcher,
    queries: list[EvalQuery],
    qrels: dict[str, dict[str, int]],
    ks: Sequence[int] = (10,),
    fusion: str | None = None,
    modalities: list[str] | None = None,
    filters: Filters | None = None,
    progress: Any = None,
    weights: dict[str, float] | None = None,
    language: str | None = None,
) -> EvalReport:
    """Search every judged query and score the run. A voice query is transcribed as part
    of its search (its latency includes the transcription); one in which no words were
    recognised returns nothing, as it would for a shopper."""
    ks = sorted(set(ks))
    judged, qrels, skipped = split_qrels(searcher, queries, qrels)
    if not judged:
        raise MMSearchError(
            "no query in QUERIES.csv has a relevant product in QRELS.csv that the store holds: check the query and product ids"
        )
    listener = None
    if language is not None or any(q.voice for q in judged):
        from .speech import check_language, transcriber

        language = check_language(language)
        listener = transcriber() if any(q.voice for q in judged) else None
    depth = max(RUN_DEPTH, *ks)
    run: dict[str, dict[str, float]] = {}
    rankings: dict[str, list[Result]] = {}
    heard: dict[str, Transcript] = {}
    scored: list[EvalQuery] = []
    latencies = []

    vocabulary = searcher.vocabulary() if listener is not None else None

    def ask(q: EvalQuery, k: int) -> tuple[EvalQuery, list[Result]]:
        asked, transcript = heard_query(q, listener, language, vocabulary)
        if transcript is not None:
            heard[q.id] = transcript
        options = {"filters": filters, "modalities": q.modalities or modalities, "fusion": fusion, "weights": weights}
        return asked, ([] if asked.query.is_empty() else searcher.search(asked.query, k=k, **options))

    # Load each query kind's models before timing, so latency is search, not start-up.
    kinds = {(bool(q.query.text), bool(q.voice), bool(q.query.image), bool(q.query.audio)): q for q in judged}
    for q in kinds.values():
        ask(q, 1)
    task = progress.add_task("eval", total=len(judged)) if progress else None
    for q in judged:
        started = time.perf_counter()
        asked, results = ask(q, depth)
        latencies.append(time.perf_counter() - started)
        scored.append(asked)
        # trec_eval orders by score and breaks ties by doc id: give strictly falling scores.
        run[q.id] = {r.id: float(depth - r.rank + 1) for r in results}
        rankings[q.id] = results[: ks[-1]]
        if progress:
            progress.advance(task)
    per_query = score_run(run, qrels, ks)
    names = list(next(iter(per_query.values())))
    metrics = {name: float(np.mean([m[name] for m in per_query.values()])) for name in names}
    lat_ms = np.array(latencies) * 1000
    timing = (float(np.percentile(lat_ms, 50)), float(np.percentile(lat_ms, 95)), len(latencies) / float(np.sum(latencies)))
    metrics |= dict(zip(TIMING, timing))
    settings = searcher.fusion_settings.override(fusion, weights).to_dict()
    return EvalReport(
        metrics={k: round(v, 6) for k, v in metrics.items()},
        queries=len(judged),
        k=ks,
        per_query=per_query,
        skipped=skipped,
        fusion=settings,
        scored=scored,
        judgments=qrels,
        run=run,
        rankings=rankings,
        voice={q.id: heard[q.id] for q in judged if q.id in heard},
    )


def transcribed(queries: list[EvalQuery], searcher: Searcher) -> list[EvalQuery]:
    """The queries with each voice query's transcript as its text (for `tune`, which
    searches each query once, untimed); a clip without words is an error naming it."""
    if not any(q.voice for q in queries):
        return queries
    from .speech import transcriber

    listener, vocabulary = transcriber(), searcher.vocabulary()
    return [replace(q, query=replace(q.query, text=listener.transcribe(q.voice, None, vocabulary).text)) if q.voice else q for q in queries]


def heard_query(
    q: EvalQuery, listener: Transcriber | None, language: str | None = None, vocabulary: Vocabulary | None = None
) -> tuple[EvalQuery, Transcript | None]:
    """The query as it is searched: a voice query with its transcript as its text."""
    if q.voice is None or listener is None:
        return q, None
    transcript = listener.hear(q.voice, language, vocabulary)
    return replace(q, query=replace(q.query, text=transcript.text or None)), transcript


def parse_thresholds(items: Sequence[str], ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """--fail-under METRIC=VALUE bars, checked against the metrics an evaluation at these
    cutoffs reports: a mistake is a usage error before anything is evaluated."""
    out = {}
    for name, value in parse_pairs(items, "--fail-under", "ndcg@10=0.5", "METRIC=VALUE").items():
        try:
            out[name] = float(value)
        except ValueError:
            raise MMSearchError(f"--fail-under {name}={value}: the bar is a number, e.g. ndcg@10=0.5", ExitCode.USAGE) from None
        _check_metric(name, metric_names(ks))
    return out


def _check_metric(name: str, known: Sequence[str]) -> None:
    if name not in known:
        raise MMSearchError(f"--fail-under: unknown metric {name!r}; metrics for these -k are {', '.join(known)}", ExitCode.USAGE)


def below_thresholds(metrics: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """One message per metric on the wrong side of its bar (an unknown metric name is an
    error). A bar is a floor for quality and qps, a ceiling for latency (lower is better):
    `--fail-under latency_ms_p95=100` fails when p95 is above 100 ms."""
    failed = []
    for name, bar in thresholds.items():
        _check_metric(name, list(metrics))
        if name.startswith("latency_") and metrics[name] > bar:
            failed.append(f"{name} = {metrics[name]:.4f} is above {bar}")
        elif not name.startswith("latency_") and metrics[name] < bar:
            failed.append(f"{name} = {metrics[name]:.4f} is below {bar}")
    return failed
