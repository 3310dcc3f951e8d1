"""The Milvus backend (GitHub issue 6) against real engines: a milvus-lite file (every
run) and a Milvus standalone server started by the `milvus_server` fixture on
127.0.0.1. The embedded hnswlib store built from sample_data is the reference: the
same queries and filters must give the same products through Milvus."""

from __future__ import annotations

import csv
import functools
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mmsearch import Filters, Query, Searcher, Store, build_index, configure_backend
from mmsearch.backends.milvus import _load, connect, disconnect

from . import conftest
from .conftest import REPO, SAMPLE

#: every test needs a Milvus engine; the sample store is built with the real models
pytestmark = [pytest.mark.milvus, pytest.mark.slow]
# Every CLI run is its own process: a milvus-lite file admits one process at a time, and
# this process holds its own connections through the library.
run_cli = functools.partial(conftest.run_cli, subprocess=True)
run_json = functools.partial(conftest.run_json, subprocess=True)

pymilvus = pytest.importorskip("pymilvus", reason="pymilvus is not installed (pip install 'mmsearch[milvus]')")
MilvusClient = pymilvus.MilvusClient

QUERIES = {
    "text": Query(text="red coffee mug"),
    "dense text": Query(text="something to wake me up in the morning"),
    "image": Query(image=SAMPLE / "queries/q_p007.png"),
    "audio": Query(audio=SAMPLE / "queries/q_p025.wav"),
    "like": Query(like="p002"),
    "text+image": Query(text="blue enamel mug", image=SAMPLE / "queries/q_p002.png"),
}
FILTERS = {
    "none": None,
    "category, other case": Filters(category="MUGS"),
    "brand": Filters(brand="brewhaus"),
    "price range": Filters(min_price=10, max_price=30),
    "attribute": Filters(where={"material": "WOOD"}),
    "attribute and price": Filters(where={"color": "red"}, max_price=20),
    "id": Filters(where={"id": "P001"}),
    "matches nothing": Filters(category="no such category"),
}


def ranked(searcher: Searcher, query: Query, filters: Filters | None, k: int = 8) -> list[tuple[str, float]]:
    return [(r.id, r.score) for r in searcher.search(query, k=k, filters=filters)]


@pytest.fixture(scope="module")
def reference(sample_store_template) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """Every query x filter through the embedded hnswlib index."""
    searcher = Searcher(Store(sample_store_template))
    return {(q, f): ranked(searcher, QUERIES[q], FILTERS[f]) for q in QUERIES for f in FILTERS}


@pytest.fixture(params=["milvus-lite", "milvus-server"])
def milvus_uri(request, tmp_path) -> str:
    if request.param == "milvus-lite":
        return str(tmp_path / "vectors.db")
    return request.getfixturevalue("milvus_server")


def unique_prefix(tmp_path: Path) -> str:
    """Tests share one server: each store gets collections of its own."""
    return f"t{abs(hash(str(tmp_path))) % 10**12}"


def to_milvus(store_root: Path, uri: str, prefix: str) -> dict:
    store = Store(store_root)
    with store.writer("test"):
        configure_backend(store, "milvus", uri, prefix)
        report = build_index(store)
    store.close()
    return report.__dict__


def test_query_results_and_filters_equal_hnswlib(sample_store, milvus_uri, reference, tmp_path):
    report = to_milvus(sample_store, milvus_uri, unique_prefix(tmp_path))
    assert set(report["synced"]) == {"text", "image", "audio", "image_x", "text_x", "audio_x"}
    assert report["synced"]["image"] == {"upserted": 34, "deleted": 0}
    searcher = Searcher(Store(sample_store))
    assert {searcher.manifest["parts"][p]["backend"] for p in report["synced"]} == {"milvus"}
    for (q, f), expected in reference.items():
        got = ranked(searcher, QUERIES[q], FILTERS[f])
        # 34 vectors at most: HNSW is exact here, so the same products in the same order
        assert [pid for pid, _ in got] == [pid for pid, _ in expected], (q, f)
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-5), (q, f)
    assert ranked(searcher, QUERIES["text"], FILTERS["matches nothing"]) == []


