"""`mmsearch tune`: fusion settings learned from judged queries, cross-validated against
the default, saved into the store, used and reported by query and eval."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from benchmarks import datasets
from benchmarks.run import write_csv, write_eval_set
from mmsearch import Store, build_index, embed, ingest
from mmsearch.evaluation import read_qrels, read_queries
from mmsearch.fusion import FusionSettings, fuse
from mmsearch.search import Query, Searcher
from mmsearch.tuning import tune

from .conftest import SAMPLE, myntra_rows, run_cli

pytestmark = pytest.mark.slow


def test_zscore_keeps_a_clear_winners_lead():
    """rrf sees only ranks: a product far ahead on one signal ties one barely ahead."""
    scores = {"lexical": {"a": 10.0, "b": 1.0, "c": 0.9}, "text": {"a": 0.50, "b": 0.51, "c": 0.1}}
    assert max(fuse(scores, "zscore"), key=fuse(scores, "zscore").get) == "a"
    with pytest.raises(ValueError):
        fuse(scores, "max")


def test_override_drops_saved_weights_for_another_method():
    saved = FusionSettings("rrf", 10.0, {"text": 3.0}, "saved")
    assert saved.override(None, None) is saved
    assert saved.override("zscore", {"image": 0.5}).weights == {"image": 0.5}
    assert saved.override(None, {"image": 0.5}).weights == {"text": 3.0, "image": 0.5}


@pytest.fixture(scope="module")
def dev_slice(tmp_path_factory) -> tuple[Path, Path, Path]:
    """400 dev products of the real Myntra catalog (text only) and 60 attribute queries."""
    rows = myntra_rows("dev", 400)
    folder = tmp_path_factory.mktemp("dev-slice")
    catalog = [{k: v for k, v in r.items() if k != "image"} for r in datasets.myntra_catalog(rows)]
    write_csv(folder / "dev.csv", [c for c in datasets.CATALOG_COLUMNS if c != "image"], catalog)
    store = Store(folder / "store")
    with store.writer("test"):
        ingest(store, folder / "dev.csv")
        embed(store)
        build_index(store)
    store.close()
    queries, qrels = write_eval_set(folder, datasets.attribute_queries(rows, n=60))
    return folder / "store", queries, qrels


def test_tuned_settings_are_no_worse_than_the_default_on_held_out_folds(dev_slice):
    store, queries, qrels = dev_slice
    report = tune(Searcher(Store(store, read_only=True)), read_queries(queries), read_qrels(qrels), folds=3)
    assert len(report.folds) == 3 and sum(f["queries"] for f in report.folds) == report.queries
    assert report.cv_tuned >= report.cv_default
    # the default's fold scores are the real evaluator's: their mean over equal folds is eval's
    assert report.default.source == "default" and report.settings.method in ("rrf", "weighted", "zscore")


def test_save_changes_what_query_and_eval_use(sample_store):
    queries, qrels = str(SAMPLE / "queries.csv"), str(SAMPLE / "qrels.csv")
    before = json.loads(run_cli("eval", "--queries", queries, "--qrels", qrels, "--json", store=sample_store).stdout)
    assert before["fusion"]["source"] == "default" and before["fusion"]["method"] == FusionSettings().method
    tuned = json.loads(run_cli("tune", "--queries", queries, "--qrels", qrels, "--folds", "3", "--save", "--json", store=sample_store).stdout)
    assert tuned["saved"] and len(tuned["folds"]) == 3
    assert tuned["cv_mean"]["tuned"] >= tuned["cv_mean"]["default"]
    # force a different setting into the manifest, as --save writes it: query and eval must follow
    manifest = json.loads((sample_store / "manifest.json").read_text())
    assert manifest["fusion"]["method"] == tuned["settings"]["method"]
    manifest["fusion"] = {"method": "rrf", "param": 1.0, "weights": {"lexical": 0.1, "text": 4.0}}
    (sample_store / "manifest.json").write_text(json.dumps(manifest))
    after = json.loads(run_cli("eval", "--queries", queries, "--qrels", qrels, "--json", store=sample_store).stdout)
    assert after["fusion"] == {"method": "rrf", "param": 1.0, "weights": {"lexical": 0.1, "text": 4.0}, "source": "saved"}
    saved = Searcher(Store(sample_store, read_only=True))
    hits = saved.search(Query(text="red coffee mug"), k=5)
    expected = fuse(saved.score_signals(Query(text="red coffee mug"), 5).signals, "rrf", {"lexical": 0.1, "text": 4.0, "image": 0.25, "audio": 0.25}, 1.0)  # the bridged signals of a text query
    assert [h.id for h in hits] == sorted(expected, key=lambda p: (-expected[p], p))[:5]
    table = run_cli("eval", "--queries", queries, "--qrels", qrels, "--fusion", "zscore", store=sample_store).stdout
    assert "fusion: zscore, weights all 1 (option)" in table


def test_tune_rejects_more_folds_than_queries(sample_store):
    proc = run_cli("tune", "--queries", str(SAMPLE / "queries.csv"), "--qrels", str(SAMPLE / "qrels.csv"), "--folds", "99", store=sample_store, check=2)
    assert "--folds 99" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("tune", "--queries", str(SAMPLE / "queries.csv"), "--qrels", str(SAMPLE / "qrels.csv"), "--metric", "latency_ms_p50", store=sample_store, check=2)
    assert "--metric" in proc.stderr


def test_natural_queries_are_seeded_and_graded_by_what_they_name():
    rows = [
        {"id": str(i), "title": f"{brand} {colour} Shoe", "articleType": article, "baseColour": colour, "gender": gender}
        for i, (brand, article, colour, gender) in enumerate(
            [("Nike", "Casual Shoes", "Black", "Men"), ("Puma", "Casual Shoes", "Grey", "Women"), ("Nike", "Tshirts", "Black", "Men")] * 4
        )
    ]
    first, again = datasets.natural_queries(rows, n=5, seed=3), datasets.natural_queries(rows, n=5, seed=3)
    assert first.queries == again.queries and len({q["text"] for q in first.queries}) == len(first.queries)
    article = {r["id"]: r["articleType"] for r in rows}
    for qid, pid, grade in first.qrels:
        same_type = [p for q, p, _ in first.qrels if q == qid]
        assert len({article[p] for p in same_type}) == 1 and 1 <= grade <= 4
    assert datasets.misspell("sneakers", random.Random(0)) != "sneakers"


@pytest.mark.parametrize("saved", [{"method": "max"}, {"method": "rrf", "weights": {"text": -1}}, {"method": "rrf", "param": "x"}, ["rrf"]])
def test_damaged_saved_settings_are_one_line_naming_the_repair(sample_store, saved):
    manifest = json.loads((sample_store / "manifest.json").read_text())
    (sample_store / "manifest.json").write_text(json.dumps({**manifest, "fusion": saved}))
    proc = run_cli("query", "red mug", store=sample_store, check=1)
    assert "tune --save" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
