"""Rich tables for people; the CLI prints JSON for scripts instead."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from .fusion import FusionSettings

if TYPE_CHECKING:  # the reports' modules import what their commands need; --help needs none of it
    from .catalog import IngestReport
    from .embedding import EmbedReport
    from .evaluation import EvalReport
    from .indexing import IndexReport
    from .search import Result
    from .speech import Transcript
    from .tuning import TuneReport
    from .understanding import Understanding


#: C0 and C1 control characters (ESC starts ANSI and OSC sequences), but not tab
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def ingest_report(console: Console, report: IngestReport) -> None:
    table = Table(title="ingest (dry run: nothing was written)" if report.dry_run else "ingest", caption=_columns(report))
    for name in report.summary():
        table.add_column(name, justify="right")
    table.add_row(*map(str, report.summary().values()))
    console.print(table)
    if report.rejects:
        rejects = Table(title=f"{len(report.rejects)} rejected rows", title_style="bold red")
        for name in ("line", "column", "id", "reason"):
            rejects.add_column(name, overflow="fold")
        for r in report.rejects:
            rejects.add_row(str(r.line), _text(r.column), _text(r.product_id), _text(r.reason))
        console.print(rejects)


def _columns(report: IngestReport) -> str | None:
    """How the CSV's columns were read, when not as they are named."""
    columns = report.columns
    parts = []
    if columns.mapping:
        parts.append("map " + ", ".join(f"{name}={column}" for name, column in columns.mapping.items()))
    if columns.ignore:
        parts.append("ignore " + ", ".join(columns.ignore))
    if columns.remembered:
        parts.append(" and ".join(f"--{name}" for name in columns.remembered) + " remembered from the last ingest")
    return _text("; ".join(parts)) or None


def embed_report(console: Console, report: EmbedReport) -> None:
    table = Table(title="embed")
    for name in ("modality", "items", "embedded", "failed", "seconds", "items/s"):
        table.add_column(name, justify="right")
    for modality, r in report.modalities.items():
        table.add_row(modality, str(r.wanted), str(r.embedded), str(r.failed), f"{r.seconds:.1f}", f"{r.per_second:.1f}")
    if (s := report.sounds) and not s.skipped:
        table.add_row("sound tags", str(s.wanted), str(s.analysed), str(s.failed), f"{s.seconds:.1f}", f"{s.per_second:.1f}")
    console.print(table)
    for f in report.failures:
        console.print(f"[red]skipped[/red] {f.modality} {_text(f.path)}: {_text(f.reason)}", highlight=False)


def index_report(console: Console, report: IndexReport) -> None:
    table = Table(title=f"index {report.generation}" + (" (up to date)" if report.up_to_date else ""))
    if report.backend.get("backend") == "milvus":
        table.caption = f"vector parts in Milvus at {report.backend['uri']}, collections {report.backend['collection_prefix']}_*"
    for name in ("part", "items", "state", "seconds", "not embedded"):
        table.add_column(name, justify="right")
    for part, count in report.counts.items():
        state = "built" if part in report.built else "reused" if part in report.reused else "empty"
        if part in report.synced:
            state = "synced +{upserted} -{deleted}".format(**report.synced[part])
        seconds = f"{report.built[part]:.2f}" if part in report.built else ""
        table.add_row(part, str(count), state, seconds, str(report.missing.get(part, "")))
    console.print(table)


def _text(value: str | None) -> str:
    """Catalog text as data: control characters (ANSI/OSC escapes from a CSV) removed,
    rich markup (``[red]``, ``[/]``, ``[link=...]``) escaped so it prints as written."""
    from rich.markup import escape

    return escape(_CONTROL.sub("", value or ""))


