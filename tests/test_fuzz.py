"""Property-based fuzzing of the CLI: generated catalogs, queries and options go through
ingest, embed, index, query and eval (in this process, on stores built with the fake
encoder), and whatever the input, every command must end the documented way:

- its exit code is one of errors.ExitCode (0 ok, 1 failed, 2 usage, 3 partial, 4 below
  threshold, 5 locked);
- no traceback: nothing but SystemExit leaves a command, nothing prints one;
- `status --verify` passes on the store afterwards.

Every run tries a bounded, derandomized set of examples; `pytest -m fuzz` runs the long
lane ($MMSEARCH_FUZZ_EXAMPLES examples per property, default 1000, random each run).
Hypothesis prints the smallest input that fails.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mmsearch.errors import ExitCode

from .conftest import FAKE_MODELS, SAMPLE, run_cli

DOCUMENTED_EXITS = {int(code) for code in ExitCode}
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
BOUNDED = settings(max_examples=25, derandomize=True, database=None, **_COMMON)
LONG = settings(max_examples=int(os.environ.get("MMSEARCH_FUZZ_EXAMPLES", "1000")), **_COMMON)

# -- inputs -------------------------------------------------------------------------
#: what breaks CSV readers and terminals: separators, quotes, line ends, control
#: characters, a BOM in the middle, escape sequences, right-to-left, astral planes
SPECIAL = [",", ";", "\t", '"', "'", "\n", "\r", "\r\n", "\x00", "\x07", "\x1b[31m", "\x1b]8;;http://x\x07", "\ufeff", "\u202e", "\u2028", "🙂", "[/]", "[red]", "=cmd()", "\\", " "]
#: values the catalog's typed columns must cope with
VALUES = ["", " ", "nan", "NaN", "inf", "-inf", "-1", "0", "1e309", "12,50", "$5", " 7 ", "3.", "0x10", "1_000", "None", "null", "true"]
IDS = ["p001", "p002", "p030", "dup", "dup", "DUP", " dup", "new1", "new2"]
COLUMNS = ["id", "id", "title", "description", "price", "category", "brand", "image", "audio", "color", "material", "ID", " id", "id ", "title"]
MEDIA = ["ok.png", "ok.wav", "broken.png", "empty.wav", "ok.png|ok.png", "ok.png|broken.png", "../outside.png", "/etc/hostname", "nope.jpg", "folder", "ok.wav|"]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252", "gbk", "shift_jis"]
SIGNALS = ["lexical", "text", "image", "audio", "smell", ""]


def _text(max_size: int = 20, argv: bool = False) -> st.SearchStrategy[str]:
    """Short text heavy in SPECIAL pieces. ``argv``: no NUL (a process cannot get one)."""
    pieces = [p for p in SPECIAL if not (argv and "\x00" in p)]
    chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00" if argv else "")
    piece = st.one_of(st.text(chars, max_size=6), st.sampled_from(pieces), st.sampled_from(VALUES))
    return st.lists(piece, max_size=5).map("".join).map(lambda s: s[:max_size] if max_size else s)


cells = st.one_of(
    _text(),
    st.sampled_from(VALUES + IDS + MEDIA),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(99_990, 100_010).map(lambda n: "x" * n),  # around the 100,000-character field limit
)
column_names = st.one_of(st.sampled_from(COLUMNS), _text(12))


@st.composite
def catalog_files(draw) -> tuple[bytes, list[str]]:
    """A catalog CSV's bytes (any header, any rows, any dialect, any encoding) and the
    ingest options to go with it."""
    header = draw(st.lists(column_names, max_size=8))
    rows = draw(st.lists(st.lists(cells, max_size=len(header) + 2), max_size=10))
    if draw(st.booleans()):
        buffer = io.StringIO()
        writer = csv.writer(
            buffer,
            quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])),
            lineterminator=draw(st.sampled_from(["\n", "\r\n", "\r"])),
            delimiter=draw(st.sampled_from([",", ",", ";", "\t"])),
        )
        writer.writerows([header, *rows])
        text = buffer.getvalue()
    else:  # written by hand: unbalanced quotes, stray separators, ragged rows
        text = "\n".join(",".join(row) for row in [header, *rows]) + draw(st.sampled_from(["", "\n", "\r\n", '"']))
    encoding = draw(st.sampled_from(ENCODINGS))
    data = text.encode(encoding, errors="replace")
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data)))]  # cut anywhere, even inside a character
    options = draw(
        st.lists(
            st.one_of(
                st.sampled_from([["--prune"], ["--json"], ["-q"], ["--media-dir", "{media}"], ["--media-dir", "{missing}"], ["--rejects", "{rejects}"]]),
                st.tuples(st.just("--encoding"), st.sampled_from([encoding, "utf-8", "latin-1", "no-such-codec", ""])).map(list),
                st.tuples(st.just("--map"), st.tuples(st.sampled_from(["id", "title", "price", "image", "nosuch", ""]), column_names).map("=".join)).map(list),
                st.tuples(st.just("--map"), _text(10, argv=True)).map(list),
            ),
            max_size=4,
        )
    )
    return data, [arg for option in options for arg in option]


def _option(name: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return values.map(lambda value: [name, value])


def _pairs(names: list[str], values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(st.one_of(st.sampled_from(names), _text(8, argv=True)), values).map("=".join)


numbers = st.one_of(st.sampled_from(VALUES), st.floats().map(repr), st.integers(-(10**20), 10**20).map(str), _text(6, argv=True))
modalities = st.lists(st.sampled_from(SIGNALS), max_size=4).map(",".join)
search_options = st.one_of(
    _option("--modality", st.one_of(modalities, _text(10, argv=True))),
    _option("--fusion", st.sampled_from(["rrf", "weighted", "RRF", "foo", ""])),
    _option("--weight", _pairs(SIGNALS, numbers)),
)
query_options = st.one_of(
    search_options,
    _option("-k", numbers),
    _option("--where", st.one_of(_pairs(["color", "material", "id", "price", "title", ""], _text(8, argv=True)), _text(8, argv=True))),
    _option("--category", st.one_of(st.sampled_from(["Mugs", "mugs", "CLOCKS", ""]), _text(8, argv=True))),
    _option("--brand", _text(8, argv=True)),
    _option("--min-price", numbers),
    _option("--max-price", numbers),
    _option("--like", st.one_of(st.sampled_from(IDS), _text(8, argv=True))),
    _option("--image", st.sampled_from(["{media}/ok.png", "{media}/broken.png", "{media}/ok.wav", "{media}/nope.png", "{media}", str(SAMPLE / "queries/q_p001.png")])),
    _option("--audio", st.sampled_from(["{media}/ok.wav", "{media}/empty.wav", "{media}/ok.png", "{media}/nope.wav", str(SAMPLE / "queries/q_p018.wav")])),
    _option("--threads", st.sampled_from(["1", "2", "0", "-1", "x"])),
    st.just(["--json"]),
)


@st.composite
def query_args(draw) -> list[str]:
    text = draw(st.one_of(st.none(), st.sampled_from(["red coffee mug", "the", "   ", "-k", "mug OR lamp", "*"]), _text(40, argv=True)))
    options = draw(st.lists(query_options, max_size=5))
    return ["query", *([text] if text is not None else []), *[arg for option in options for arg in option]]


def _csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


@st.composite
def eval_files(draw) -> tuple[str, str, list[str]]:
    """QUERIES.csv and QRELS.csv texts (known columns mostly, any values) and eval options."""
    query_columns = draw(st.lists(st.sampled_from(["query_id", "text", "image", "audio", "modality"]) | column_names, max_size=5))
    query_ids = st.one_of(st.sampled_from(["q1", "q2", "q3", "q1 ", ""]), _text(6))
    query_cells = st.one_of(query_ids, st.sampled_from(["red coffee mug", "the", "", "ok.png", "ok.wav", "broken.png", "text,image", "smell"]), cells)
    queries = draw(st.lists(st.lists(query_cells, min_size=len(query_columns), max_size=len(query_columns)), max_size=6))
    qrel_columns = draw(st.sampled_from([["query_id", "product_id", "relevance"], ["query_id", "product_id"], ["query_id", "relevance", "product_id", "note"]]) | st.lists(column_names, max_size=4))
    qrel_cells = st.one_of(query_ids, st.sampled_from(IDS), st.sampled_from(["1", "0", "2", "-1", "1.5", "", "999999999999999999999"]), cells)
    qrels = draw(st.lists(st.lists(qrel_cells, min_size=len(qrel_columns), max_size=len(qrel_columns)), max_size=8))
    options = draw(
        st.lists(
            st.one_of(
                search_options,
                _option("-k", numbers),
                _option("--fail-under", _pairs(["ndcg@10", "recall@1", "mrr", "map", "latency_ms_p95", "qps", "ndcg@3"], numbers)),
                st.just(["--json"]),
                st.just(["-q"]),
            ),
            max_size=4,
        )
    )
    return _csv_text([query_columns, *queries]), _csv_text([qrel_columns, *qrels]), [arg for option in options for arg in option]


# -- the properties -------------------------------------------------------------------
@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """Media files the generated catalogs and queries point at: good, broken and empty."""
    folder = tmp_path_factory.mktemp("fuzz-media") / "media"
    (folder / "folder").mkdir(parents=True)
    Image.new("RGB", (32, 24), "teal").save(folder / "ok.png")
    (folder / "broken.png").write_bytes((folder / "ok.png").read_bytes()[:40])
    shutil.copyfile(SAMPLE / "queries/q_p018.wav", folder / "ok.wav")
    with wave.open(str(folder / "empty.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
    Image.new("RGB", (8, 8)).save(folder.parent / "outside.png")
    return folder


@contextmanager
def store_copy(template: Path) -> Iterator[Path]:
    """A private copy of ``template`` for one example (tmp_path is shared by all examples)."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(template, Path(tmp) / "store")
        yield Path(tmp) / "store"


