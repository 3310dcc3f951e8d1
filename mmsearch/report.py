"""`mmsearch eval --report DIR`: the evaluation as a folder that opens from disk anywhere.

DIR/index.html shows the metrics, recall and precision against k (a matplotlib SVG
inlined in the page), and every query, worst first, with its top results as cards
marked relevant or not and the relevant products it missed; DIR/report.json holds the
same as data; DIR/media/ holds thumbnails and audio clips, each file once, named by
content and linked relatively. Nothing is fetched from a network and no path outside
DIR is linked, so the folder can be moved, zipped or attached as it is.

Everything shown comes from the run `evaluate` scored (EvalReport.run, .rankings): the
curves are that run scored again at more cutoffs by the same scorer, never a second
search. `--compare OTHER/report.json` puts this run's per-query wins and losses against
another report's beside it.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from collections.abc import Collection, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .encoders.onnx import cache_dir
from .errors import ExitCode, MMSearchError
from .evaluation import RUN_DEPTH, EvalQuery, EvalReport, score_run
from .fusion import FusionSettings
from .search import Searcher
from .views import FileMedia, card_data, environment, query_label

FORMAT = "mmsearch-eval-report/1"  # report.json's "format": what --compare accepts
CURVE_K = 20  # the curves run from k = 1 to this, or to the largest -k if it is larger
#: a query whose metric moved less than this between two runs is "same" (metrics are
#: kept to 6 decimals)
SAME = 5e-7
#: the names FileMedia gives the files it writes under media/ (content hash + extension)
MEDIA_NAME = re.compile(r"^[0-9a-f]{20}\.[a-z0-9]+$")


def rank_metric(first_k: int) -> str:
    """The metric that orders the per-query table and decides wins and losses: ndcg at
    the first -k given."""
    return f"ndcg@{first_k}"


# -- before the evaluation: the options ----------------------------------------------
def prepare_folder(folder: Path) -> None:
    """Create DIR now and prove it takes files, so that an unusable folder is said
    before the evaluation runs, not after it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise MMSearchError(f"--report {folder}: cannot write there ({exc.strerror or exc}): choose a writable folder") from None


