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
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from mmsearch.errors import ExitCode

from .conftest import FAKE_MODELS, SAMPLE, run_cli

DOCUMENTED_EXITS = {int(code) for code in ExitCode}
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
BOUNDED = settings(max_examples=25, derandomize=True, database=None, **_COMMON)
LONG = settings(max_examples=int(os.environ.get("MMSEARCH_FUZZ_EXAMPLES", "1000")), **_COMMON)

# -- inputs -------------------------------------------------------------------------
# One example in three is wild: each of its parts may be odd (a bad option value, a
# missing column, another encoding). The others are well formed, with odd text in the
# data itself, so that they get past the first check and reach the code behind it.
#: what breaks CSV readers and terminals: separators, quotes, line ends, control
#: characters, a BOM in the middle, escape sequences, right-to-left, markup, astral planes
SPECIAL = [",", ";", "\t", '"', "'", "\n", "\r", "\r\n", "\x00", "\x07", "\x1b[31m", "\x1b]8;;http://x\x07", "\ufeff", "\u202e", "\u2028", "🙂", "[/]", "[red]", "=cmd()", "\\", " "]
#: values the catalog's typed columns must cope with
VALUES = ["", " ", "nan", "NaN", "inf", "-inf", "-1", "0", "1e309", "12,50", "$5", " 7 ", "3.", "0x10", "1_000", "None", "null", "true"]
WORDS = ["red", "blue", "coffee", "mug", "lamp", "wood", "the", "a", "wireless", "doorbell", "clock", "Mugs", "ceramic"]
IDS = ["p001", "p002", "p030", "dup", "dup", "DUP", " dup", "new1", "new2"]
COLUMNS = ["title", "description", "price", "category", "brand", "image", "audio", "color", "material"]
MEDIA = ["ok.png", "ok.wav", "broken.png", "empty.wav", "ok.png|ok.png", "ok.png|broken.png", "../outside.png", "/etc/hostname", "nope.jpg", "folder", "ok.wav|"]
ENCODINGS = ["utf-16", "latin-1", "cp1252", "gbk", "shift_jis"]
SIGNALS = ["lexical", "text", "image", "audio"]
METRICS = ["ndcg@10", "recall@1", "precision@10", "f1@10", "mrr", "map", "latency_ms_p95", "qps"]


def _text(max_size: int = 20, argv: bool = False) -> st.SearchStrategy[str]:
    """Short text heavy in SPECIAL pieces. ``argv``: no NUL (a process cannot get one)."""
    pieces = [p for p in SPECIAL if not (argv and "\x00" in p)]
    chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00" if argv else "")
    piece = st.one_of(st.text(chars, max_size=6), st.sampled_from(pieces), st.sampled_from(VALUES + WORDS))
    return st.lists(piece, max_size=5).map("".join).map(lambda s: s[:max_size])


arg_text = _text(12, argv=True)
words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
prose = st.one_of(words, _text())
huge = st.integers(99_990, 100_010).map(lambda n: "x" * n)  # around the 100,000-character field limit
prices = st.one_of(st.floats(0, 500).map(lambda x: f"{x:.2f}"), st.sampled_from(VALUES), st.floats().map(repr))
media_cells = st.one_of(st.sampled_from(["", "ok.png", "ok.wav"]), st.sampled_from(MEDIA))
ids = st.one_of(st.sampled_from(IDS), _text(10))
cells = st.one_of(prose, huge, prices, media_cells, ids)
CATALOG_CELLS = {"id": st.sampled_from(IDS), "price": st.floats(0, 500).map(lambda x: f"{x:.2f}"), "image": st.sampled_from(["", "ok.png", "ok.wav|ok.png"]), "audio": st.sampled_from(["", "ok.wav"])}
ODD_CATALOG_CELLS = {"id": ids, "price": prices, "image": media_cells, "audio": media_cells}
column_names = st.one_of(st.sampled_from(COLUMNS), _text(12))


class Pick:
    """Draws for one example: ``pick(valid, odd)`` is ``valid``, or in a wild example
    either of the two."""

    def __init__(self, draw):
        self.draw, self.wild = draw, draw(st.integers(0, 2)) == 0

    def __call__(self, valid: st.SearchStrategy, odd: st.SearchStrategy | None = None):
        return self.draw(self.strategy(valid, odd))

    def strategy(self, valid: st.SearchStrategy, odd: st.SearchStrategy | None = None) -> st.SearchStrategy:
        return st.one_of(valid, odd) if self.wild and odd is not None else valid