def run(*args: str, store: Path, media: Path) -> None:
    """One command: a documented exit code and no traceback, whatever it was given.
    ``{media}``, ``{missing}`` and ``{rejects}`` in ``args`` name places of this example."""
    places = {"{media}": str(media), "{missing}": str(store.parent / "missing"), "{rejects}": str(store.parent / "rejects.csv")}
    for name, value in places.items():
        args = tuple(arg.replace(name, value) for arg in args)
    proc = run_cli(*args, store=store, check=DOCUMENTED_EXITS)
    assert "Traceback (most recent call last)" not in proc.stderr + proc.stdout, proc.stderr


def verified(store: Path) -> None:
    """`status --verify` finds nothing wrong."""
    run_cli("status", "--verify", store=store, check=0)


def catalog_pipeline(template: Path, media: Path, case: tuple[bytes, list[str]]) -> None:
    data, options = case
    with store_copy(template) as store:
        catalog = store.parent / "catalog.csv"
        catalog.write_bytes(data)
        run("ingest", str(catalog), *options, store=store, media=media)
        models = [arg for modality, spec in FAKE_MODELS.items() for arg in (f"--{modality}-model", spec)]
        run("embed", *models, "-q", store=store, media=media)
        run("index", "-q", store=store, media=media)
        verified(store)