def read_other(path: Path, ks: Sequence[int], query_ids: Collection[str]) -> dict[str, Any]:
    """The report.json that --compare names, checked before anything is evaluated: an
    eval report, made with the same cutoffs (``ks``, the first one first), sharing at
    least one query with QUERIES."""

    def bad(reason: str) -> MMSearchError:
        return MMSearchError(f"--compare {path}: {reason}", ExitCode.USAGE)

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise bad("no such file; give the report.json of an earlier `eval --report`") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise bad(f"not readable as JSON ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        other_ks = sorted(int(k) for k in doc["k"])
        metric = rank_metric(ks[0])
        ids = {q["id"] for q in doc["per_query"] if isinstance(q["metrics"][metric], (int, float)) and isinstance(q["query"], dict)}
        readable = doc["format"] == FORMAT and isinstance(doc["metrics"], dict) and len(ids) == len(doc["per_query"])
    except (KeyError, TypeError, ValueError):
        readable = False
    if not readable:
        raise bad(f"not the report.json of `mmsearch eval --report` (format {FORMAT})")
    if other_ks != sorted(set(ks)):
        given = " ".join(f"-k {k}" for k in other_ks)
        raise bad(f"was made with {given}: evaluate with the same cutoffs to compare")
    if not ids & set(query_ids):
        raise bad("has no query id in common with QUERIES: compare runs of the same query set")
    return doc


# -- the report.json document --------------------------------------------------------
def document(report: EvalReport, searcher: Searcher, first_k: int, other: tuple[Path, dict[str, Any]] | None = None) -> dict[str, Any]:
    """report.json: what index.html shows, as data. ``per_query`` is worst first."""
    metric = rank_metric(first_k)
    order = sorted(report.scored, key=lambda q: (report.per_query[q.id][metric], q.id))
    doc = {
        "format": FORMAT,
        "mmsearch": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "store": str(searcher.store.root.resolve()),
        "generation": searcher.folder.name,
        "queries": report.queries,
        "k": report.k,
        "rank_metric": metric,
        "fusion": report.fusion,
        "metrics": report.metrics,
        "skipped": report.skipped,
        "curves": curves(report),
        "per_query": [_query_entry(q, report) for q in order],
    }
    if other is not None:
        doc["compare"] = compare(doc, *other)
    return doc


def curves(report: EvalReport) -> dict[str, list[float]]:
    """Mean recall@k and precision@k for k = 1..max(CURVE_K, largest -k): the scored run
    through the scorer of the metrics, so a curve meets the metrics at each -k."""
    ks = list(range(1, max(CURVE_K, report.k[-1]) + 1))
    per_query = list(score_run(report.run, report.judgments, ks).values())
    mean = {name: [round(float(np.mean([m[f"{name}@{k}"] for m in per_query])), 6) for k in ks] for name in ("recall", "precision")}
    return {"k": ks, **mean}


def _query_entry(q: EvalQuery, report: EvalReport) -> dict[str, Any]:
    grades = report.judgments[q.id]
    position = {pid: rank for rank, pid in enumerate(report.run[q.id], start=1)}
    shown = {r.id for r in report.rankings[q.id]}
    missed = [p for p, g in grades.items() if g > 0 and p not in shown]
    missed.sort(key=lambda p: (-grades[p], position.get(p, len(position) + 1), p))
    return {
        "id": q.id,
        "query": {
            "label": query_label(q.query),
            "text": q.query.text,
            "image": q.query.image and q.query.image.name,
            "audio": q.query.audio and q.query.audio.name,
            "modalities": q.modalities,
        },
        "metrics": report.per_query[q.id],
        # grade: the judgment, None when the product is not judged for this query
        "results": [{"rank": r.rank, "id": r.id, "title": r.title, "score": r.score, "grade": grades.get(r.id)} for r in report.rankings[q.id]],
        # rank: where the run found it (to its depth), None when it did not
        "missed": [{"id": p, "grade": grades[p], "rank": position.get(p)} for p in missed],
    }


def compare(doc: dict[str, Any], path: Path, other: dict[str, Any]) -> dict[str, Any]:
    """This run against another: metric deltas, and per query the rank metric's delta
    (positive: this run is better), over the queries both scored."""
    metric = doc["rank_metric"]
    this = {q["id"]: q for q in doc["per_query"]}
    that = {q["id"]: q for q in other["per_query"]}
    common = [qid for qid in this if qid in that]
    delta = {qid: round(this[qid]["metrics"][metric] - that[qid]["metrics"][metric], 6) for qid in common}
    changed = sorted((qid for qid in common if abs(delta[qid]) >= SAME), key=lambda qid: (delta[qid], qid))
    return {
        "other": {"path": str(path), **{key: other.get(key) for key in ("created_at", "store", "generation", "fusion")}},
        "metric": metric,
        "metrics": {
            name: {"this": value, "other": other["metrics"][name], "delta": round(value - other["metrics"][name], 6)}
            for name, value in doc["metrics"].items()
            if isinstance(other["metrics"].get(name), (int, float))
        },
        "better": sum(delta[qid] >= SAME for qid in common),
        "worse": sum(delta[qid] <= -SAME for qid in common),
        "same": sum(abs(delta[qid]) < SAME for qid in common),
        "changed": [
            {
                "id": qid,
                "label": this[qid]["query"]["label"],
                "this": this[qid]["metrics"][metric],
                "other": that[qid]["metrics"][metric],
                "delta": delta[qid],
            }
            for qid in changed
        ],
        "only_this": sorted(qid for qid in this if qid not in that),
        "only_other": sorted(qid for qid in that if qid not in this),
    }


# -- index.html ---------------------------------------------------------------------
def write_report(
    folder: Path, report: EvalReport, searcher: Searcher, first_k: int, other: tuple[Path, dict[str, Any]] | None = None
) -> Path:
    """Write DIR/report.json, DIR/index.html and the media they show; return index.html.
    Media an earlier report in DIR wrote and this one does not show are removed."""
    doc = document(report, searcher, first_k, other)
    index = folder / "index.html"
    try:
        page = _page(doc, report, searcher, FileMedia(folder))  # writes the media files
        (folder / "report.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        index.write_text(page, encoding="utf-8")
        _prune_media(folder / "media", page)
    except OSError as exc:
        raise MMSearchError(f"--report {folder}: cannot write the report ({exc.strerror or exc}): choose a writable folder") from None
    return index


def _page(doc: dict[str, Any], report: EvalReport, searcher: Searcher, media: FileMedia) -> str:
    """index.html: the document's rows with their cards and media srcs, and the plot."""
    asked = {q.id: q for q in report.scored}
    missed = {p["id"] for q in doc["per_query"] for p in q["missed"]}
    products = _products(searcher, missed)
    rows = []
    for entry in doc["per_query"]:
        q = asked[entry["id"]].query
        rankings = report.rankings[entry["id"]]
        grades = [r["grade"] for r in entry["results"]]
        rows.append(
            {
                **entry,
                "image": q.image and media.file(q.image, "image"),
                "audio": q.audio and media.file(q.audio, "audio"),
                # an unjudged product counts as not relevant (grade 0), as the scorer counts it
                "cards": [(card_data(r, media, grade=g or 0), g is None) for r, g in zip(rankings, grades)],
                "missed": [{**m, **products.get(m["id"], {}), "src": _thumbnail(media, products.get(m["id"]))} for m in entry["missed"]],
            }
        )
    return environment().get_template("report.html").render(
        doc=doc,
        fusion=_describe(doc["fusion"]),
        other_fusion=_describe(doc["compare"]["other"]["fusion"]) if "compare" in doc else None,
        skipped=report.skipped_summary(),
        plot=plot(doc["curves"], doc["k"]),
        rows=rows,
        depth=max(RUN_DEPTH, doc["k"][-1]),
        better=_better,
    )


def _describe(fusion: Any) -> str | None:
    """A report's fusion settings in words; None when there are none, or (in another
    run's report.json) they are not settings."""
    try:
        return FusionSettings(**fusion).describe()
    except (AttributeError, TypeError, ValueError):
        return None


def _products(searcher: Searcher, ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """Title and first image of products the cards do not show (the missed ones)."""
    found = {pid: {"title": title, "image": None} for pid, title in searcher.store.select_in("SELECT id, title FROM products WHERE id IN ({marks})", ids)}
    sql = "SELECT product_id, path FROM media WHERE kind = 'image' AND product_id IN ({marks}) ORDER BY product_id, position"
    for pid, path in searcher.store.select_in(sql, ids):
        if found[pid]["image"] is None:
            found[pid]["image"] = path
    return found


def _thumbnail(media: FileMedia, product: dict[str, Any] | None) -> str | None:
    return media.file(Path(product["image"]), "image") if product and product["image"] else None


def _better(name: str, delta: float) -> str:
    """'better', 'worse' or '' for a metric's delta: latency is better lower."""
    if abs(delta) < SAME:
        return ""
    return "better" if (delta < 0) == name.startswith("latency_") else "worse"


def _prune_media(media: Path, page: str) -> None:
    if not media.is_dir():
        return
    shown = set(re.findall(r'media/([0-9a-f]{20}\.[a-z0-9]+)"', page))
    for path in media.iterdir():
        if MEDIA_NAME.match(path.name) and path.name not in shown:
            path.unlink()


# -- the plot -----------------------------------------------------------------------
def plot(data: dict[str, list[float]], ks: Sequence[int]) -> str:
    """Recall and precision against k as an SVG element to inline (no XML prolog); the
    -k cutoffs are marked. Text stays text, in the page's font."""
    _matplotlib_home()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "mmsearch", "font.size": 10}):
        figure = Figure(figsize=(7, 3.4), layout="constrained")
        axes = figure.subplots()
        axes.plot(data["k"], data["recall"], marker="o", markersize=3, color="#2f5bea", label="recall@k")
        axes.plot(data["k"], data["precision"], marker="s", markersize=3, color="#d9480f", label="precision@k")
        for k in ks:
            axes.axvline(k, color="#98a2b3", linestyle=":", linewidth=1)
        axes.set(xlabel="k (results looked at)", ylabel="mean over queries", ylim=(0, 1.02), xlim=(0.5, data["k"][-1] + 0.5))
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(axis="y", color="#e4e7ec")
        axes.spines[["top", "right"]].set_visible(False)
        axes.legend(frameon=False, loc="center right")
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def _matplotlib_home() -> None:
    """matplotlib keeps its font list in a folder; where its default folder is not
    writable it builds the list in a new temporary folder on every run, and warns. Unless
    $MPLCONFIGDIR says otherwise it uses mmsearch's cache folder, else a fixed folder in
    the temporary directory, so the list is built once."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    for folder in (cache_dir() / "matplotlib", Path(tempfile.gettempdir()) / f"mmsearch-matplotlib-{os.getuid()}"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            os.environ["MPLCONFIGDIR"] = str(folder)
            return