def _csv_text(rows: list[list[str]], **dialect) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, **{"lineterminator": "\n", **dialect}).writerows(rows)
    return buffer.getvalue()


def _rows(pick: Pick, columns: list[str], valid: dict[str, st.SearchStrategy[str]], odd: dict[str, st.SearchStrategy[str]], max_rows: int) -> list[list[str]]:
    """Rows for ``columns``: cells from ``valid`` (others: prose), in a wild example also
    from ``odd`` (others: any cell), and ragged."""
    fitting = st.tuples(*[pick.strategy(valid.get(c, prose), odd.get(c, cells)) for c in columns]).map(list)
    return pick(st.lists(fitting, min_size=1, max_size=max_rows), st.lists(st.one_of(fitting, st.lists(cells, max_size=len(columns) + 2)), max_size=max_rows))


@st.composite
def catalog_files(draw) -> tuple[bytes, list[str]]:
    """A catalog CSV's bytes (any header, any rows, any dialect, any encoding) and the
    ingest options to go with it."""
    pick = Pick(draw)
    header = pick(
        st.lists(st.sampled_from(COLUMNS), unique=True, max_size=6).flatmap(lambda cols: st.permutations(["id", *cols])),
        st.lists(st.one_of(st.sampled_from(["id", "ID", " id", "id "]), column_names), max_size=8),  # any names, duplicates, no id
    )
    rows = _rows(pick, header, CATALOG_CELLS, ODD_CATALOG_CELLS, 10)
    dialect = st.fixed_dictionaries(
        {"quoting": st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]), "lineterminator": st.sampled_from(["\n", "\r\n", "\r"])}
    )
    by_hand = st.sampled_from(["", "\n", "\r\n", '"']).map(lambda end: "\n".join(",".join(r) for r in [header, *rows]) + end)  # unbalanced quotes, stray separators
    text = pick(dialect.map(lambda d: _csv_text([header, *rows], **d)), st.one_of(by_hand, st.sampled_from([";", "\t"]).map(lambda sep: _csv_text([header, *rows], delimiter=sep))))
    encoding = pick(st.sampled_from(["utf-8", "utf-8-sig"]), st.sampled_from(ENCODINGS))
    data = text.encode(encoding, errors="replace")
    data = pick(st.just(data), st.integers(0, len(data)).map(lambda n: data[:n]))  # cut anywhere, even inside a character
    options = ["--media-dir", pick(st.just("{media}"), st.sampled_from(["{missing}", "{rejects}"]))]
    options += [arg for option in draw(st.lists(st.sampled_from([["--prune"], ["--json"], ["-q"], ["--rejects", "{rejects}"]]), max_size=3)) for arg in option]
    if encoding != "utf-8" or pick.wild:
        options += ["--encoding", pick(st.just(encoding), st.sampled_from(["utf-8", "latin-1", "no-such-codec", ""]))]
    if draw(st.integers(0, 3)) == 0:  # read a field from another column
        field, column = st.sampled_from(["title", "description", "category", "brand"]), st.sampled_from(header) if header else column_names
        options += ["--map", pick(st.tuples(field, column).map("=".join), st.one_of(arg_text, st.tuples(st.sampled_from(["id", "price", "nosuch", ""]), column_names).map("=".join)))]
    return data, options


def _number(pick: Pick, low: float, high: float) -> str:
    odd = st.one_of(st.sampled_from(VALUES), st.floats().map(repr), st.integers(-(10**20), 10**20).map(str), arg_text)
    return pick(st.floats(low, high).map(lambda x: f"{x:g}"), odd)


def _search_options(pick: Pick) -> dict[str, str]:
    """Values of the options that query and eval share."""
    signal_list = st.lists(st.sampled_from(SIGNALS), min_size=1, max_size=4, unique=True).map(",".join)
    odd_signals = st.lists(st.sampled_from([*SIGNALS, "smell", "", " text"]), max_size=4).map(",".join) | arg_text
    return {
        "--modality": pick(signal_list, odd_signals),
        "--fusion": pick(st.sampled_from(["rrf", "weighted"]), st.sampled_from(["RRF", "foo", ""])),
        "--weight": f"{pick(st.sampled_from(SIGNALS), arg_text)}={_number(pick, 0, 3)}",
        "-k": pick(st.integers(1, 40).map(str), st.just(_number(pick, -5, 10**6))),
    }


