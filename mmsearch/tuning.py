"""Learning a store's fusion settings from its owner's judged queries.

Each query is searched once and every signal's scores for its candidates are kept;
then many fusion settings (method, its parameter, per-signal weights) are tried on
those cached scores, each scored by the evaluator's own measures (``score_run``). A
small search: for each method and parameter, coordinate ascent over the signal weights.
k-fold cross-validation says what the tuning is worth on queries it did not see: on
each fold the settings are learned on the other folds and scored on this one, next to
the default's score on the same queries. The settings reported (and saved) are learned
on every query.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ExitCode, MMSearchError
from .evaluation import (
    RUN_DEPTH,
    EvalQuery,
    EvalReport,
    metric_names,
    score_run,
    split_qrels,
)
from .fusion import FUSIONS, MANIFEST_KEY, FusionSettings, combine, normalise
from .search import Searcher

#: weights tried for each signal, and rrf's k values
WEIGHT_GRID = (0.1, 0.5, 1.0, 2.0, 4.0)  # never 0: it would drop products that have only that signal
RRF_KS = (60.0,)
#: a learned setting replaces the default only if its per-query gain over the default,
#: on the queries it was learned from, is this many standard errors above 0: a smaller
#: gain is noise that does not carry over to new queries (on 40 Myntra queries a plain
#: "best score wins" lost 0.011 ndcg@10 to the default on held-out folds; with the
#: `attributes` signal to weigh as well, a 2-standard-error bar still lost 0.004 on one
#: fold of 60 dev-slice queries, a 3-standard-error bar kept the default there)
MIN_T = 3.0
PASSES = 1


@dataclass
class CachedQuery:
    id: str
    signals: dict[str, dict[str, float]]
    default_weights: dict[str, float]
    ceilings: dict[str, float]


@dataclass
class TuneReport:
    metric: str
    queries: int
    settings: FusionSettings
    default: FusionSettings
    #: per fold: queries, the default's and the tuned settings' mean metric on it
    folds: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def cv_default(self) -> float:
        return float(np.mean([f["default"] for f in self.folds]))

    @property
    def cv_tuned(self) -> float:
        return float(np.mean([f["tuned"] for f in self.folds]))

    def skipped_summary(self) -> str | None:
        """What was not scored, in eval's words."""
        return EvalReport({}, 0, [], skipped=self.skipped).skipped_summary()

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "queries": self.queries,
            "settings": self.settings.to_dict(),
            "default": self.default.to_dict(),
            "folds": self.folds,
            "cv_mean": {"default": round(self.cv_default, 6), "tuned": round(self.cv_tuned, 6)},
            "skipped": self.skipped,
        }


class Scorer:
    """Per-query metric of a fusion setting over cached signal scores (memoised: the
    search and every fold ask for the same settings again)."""

    def __init__(self, cached: list[CachedQuery], qrels: dict[str, dict[str, int]], metric: str, k: int):
        self.cached, self.qrels, self.metric, self.k = cached, qrels, metric, k
        self._memo: dict[tuple, dict[str, float]] = {}
        self._normalised: dict[tuple, list[dict[str, dict[str, float]]]] = {}

    def normalised(self, method: str, param: float | None) -> list[dict[str, dict[str, float]]]:
        if (method, param) not in self._normalised:
            self._normalised[method, param] = [normalise(q.signals, method, param, q.ceilings) for q in self.cached]
        return self._normalised[method, param]

    def per_query(self, s: FusionSettings) -> dict[str, float]:
        key = (s.method, s.param, tuple(sorted(s.weights.items())))
        if key not in self._memo:
            run = {}
            for q, normalised in zip(self.cached, self.normalised(s.method, s.param)):
                fused = combine(normalised, {**q.default_weights, **s.weights})
                top = sorted(fused, key=lambda p: (-fused[p], p))[:RUN_DEPTH]
                run[q.id] = {pid: float(RUN_DEPTH - rank) for rank, pid in enumerate(top)}
            self._memo[key] = {qid: m[self.metric] for qid, m in score_run(run, self.qrels, [self.k]).items()}
        return self._memo[key]

    def mean(self, s: FusionSettings, ids: Sequence[str]) -> float:
        scores = self.per_query(s)
        return float(np.mean([scores[i] for i in ids]))


