"""Fusing per-signal scores into one ranking.

Each signal (lexical, text, image, audio) gives a score to the candidate products that
have that modality. Two fusions:

- ``rrf`` (default): reciprocal rank fusion, ``w / (60 + rank)`` per signal, rank among
  the candidates by that signal's score. Robust to signals on different scales.
- ``weighted``: each signal's scores min-max normalised over the candidates, then
  weighted.

Both average over the signals *the product has* (sum of weighted terms divided by the
sum of those signals' weights), so a product without images or audio is not penalised
for lacking them.
"""

from __future__ import annotations

from collections.abc import Mapping

RRF_K = 60
FUSIONS = ("rrf", "weighted")


def _ranks(scores: Mapping[str, float]) -> dict[str, int]:
    ordered = sorted(scores, key=lambda pid: (-scores[pid], pid))
    return {pid: rank for rank, pid in enumerate(ordered, start=1)}


def _minmax(scores: Mapping[str, float]) -> dict[str, float]:
    lo, hi = min(scores.values()), max(scores.values())
    span = hi - lo
    return {pid: (s - lo) / span if span > 0 else 1.0 for pid, s in scores.items()}


def fuse(
    signal_scores: Mapping[str, Mapping[str, float]],
    method: str = "rrf",
    weights: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """{product: fused score} from {signal: {product: score}}."""
    if method not in FUSIONS:
        raise ValueError(f"unknown fusion {method!r}: use one of {', '.join(FUSIONS)}")
    weights = weights or {}
    terms: dict[str, float] = {}
    total_weight: dict[str, float] = {}
    for signal, scores in signal_scores.items():
        if not scores:
            continue
        w = weights.get(signal, 1.0)
        per_product = (
            {pid: 1.0 / (RRF_K + r) for pid, r in _ranks(scores).items()} if method == "rrf" else _minmax(scores)
        )
        for pid, value in per_product.items():
            terms[pid] = terms.get(pid, 0.0) + w * value
            total_weight[pid] = total_weight.get(pid, 0.0) + w
    return {pid: terms[pid] / total_weight[pid] for pid in terms if total_weight[pid] > 0}