def understanding(console: Console, understood: Understanding | None) -> None:
    """What `query --explain` understood in the query text."""
    if understood is None:
        console.print("understood: (no query text)")
        return
    values = [
        f"{_text(v['phrase'])!r} = {_text(v['column'])} {_text(v['value'])} ({v['products']} products"
        + (f", translated, similarity {v['similarity']:.2f})" if "similarity" in v else ")")
        for v in understood.values
    ]
    console.print(f"understood values: {'; '.join(values) or 'none'}", highlight=False)
    price = understood.price
    if price is not None:
        bounds = " and ".join(f"{word} {bound:g}" for word, bound in (("price >=", price.min), ("price <=", price.max)) if bound is not None)
        note = "" if price.applied else " (not applied: --min-price/--max-price given)"
        console.print(f"price phrase {_text(price.phrase)!r}: {bounds}{note}", highlight=False)
    if understood.translation:
        console.print(f"BM25 also searches for: {_text(understood.translation)!r}", highlight=False)
    if understood.rest != understood.text:
        console.print(f"text for the other signals: {_text(understood.rest)!r}", highlight=False)


def transcript(console: Console, heard: Transcript) -> None:
    """What a voice query was heard as, above its results."""
    console.print(f"heard: {_text(heard.text)!r} ({heard.language}, p={heard.language_probability:.2f}; {heard.seconds:.1f} s)", highlight=False)


def results(console: Console, results: list[Result]) -> None:
    """The results table; with --explain, each signal's score is followed by its share of
    the fused score (score/share)."""
    signals = list(results[0].scores) if results else []
    sounds = ["sounds"] if any(r.sounds for r in results) else []
    table = Table()
    for name in ("rank", "id", "title", "category", "price", "score", *signals, *sounds):
        table.add_column(
            name, justify="right" if name not in ("id", "title", "category", "sounds") else "left", min_width=24 if name == "title" else None
        )
    for r in results:
        table.add_row(
            str(r.rank),
            _text(r.id),
            _text(r.title),
            _text(r.category),
            _fmt(r.price, 2),
            _fmt(r.score),
            *(_score(r, s) for s in signals),
            *([_text("; ".join(r.sounds))] if sounds else []),  # class names hold commas ("Beep, bleep")
        )
    console.print(table if results else "[yellow]no results[/yellow]")


def _score(result: Result, signal: str) -> str:
    score = _fmt(result.scores[signal], 3)
    if result.contributions is None:
        return score
    return f"{score} / {_fmt(result.contributions.get(signal), 4)}"


def eval_report(console: Console, report: EvalReport) -> None:
    table = Table(title=f"eval: {report.queries} queries")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report.metrics.items():
        table.add_row(name, _fmt(value))
    console.print(table)
    if report.fusion:
        console.print(f"fusion: {_text(FusionSettings(**report.fusion).describe())}", highlight=False)


def tune_report(console: Console, report: TuneReport, saved: bool) -> None:
    table = Table(title=f"tune: {report.metric}, {report.queries} queries, {len(report.folds)}-fold cross-validation")
    for name in ("fold", "queries", "default", "tuned", "settings learned on the other folds"):
        table.add_column(name, justify="left" if name.startswith("settings") else "right")
    for f in report.folds:
        settings = f["settings"]
        weights = ", ".join(f"{s}={w:g}" for s, w in sorted(settings["weights"].items()))
        table.add_row(str(f["fold"]), str(f["queries"]), _fmt(f["default"]), _fmt(f["tuned"]), f"{settings['method']}, {weights}")
    table.add_row("mean", str(report.queries), _fmt(report.cv_default), _fmt(report.cv_tuned), "")
    console.print(table)
    console.print(f"default: {_text(report.default.describe())}", highlight=False)
    verb = "saved into the store" if saved else "not saved (add --save to use them)"
    kept = " (no setting beat the default clearly: it stays)" if report.settings == report.default else ""
    console.print(f"learned on every query, {verb}: {_text(report.settings.describe())}{kept}", highlight=False)