def _options(draw, values: dict[str, str], flags: list[str], max_size: int) -> list[str]:
    """Some of the options (each may repeat), with their values."""
    chosen = draw(st.lists(st.sampled_from([*values, *flags]), max_size=max_size))
    return [arg for name in chosen for arg in ([name, values[name]] if name in values else [name])]


@st.composite
def query_args(draw) -> list[str]:
    pick = Pick(draw)
    values = {
        "--where": pick(st.tuples(st.sampled_from(["color", "material", "id", "brand", "title"]), st.sampled_from(["red", "wood", "p001", "Brewhaus"]) | arg_text).map("=".join), arg_text),
        "--category": pick(st.sampled_from(["Mugs", "mugs", "CLOCKS", "Lamps"]) | arg_text),
        "--brand": pick(st.sampled_from(["Brewhaus", "trailcraft"]) | arg_text),
        "--min-price": _number(pick, 0, 50),
        "--max-price": _number(pick, 0, 200),
        "--like": pick(st.sampled_from(["p001", "p002", "p030"]), ids.filter(lambda s: "\x00" not in s)),
        "--image": pick(st.sampled_from(["{media}/ok.png", str(SAMPLE / "queries/q_p001.png")]), st.sampled_from(["{media}/broken.png", "{media}/ok.wav", "{media}/nope.png", "{media}"])),
        "--audio": pick(st.sampled_from(["{media}/ok.wav", str(SAMPLE / "queries/q_p018.wav")]), st.sampled_from(["{media}/empty.wav", "{media}/ok.png", "{media}/nope.wav"])),
        "--threads": pick(st.sampled_from(["1", "2"]), st.sampled_from(["0", "-1", "x"])),
    }
    text = pick(words | _text(40, argv=True), st.none() | st.sampled_from(["the", "   ", "-k", "*"]))
    return ["query", *([text] if text is not None else []), *_options(draw, {**_search_options(pick), **values}, ["--json"], 5)]


QUERY_CELLS = {
    "query_id": st.sampled_from(["q1", "q2", "q3"]),
    "text": words,
    "image": st.sampled_from(["", "ok.png"]),
    "audio": st.sampled_from(["", "ok.wav"]),
    "modality": st.just("") | st.lists(st.sampled_from(SIGNALS), min_size=1, max_size=3, unique=True).map(",".join),
}
ODD_QUERY_CELLS = {"query_id": _text(6), "text": cells, "image": media_cells, "audio": media_cells, "modality": _text(8)}
QREL_CELLS = {"query_id": QUERY_CELLS["query_id"], "product_id": st.sampled_from(["p001", "p002", "p014", "p030"]), "relevance": st.integers(0, 3).map(str)}
ODD_QREL_CELLS = {"query_id": _text(6), "product_id": ids, "relevance": st.sampled_from(["-1", "1.5", "", "x", "999999999999999999999", " 2 "])}


@st.composite
def eval_files(draw) -> tuple[str, str, list[str]]:
    """QUERIES.csv and QRELS.csv texts (known columns mostly, any values) and eval options."""
    pick = Pick(draw)
    odd_columns = st.lists(st.sampled_from(list(QUERY_CELLS)) | column_names, max_size=5)
    query_columns = pick(st.lists(st.sampled_from(["image", "audio", "modality"]), unique=True).flatmap(lambda cols: st.permutations(["query_id", "text", *cols])), odd_columns)
    qrel_columns = pick(st.permutations(list(QREL_CELLS)), st.lists(st.sampled_from(list(QREL_CELLS)) | column_names, max_size=4))
    metric = st.tuples(st.sampled_from(METRICS), st.floats(0, 1).map(str)).map("=".join)
    values = {**_search_options(pick), "--fail-under": pick(metric, st.tuples(arg_text, arg_text).map("=".join))}
    queries = _csv_text([query_columns, *_rows(pick, query_columns, QUERY_CELLS, ODD_QUERY_CELLS, 6)])
    qrels = _csv_text([qrel_columns, *_rows(pick, qrel_columns, QREL_CELLS, ODD_QREL_CELLS, 8)])
    return queries, qrels, _options(draw, values, ["--json", "-q"], 4)


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
    event(f"{args[0]} exit {proc.returncode}")  # pytest --hypothesis-show-statistics: what the inputs reached
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