def query_run(template: Path, media: Path, args: list[str]) -> None:
    with store_copy(template) as store:
        run(*args, store=store, media=media)
        verified(store)


def eval_run(template: Path, media: Path, case: tuple[str, str, list[str]]) -> None:
    queries_text, qrels_text, options = case
    with store_copy(template) as store:
        queries, qrels = media / f"queries-{os.getpid()}.csv", store.parent / "qrels.csv"  # queries' media resolve next to the file
        queries.write_text(queries_text, encoding="utf-8")
        qrels.write_text(qrels_text, encoding="utf-8")
        try:
            run("eval", "--queries", str(queries), "--qrels", str(qrels), *options, store=store, media=media)
        finally:
            queries.unlink()
        verified(store)


@BOUNDED
@given(case=catalog_files())
def test_generated_catalogs_ingest_embed_and_index_cleanly(fake_store_template, media, case):
    catalog_pipeline(fake_store_template, media, case)


@BOUNDED
@given(args=query_args())
def test_generated_queries_and_options_end_cleanly(fake_store_template, media, args):
    query_run(fake_store_template, media, args)


@BOUNDED
@given(case=eval_files())
def test_generated_eval_files_and_options_end_cleanly(fake_store_template, media, case):
    eval_run(fake_store_template, media, case)


@pytest.mark.fuzz
@LONG
@given(case=catalog_files())
def test_fuzz_catalogs(fake_store_template, media, case):
    catalog_pipeline(fake_store_template, media, case)


@pytest.mark.fuzz
@LONG
@given(args=query_args())
def test_fuzz_queries(fake_store_template, media, args):
    query_run(fake_store_template, media, args)


@pytest.mark.fuzz
@LONG
@given(case=eval_files())
def test_fuzz_eval(fake_store_template, media, case):
    eval_run(fake_store_template, media, case)