def status(console: Console, info: dict[str, Any]) -> None:
    if "products" not in info:  # status --verify on a catalog.db SQLite cannot read: its problem only
        console.print(f"store [bold]{info['store']}[/bold]")
        return _problems(console, info["problems"])
    console.print(
        f"store [bold]{info['store']}[/bold]: {info['products']} products, "
        f"{info['media']['image']} images, {info['media']['audio']} audio clips"
    )
    table = Table(title="vectors")
    for name in ("modality", "model", "dim", "items", "vectors", "failed", "to embed"):
        table.add_column(name, justify="right")
    for modality, m in info["modalities"].items():
        model = m["model"] or {}
        table.add_row(
            modality, model.get("name", "—"), _fmt(model.get("dim")), str(m["items"]), str(m["vectors"]), str(m["failed"]), str(m["to_embed"])
        )
    console.print(table)
    _languages(console, info["languages"])
    for modality, m in info["modalities"].items():
        if r := m.get("rebuilding"):
            kind = "rebuild" if r["rebuild"] else "switch to model"
            console.print(
                f"[yellow]{modality} {kind} {_text(r['model'])} interrupted[/yellow] ({r['done']}/{r['items']} done, "
                f"started {r['started']}): run `mmsearch embed` to finish it",
                highlight=False,
            )
    _filters_table(console, info["filters"])
    index = info["index"]
    if not index["generation"]:
        console.print("index: [yellow]none[/yellow] (run `mmsearch index`)")
    else:
        table = Table(title=f"index {index['generation']} ({index['created']})")
        for name in ("part", "count", "dim", "model", "backend", "ef (recall@10)", "state"):
            table.add_column(name, justify="right")
        for part, p in index["parts"].items():
            backend = p["where"] and f"milvus {p['where']}" or p["backend"] or ""
            state = "[yellow]stale[/yellow]" if p["stale"] else "current"
            ef = f"{p['ef_search']} ({p['calibrated_recall']:.3f})" if p.get("ef_search") else "—"
            model = p["model"] or (p.get("analyzer") and f"analyzer {p['analyzer']}") or ""
            table.add_row(part, str(p["count"]), _fmt(p["dim"]), model, backend, ef, state)
        console.print(table)
    if "problems" in info:
        _problems(console, info["problems"])


def _languages(console: Console, found: dict[str, Any]) -> None:
    """languages: zh 8 (21 %), en 30 (79 %); the catalog's: zh, en"""
    products = max(found["products"], 1)
    counts = ", ".join(f"{lang} {n} ({100 * n / products:.0f} %)" for lang, n in found["rows"].items()) or "no text"
    where = "" if found["recorded"] else " (detected now; ingest records them)"
    console.print(f"languages (products with text in each): {counts}; the catalog's: {', '.join(found['catalog']) or '—'}{where}", highlight=False)


def _problems(console: Console, problems: list[str]) -> None:
    for problem in problems:
        console.print(f"[red]problem[/red] {problem}", highlight=False)
    if not problems:
        console.print("[green]verify: no problems found[/green]")


def _filters_table(console: Console, columns: dict[str, Any]) -> None:
    """What `query --category/--brand/--where/--*-price` can filter on, with the most
    frequent values and their product counts."""
    table = Table(title="filterable columns (--where COLUMN=VALUE)")
    table.add_column("column")
    table.add_column("values", justify="right")
    table.add_column("most frequent (products)", overflow="fold")
    for column, c in columns.items():
        examples = ", ".join(f"{_short(value)} ({n})" for value, n in c["examples"])
        if column == "price" and c["min"] is not None:
            examples = f"{c['min']:g} to {c['max']:g}; {examples}"
        table.add_row(column, str(c["distinct"]), examples)
    console.print(table)


def _short(value: Any, width: int = 24) -> str:
    """A catalog value in a narrow cell: numbers as written, long text cut."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return _text(text if len(text) <= width else text[: width - 1] + "…")
