"""Fusing per-signal scores into one ranking.

Each signal (lexical, text, image, audio) gives a score to the candidate products that
have that modality. The fusions:

- ``rrf``: reciprocal rank fusion, ``w / (k + rank)`` per signal (``k`` = the method's
  parameter, 60 unless tuned), rank among the candidates by that signal's score.
  Uses ranks only, so a signal's confidence (one clear winner vs a flat list) is lost.
- ``weighted``: each signal's scores min-max normalised over the candidates, then
  weighted.
- ``zscore``: each signal's scores standardised over the candidates (mean 0, sd 1),
  then weighted: a product far above the crowd on one signal keeps that lead.

Every method averages over the signals *the product has* (sum of weighted terms divided
by the sum of those signals' weights), so a product without images or audio is not
penalised for lacking them.

A signal may come with a *ceiling*: the score of a full match, known without any
candidate having it (BM25's score for a product that holds every query term). The
``weighted`` method then scales that signal by it, ``score / max(ceiling, best score)``,
instead of by the candidates' range, so that the best of a set of poor matches is not
taken for a full one. Search sets it where some candidates cannot match the query's
words at all (search.py: a Chinese query in a catalog that is partly English).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ExitCode, MMSearchError
from .options import parse_pairs

RRF_K = 60
FUSIONS = ("rrf", "weighted", "zscore")
#: the manifest key under which `mmsearch tune --save` keeps a store's settings
MANIFEST_KEY = "fusion"


@dataclass(frozen=True)
class FusionSettings:
    """How a store fuses signals: the method, its parameter (rrf's k; unused by the
    others) and per-signal weights (a signal not named weighs 1, or its bridged default).
    ``source`` says where they came from: ``default``, ``saved`` (tune --save) or
    ``option`` (--fusion/--weight on the command line)."""

    method: str = "weighted"
    param: float | None = None
    weights: Mapping[str, float] = field(default_factory=lambda: {"lexical": 2.0})
    source: str = "default"

    def override(self, method: str | None, weights: Mapping[str, float] | None) -> "FusionSettings":
        """These settings with the command line's --fusion and --weight on top. A new
        method drops the saved weights and parameter: they were tuned for another scale."""
        if method is None and not weights:
            return self
        base = self if method is None or method == self.method else FusionSettings(method, None, {}, "option")
        return replace(base, weights={**base.weights, **(weights or {})}, source="option")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "param": self.param, "weights": dict(self.weights), "source": self.source}

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> "FusionSettings":
        saved = manifest.get(MANIFEST_KEY)
        if not saved:
            return cls()
        try:
            settings = cls(saved["method"], saved.get("param"), {s: float(w) for s, w in saved.get("weights", {}).items()}, "saved")
            ok = settings.method in FUSIONS and all(math.isfinite(w) and w >= 0 for w in settings.weights.values())
            ok = ok and (settings.param is None or (isinstance(settings.param, (int, float)) and settings.param > 0))
        except (KeyError, TypeError, ValueError, AttributeError):
            ok = False
        if not ok:
            raise MMSearchError(
                f"manifest.json: the saved fusion settings {saved!r} are not valid: run `mmsearch tune --save` again, "
                f"or delete the {MANIFEST_KEY!r} key to use the default"
            )
        return settings

    def describe(self) -> str:
        """One line for reports: 'zscore, weights lexical=2 (default)'."""
        param = f" k={RRF_K if self.param is None else self.param:g}" if self.method == "rrf" else ""
        weights = ", ".join(f"{s}={w:g}" for s, w in sorted(self.weights.items())) or "all 1"
        return f"{self.method}{param}, weights {weights} ({self.source})"


def parse_weights(items: Iterable[str], signals: Sequence[str]) -> dict[str, float]:
    """{signal: weight} from --weight SIGNAL=W items: a signal of ``signals`` and a
    finite weight >= 0 (a negative or NaN weight returned nothing, an unknown signal was
    silently ignored)."""
    weights = {}
    for signal, value in parse_pairs(items, "--weight", "image=0.5").items():
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if signal not in signals:
            raise MMSearchError(f"--weight {signal}={value}: unknown signal; use one of {', '.join(signals)}", ExitCode.USAGE)
        if not math.isfinite(weight) or weight < 0:
            raise MMSearchError(f"--weight {signal}={value}: a weight is a number ≥ 0, e.g. --weight image=0.5", ExitCode.USAGE)
        weights[signal] = weight
    return weights


def _ranks(scores: Mapping[str, float]) -> dict[str, int]:
    ordered = sorted(scores, key=lambda pid: (-scores[pid], pid))
    return {pid: rank for rank, pid in enumerate(ordered, start=1)}


def _rrf(scores: Mapping[str, float], param: float | None) -> dict[str, float]:
    k = RRF_K if param is None else param
    return {pid: 1.0 / (k + r) for pid, r in _ranks(scores).items()}


def _minmax(scores: Mapping[str, float], param: float | None = None) -> dict[str, float]:
    lo, hi = min(scores.values()), max(scores.values())
    span = hi - lo
    return {pid: (s - lo) / span if span > 0 else 1.0 for pid, s in scores.items()}


def _share_of(scores: Mapping[str, float], ceiling: float) -> dict[str, float]:
    """Non-negative scores as shares of a full match's (``ceiling``), capped at 1."""
    top = max(ceiling, *scores.values())
    return {pid: s / top if top > 0 else 0.0 for pid, s in scores.items()}


def _zscore(scores: Mapping[str, float], param: float | None = None) -> dict[str, float]:
    values = list(scores.values())
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {pid: (s - mean) / sd if sd > 0 else 0.0 for pid, s in scores.items()}


NORMALISE: dict[str, Callable[[Mapping[str, float], float | None], dict[str, float]]] = {
    "rrf": _rrf,
    "weighted": _minmax,
    "zscore": _zscore,
}


def fuse(
    signal_scores: Mapping[str, Mapping[str, float]],
    method: str = "rrf",
    weights: Mapping[str, float] | None = None,
    param: float | None = None,
    ceilings: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """{product: fused score} from {signal: {product: score}}."""
    return combine(normalise(signal_scores, method, param, ceilings), weights)


def normalise(
    signal_scores: Mapping[str, Mapping[str, float]], method: str, param: float | None = None, ceilings: Mapping[str, float] | None = None
) -> dict[str, dict[str, float]]:
    """Each signal's scores on the method's common scale (the part of fusion that does
    not depend on the weights: tuning computes it once per method). ``ceilings`` {signal:
    a full match's score} scale those signals by it under ``weighted`` (see above)."""
    if method not in FUSIONS:
        raise ValueError(f"unknown fusion {method!r}: use one of {', '.join(FUSIONS)}")
    ceilings = ceilings if method == "weighted" else None
    return {
        signal: _share_of(scores, ceilings[signal]) if ceilings and signal in ceilings else NORMALISE[method](scores, param)
        for signal, scores in signal_scores.items()
        if scores
    }


def combine(normalised: Mapping[str, Mapping[str, float]], weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """The weighted mean of each product's normalised scores over the signals it has."""
    weights = weights or {}
    terms: dict[str, float] = {}
    total_weight: dict[str, float] = {}
    for signal, values in normalised.items():
        w = weights.get(signal, 1.0)
        for pid, value in values.items():
            terms[pid] = terms.get(pid, 0.0) + w * value
            total_weight[pid] = total_weight.get(pid, 0.0) + w
    return {pid: terms[pid] / total_weight[pid] for pid in terms if total_weight[pid] > 0}