def test_query_and_eval_find_milvus_from_the_store_config(sample_store, tmp_path):
    milvus_uri = str(tmp_path / "vectors.db")
    before = run_json("eval", "--queries", str(SAMPLE / "queries.csv"), "--qrels", str(SAMPLE / "qrels.csv"), store=sample_store)
    run_cli("index", "--backend", "milvus", "--uri", milvus_uri, "--collection-prefix", unique_prefix(tmp_path), store=sample_store)
    status = run_json("status", "--verify", store=sample_store)
    assert status["problems"] == []
    assert status["index"]["parts"]["image"]["backend"] == "milvus"
    after = run_json("eval", "--queries", str(SAMPLE / "queries.csv"), "--qrels", str(SAMPLE / "qrels.csv"), store=sample_store)
    quality = [m for m in before["metrics"] if not m.startswith(("latency", "qps"))]
    assert {m: after["metrics"][m] for m in quality} == pytest.approx({m: before["metrics"][m] for m in quality}, abs=1e-6)
    # `index` with no flags keeps using Milvus (cron), and finds nothing to do
    again = run_json("index", store=sample_store)
    assert again["up_to_date"] and again["backend"]["backend"] == "milvus"


def _sample_rows() -> list[dict[str, str]]:
    with open(SAMPLE / "products.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write_catalog(dst: Path, rows: list[dict[str, str]]) -> None:
    with open(dst, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _edit_catalog(dst: Path) -> None:
    """p001 gets a new price, p030 is removed, p031 is added with a quote in an attribute."""
    rows = [r for r in _sample_rows() if r["id"] != "p030"]
    rows[0]["price"] = "99.00"
    rows.append({**rows[1], "id": "p031", "title": "Tall blue mug", "color": 'navy "midnight"', "image": "images/p002.png"})
    _write_catalog(dst, rows)


def test_index_syncs_only_what_changed_and_reads_see_it_at_once(sample_store, milvus_uri, tmp_path):
    run_cli("index", "--backend", "milvus", "--uri", milvus_uri, "--collection-prefix", unique_prefix(tmp_path), store=sample_store)
    _edit_catalog(tmp_path / "products.csv")
    run_cli("ingest", str(tmp_path / "products.csv"), "--media-dir", str(SAMPLE), "--prune", store=sample_store)
    run_cli("embed", store=sample_store)
    report = run_json("index", store=sample_store)
    # p031 is new; p001's rows carry its new price; p030 (a clock with one image) is gone
    assert report["synced"]["image"] == {"upserted": 2, "deleted": 1}
    assert report["synced"]["text"] == {"upserted": 2, "deleted": 1}
    # a new process, right after `index` returned: every write is visible
    cheap = run_json("query", "red coffee mug", "--max-price", "20", "-k", "30", store=sample_store)
    assert "p001" not in {r["id"] for r in cheap}
    assert all(r["price"] <= 20 for r in cheap)
    clocks = run_json("query", "alarm clock", "-k", "30", "--modality", "image", store=sample_store)
    assert "p030" not in {r["id"] for r in clocks}
    navy = run_json("query", "mug", "--where", 'color=NAVY "midnight"', "--modality", "image", store=sample_store)
    assert [r["id"] for r in navy] == ["p031"]


def test_changed_hnsw_parameters_rebuild_the_collections(sample_store, milvus_server, tmp_path):
    """On the server: milvus-lite does not report an index's M and efConstruction."""
    prefix = unique_prefix(tmp_path)
    to_milvus(sample_store, milvus_server, prefix)
    run_cli("index", "--m", "8", "--ef-construction", "64", store=sample_store)
    client = MilvusClient(milvus_server)
    try:
        index = client.describe_index(f"{prefix}_text", "vector")
        assert (int(index["M"]), int(index["efConstruction"])) == (8, 64)
    finally:
        client.close()


def test_a_collection_of_another_store_is_refused(sample_store, tmp_path):
    uri = str(tmp_path / "vectors.db")
    to_milvus(sample_store, uri, "shared")
    other = tmp_path / "other-store"
    shutil.copytree(sample_store, other)
    manifest = json.loads((other / "manifest.json").read_text())
    del manifest["store_id"], manifest["index"]  # another store, as a fresh `ingest` makes
    (other / "manifest.json").write_text(json.dumps(manifest))
    proc = run_cli("index", "--backend", "milvus", "--uri", uri, "--collection-prefix", "shared", store=other, check=1)
    assert "belong to another mmsearch store" in proc.stderr and "--collection-prefix" in proc.stderr
    # the first store's collections are untouched
    assert run_json("status", "--verify", store=sample_store)["problems"] == []


@contextmanager
def milvus_client(uri: str, prefix: str) -> Iterator[MilvusClient]:
    """A client with the prefix's collections loaded (milvus-lite opens a file with them
    released) that lets go of the server or the file on exit, so that CLI processes can
    open it."""
    client = connect(uri)
    try:
        for name in client.list_collections():
            if name.startswith(f"{prefix}_"):
                _load(client, name)
        yield client
    finally:
        disconnect(uri)


def _owners(client: MilvusClient, prefix: str) -> set[str]:
    rows = client.query(f"{prefix}_owner", filter='store_id != ""', output_fields=["store_id"], consistency_level="Strong")
    return {row["store_id"] for row in rows}


def _set_owner(client: MilvusClient, prefix: str, store_id: str | None) -> None:
    client.delete(f"{prefix}_owner", filter='store_id != ""')
    if store_id:
        client.insert(f"{prefix}_owner", [{"store_id": store_id, "vector": [0.0, 0.0]}])
    client.flush(f"{prefix}_owner")


def _reprice(store: Path, tmp_path: Path, price: str) -> None:
    """Ingest sample_data with p001 at another price: `index` then has a row to sync."""
    rows = _sample_rows()
    rows[0]["price"] = price
    _write_catalog(tmp_path / "products.csv", rows)
    run_cli("ingest", str(tmp_path / "products.csv"), "--media-dir", str(SAMPLE), store=store)


def test_a_lost_owner_row_is_reclaimed_and_another_owner_is_named(sample_store, milvus_uri, tmp_path):
    """The claim on a prefix is its owner row; without one, the part collections' rows say
    whose the prefix is. Only another store's id, found in either, refuses the sync."""
    prefix, other = unique_prefix(tmp_path), "0123456789abcdef0123456789abcdef"
    to_milvus(sample_store, milvus_uri, prefix)
    store_id = json.loads((sample_store / "manifest.json").read_text())["store_id"]
    with milvus_client(milvus_uri, prefix) as client:
        assert _owners(client, prefix) == {store_id}
        _set_owner(client, prefix, None)  # the owner collection is empty: the rows are all ours
    _reprice(sample_store, tmp_path, "11.00")
    assert run_json("index", store=sample_store)["synced"]["text"] == {"upserted": 1, "deleted": 0}
    with milvus_client(milvus_uri, prefix) as client:
        assert _owners(client, prefix) == {store_id}  # claimed again, durably
        _set_owner(client, prefix, other)
    _reprice(sample_store, tmp_path, "12.00")
    proc = run_cli("index", "--quiet", store=sample_store, check=1)
    assert proc.stderr.count("\n") == 1 and f"belong to another mmsearch store ({other}; this store is {store_id})" in proc.stderr
    with milvus_client(milvus_uri, prefix) as client:
        # no owner row, and one part row written by another store: refused, by name
        _set_owner(client, prefix, None)
        row = client.query(f"{prefix}_image", filter="", output_fields=["*"], limit=1, consistency_level="Strong")[0]
        client.upsert(f"{prefix}_image", [{**row, "store_id": other}])
        client.flush(f"{prefix}_image")
    proc = run_cli("index", "--quiet", store=sample_store, check=1)
    assert f"belong to another mmsearch store ({other}; this store is {store_id})" in proc.stderr
    with milvus_client(milvus_uri, prefix) as client:
        assert _owners(client, prefix) == set()  # a refused store claims nothing
        assert client.query(f"{prefix}_text", filter='product_id == "p001"', output_fields=["price"])[0]["price"] == 11.0


def _drop_store_ids(client: MilvusClient, name: str) -> None:
    """Rewrite a part collection as mmsearch wrote it before rows carried their store id."""
    rows = client.query(name, filter="", output_fields=["*"], limit=1000, consistency_level="Strong")
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    for f in client.describe_collection(name)["fields"]:
        if f["name"] != "store_id":
            schema.add_field(f["name"], f["type"], is_primary=f.get("is_primary", False), **f.get("params", {}))
    index = client.prepare_index_params()
    index.add_index("vector", index_type="HNSW", metric_type="COSINE", params={"M": 16, "efConstruction": 200})
    client.drop_collection(name)
    client.create_collection(name, schema=schema, index_params=index)
    client.insert(name, [{k: v for k, v in row.items() if k != "store_id"} for row in rows])
    client.flush(name)


def test_collections_written_before_rows_had_owners(sample_store, tmp_path):
    """Claimed ones are rewritten with the store id; unclaimed ones are not touched."""
    uri, prefix = str(tmp_path / "vectors.db"), unique_prefix(tmp_path)
    to_milvus(sample_store, uri, prefix)
    with milvus_client(uri, prefix) as client:
        count = client.query(f"{prefix}_text", filter="", output_fields=["count(*)"])[0]["count(*)"]
        _drop_store_ids(client, f"{prefix}_text")
    _reprice(sample_store, tmp_path, "11.00")
    assert run_json("index", store=sample_store)["synced"]["text"] == {"upserted": count, "deleted": 0}
    with milvus_client(uri, prefix) as client:
        rows = client.query(f"{prefix}_text", filter="", output_fields=["store_id"], limit=1000)
        assert len(rows) == count and {r["store_id"] for r in rows} == set(_owners(client, prefix))
        _drop_store_ids(client, f"{prefix}_text")
        _set_owner(client, prefix, None)
    _reprice(sample_store, tmp_path, "12.00")
    proc = run_cli("index", "--quiet", store=sample_store, check=1)
    assert proc.stderr.count("\n") == 1 and f"Milvus collection {prefix}_text at {uri} has rows but no owner" in proc.stderr
    with milvus_client(uri, prefix) as client:
        assert "store_id" not in {f["name"] for f in client.describe_collection(f"{prefix}_text")["fields"]}


def test_an_unreachable_server_fails_cleanly_and_keeps_the_local_index(sample_store, tmp_path):
    def ranking() -> list[tuple[str, float]]:  # ids, and scores to 4 places (encoders differ in the last bits between runs)
        return [(r["id"], round(r["score"], 4)) for r in run_json("query", "red coffee mug", store=sample_store)]

    before = ranking()
    proc = run_cli("index", "--backend", "milvus", "--uri", "http://127.0.0.1:9", "--quiet", store=sample_store, check=1)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to Milvus at http://127.0.0.1:9" in lines[0]
    assert ranking() == before  # still the hnswlib generation


def test_a_server_that_goes_away_gives_a_clear_error(sample_store, milvus_server_process, tmp_path):
    """The session's server is stopped by its pid after a first sync, then restarted."""
    uri = milvus_server_process.uri
    run_cli("index", "--backend", "milvus", "--uri", uri, "--collection-prefix", unique_prefix(tmp_path), store=sample_store)
    generation = (sample_store / "indexes" / "CURRENT").read_text()
    _edit_catalog(tmp_path / "products.csv")
    run_cli("ingest", str(tmp_path / "products.csv"), "--media-dir", str(SAMPLE), "--prune", store=sample_store)
    dense = ("query", "red coffee mug", "--modality", "text,image", "-k", "5")  # vector parts only, all in Milvus
    before = [r["id"] for r in run_json(*dense, store=sample_store)]
    milvus_server_process.stop()
    try:
        for args in (("index", "--quiet"), ("query", "red coffee mug")):
            proc = run_cli(*args, store=sample_store, check=1)
            assert proc.stderr.count("\n") == 1 and f"Milvus at {uri}" in proc.stderr, proc.stderr
        assert (sample_store / "indexes" / "CURRENT").read_text() == generation
    finally:
        assert milvus_server_process.start() == uri
    # back up, every collection loading again: a query answers from the live generation
    assert [r["id"] for r in run_json(*dense, store=sample_store)] == before
    # and the same `index` completes the sync, the store's claim on its collections intact
    assert run_json("index", store=sample_store)["synced"]["image"] == {"upserted": 2, "deleted": 1}


def test_milvus_lite_in_use_by_another_process_is_named(sample_store, tmp_path):
    uri = str(tmp_path / "vectors.db")
    to_milvus(sample_store, uri, "mms")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from pymilvus import MilvusClient; import time; MilvusClient({uri!r}); print('open', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        proc = run_cli("query", "red coffee mug", store=sample_store, check=1)
        assert "milvus-lite serves one process at a time" in proc.stderr
    finally:
        holder.kill()
        holder.wait()
    time.sleep(1)
    assert run_json("query", "red coffee mug", store=sample_store)[0]["id"] == "p001"