def cache_scores(searcher: Searcher, judged: list[EvalQuery], progress: Any = None) -> list[CachedQuery]:
    """Each query's signal scores, searched once at the evaluator's depth."""
    task = progress.add_task("search", total=len(judged)) if progress else None
    cached = []
    for q in judged:
        scored = searcher.score_signals(q.query, RUN_DEPTH, modalities=q.modalities)
        cached.append(CachedQuery(q.id, scored.signals, scored.default_weights, scored.ceilings))
        if progress:
            progress.advance(task)
    return cached


def learn(scorer: Scorer, ids: Sequence[str], default: FusionSettings) -> FusionSettings:
    """The best setting on queries ``ids``: for each method (and rrf's k), coordinate
    ascent over every signal's weight from all-equal weights. The default stays unless
    the best one's gain over it is clear (``MIN_T``)."""
    signals = sorted({s for q in scorer.cached for s in q.signals})
    best, best_score = default, scorer.mean(default, ids)
    for method in FUSIONS:
        for param in RRF_KS if method == "rrf" else (None,):
            current = FusionSettings(method, param, {s: 1.0 for s in signals}, "tuned")
            score = scorer.mean(current, ids)
            for _ in range(PASSES):
                for signal in signals:
                    for w in WEIGHT_GRID:
                        trial = FusionSettings(method, param, {**current.weights, signal: w}, "tuned")
                        if (s := scorer.mean(trial, ids)) > score:
                            current, score = trial, s
            if score > best_score:
                best, best_score = current, score
    return best if _clear_gain(scorer, best, default, ids) else default


def _clear_gain(scorer: Scorer, tuned: FusionSettings, default: FusionSettings, ids: Sequence[str]) -> bool:
    """Whether ``tuned`` beats ``default`` on ``ids`` by MIN_T standard errors (paired)."""
    a, b = scorer.per_query(tuned), scorer.per_query(default)
    diffs = np.array([a[i] - b[i] for i in ids])
    se = diffs.std(ddof=1) / np.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
    return diffs.mean() > 0 and (se == 0 or diffs.mean() / se >= MIN_T)


def folds_of(ids: Sequence[str], folds: int, seed: int = 0) -> list[list[str]]:
    shuffled = list(ids)
    random.Random(seed).shuffle(shuffled)
    return [shuffled[i::folds] for i in range(folds)]


def tune(
    searcher: Searcher,
    queries: list[EvalQuery],
    qrels: dict[str, dict[str, int]],
    metric: str = "ndcg@10",
    folds: int = 5,
    progress: Any = None,
) -> TuneReport:
    """Learn fusion settings from judged queries, cross-validated against the default."""
    k = int(metric.split("@")[1]) if "@" in metric else 10
    if metric not in metric_names([k])[:-3]:
        known = ", ".join(metric_names([k])[:-3])
        raise MMSearchError(f"--metric {metric}: not a quality metric; use one of {known} (any k)", ExitCode.USAGE)
    judged, kept, skipped = split_qrels(searcher, queries, qrels)
    if not judged:
        raise MMSearchError(
            "no query in QUERIES.csv has a relevant product in QRELS.csv that the store holds: check the query and product ids"
        )
    if len(judged) < folds:
        raise MMSearchError(
            f"--folds {folds}: only {len(judged)} judged queries; give at least as many queries as folds, or fewer folds",
            ExitCode.USAGE,
        )
    cached = cache_scores(searcher, judged, progress)
    scorer = Scorer(cached, kept, metric, k)
    default = FusionSettings()
    ids = [q.id for q in cached]
    report = TuneReport(metric, len(cached), default, default, skipped=skipped)
    for i, held_out in enumerate(folds_of(ids, folds), start=1):
        learned = learn(scorer, [q for q in ids if q not in set(held_out)], default)
        report.folds.append(
            {
                "fold": i,
                "queries": len(held_out),
                "default": round(scorer.mean(default, held_out), 6),
                "tuned": round(scorer.mean(learned, held_out), 6),
                "settings": learned.to_dict(),
            }
        )
    report.settings = learn(scorer, ids, default)
    return report


def save_settings(store: Any, settings: FusionSettings) -> None:
    """Write the settings into the store manifest: plain query and eval use them."""
    manifest = store.manifest()
    manifest[MANIFEST_KEY] = {"method": settings.method, "param": settings.param, "weights": dict(settings.weights)}
    store.write_manifest(manifest)
