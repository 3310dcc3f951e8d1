"""Robustness for cron use (GitHub issue 5), exercised with real processes and files:

1. incremental updates touch only what changed and equal a from-scratch build;
2. `embed` and `index` killed with SIGKILL resume without redoing finished work;
3. queries in other processes never fail while `index` publishes new generations;
4. one writer at a time, named in the error, `--wait`, readers never blocked;
5. `status --verify` names the repair for every kind of damage, `query` fails cleanly;
7. nothing in a store is pickled, and no network is touched by default.

Stores are copied from the session's sample store where the real models matter (what
they embed, whether they reach for the network), else from the fake-encoder store; the
indexing tests use a synthetic text-only store (real catalog rows, generated vectors)
so that an HNSW build takes long enough to be interrupted without any model work.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mmsearch import Query, Searcher, Store, build_index, embed, ingest
from mmsearch.catalog import iter_products, product_text
from mmsearch.embedding import text_hash
from mmsearch.encoders import load_encoder

from .conftest import PICKLE, REPO, SAMPLE, cli_env, output, run_cli, run_json, spawn

_fake_text = load_encoder("text", "fake:384")
#: the model synthetic text stores claim: queries then encode with the fake encoder
TEXT_MODEL = {"name": _fake_text.name, "id": _fake_text.id, "dim": _fake_text.dim}


# -- helpers ------------------------------------------------------------------------
def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``condition``; fail if it is not met in time or ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {what}\n{output(proc)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL, and check that it really was the kill that ended the process."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, (
        f"process ended by itself ({proc.returncode}) before it could be killed: the workload is too small\n{output(proc)}"
    )


def sql(store: Path, query: str, params: tuple = ()) -> list[tuple]:
    """Read the store's database from this process, as an outside observer."""
    db = sqlite3.connect(store / "catalog.db", timeout=30)
    try:
        return db.execute(query, params).fetchall()
    finally:
        db.close()


def vector_count(store: Path, modality: str) -> int:
    return sql(store, "SELECT count(*) FROM vectors WHERE modality=?", (modality,))[0][0]


def vectors(store: Path) -> dict[tuple[str, str], tuple[str, bytes]]:
    return {(m, h): (model, blob) for m, h, model, blob in sql(store, "SELECT modality, content_hash, model, vector FROM vectors")}


def assert_same_vectors(got: dict, want: dict, atol: float = 1e-6) -> None:
    """Same keys and models; values equal to float32 rounding. (Bytes are not always
    equal: the text model's output differs by ~1 ulp with the batch it ran in.)"""
    assert got.keys() == want.keys()
    for key, (model, blob) in got.items():
        assert model == want[key][0], key
        a, b = np.frombuffer(blob, "<f4"), np.frombuffer(want[key][1], "<f4")
        assert a.shape == b.shape and np.allclose(a, b, rtol=0, atol=atol), (key, float(np.abs(a - b).max()))


def generation(store: Path) -> str:
    return (store / "indexes" / "CURRENT").read_text().strip()


def scratch_folders(store: Path) -> list[Path]:
    return sorted((store / "indexes").glob(".building-*"))


def verify(store: Path, expect: int) -> dict:
    proc = run_cli("status", "--verify", "--json", store=store, check=expect)
    return json.loads(proc.stdout)


def ids(results) -> list[str]:
    return [r.id for r in results]


def make_text_store(root: Path, n: int, seed: int = 0) -> None:
    """A text-only store of ``n`` real catalog rows whose text vectors are generated
    (clustered, so that nearest neighbours are well defined) instead of embedded."""
    words = "oak walnut steel linen wool cotton brass glass ceramic bamboo leather copper".split()
    things = "lamp chair mug rug shelf clock kettle vase stool desk bowl basket".split()
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    path = root.parent / f"{root.name}.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "title", "description", "category", "brand", "price"])
        for i in range(n):
            a, b, t = rng.choice(words), rng.choice(words), rng.choice(things)
            out.writerow([f"p{i:05d}", f"{a} {t} {i}", f"A {a} and {b} {t}, model {i}.", t, f"brand{i % 37}", f"{i % 90 + 5}.00"])
    store = Store(root)
    with store.writer("test"):
        assert not ingest(store, path).rejects
        set_text_vectors(store, rng)
    store.close()


def set_text_vectors(store: Store, rng: np.random.Generator) -> None:
    """Give every product text without a vector a generated one, as `embed` would."""
    have = {h for (h,) in store.db.execute("SELECT content_hash FROM vectors WHERE modality='text'")}
    todo = sorted({text_hash(t) for t in (product_text(r, None) for r in iter_products(store)) if t} - have)
    centres = np.random.default_rng(1).normal(size=(40, 16)).astype(np.float32)
    projection = np.random.default_rng(2).normal(size=(16, 384)).astype(np.float32)
    latent = centres[rng.integers(0, 40, len(todo))] + 0.3 * rng.normal(size=(len(todo), 16)).astype(np.float32)
    vecs = latent @ projection + 0.05 * rng.normal(size=(len(todo), 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with store.transaction() as tx:
        tx.executemany(
            "INSERT INTO vectors (modality, content_hash, model, vector) VALUES ('text', ?, ?, ?)",
            [(h, TEXT_MODEL["id"], v.astype("<f4").tobytes()) for h, v in zip(todo, vecs)],
        )
    store.write_manifest({"format": 1, "models": {"text": TEXT_MODEL}, "text_fields": None})


class ConnectionRecorder:
    """A local 'proxy' that accepts and records every connection, then hangs up: any
    attempt to reach the network through the proxy settings shows up here."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port, self.connections, self._stop = self.sock.getsockname()[1], [], False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.connections.append(conn.recv(200))
                except OSError:
                    self.connections.append(b"?")

    def close(self):
        self._stop = True
        self.thread.join()
        self.sock.close()


def hostile_env(store: Path, proxy: str) -> dict[str, str]:
    """The environment of a machine whose proxy settings point at ``proxy`` and where
    nobody set the Hugging Face offline switches: mmsearch must not need the network."""
    env = {k: v for k, v in cli_env(store).items() if not k.upper().endswith(("_OFFLINE", "NO_PROXY"))}
    return env | {k: proxy for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")}


def cli_json(*args: str, env: dict[str, str]):
    """A command in its own process: only a fresh interpreter shows what the environment
    (offline switches, proxies) makes it do."""
    return run_json(*args, env=env, subprocess=True, timeout=600)


@pytest.fixture(scope="module")
def text_store_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("textstore") / "store"
    make_text_store(root, 5000)
    return root


# -- 1. incremental end to end ---------------------------------------------------------
@pytest.mark.slow
def test_incremental_update_touches_only_what_changed_and_equals_a_fresh_build(sample_store_template, tmp_path, request):
    """Also the no-network check (7): every command on ``store`` runs with the offline
    switches removed and every proxy variable pointing at a recorder that must see
    no connection; `embed` and `query` load all three encoders."""
    store = tmp_path / "store"
    shutil.copytree(sample_store_template, store)
    before = vectors(store)
    catalog = tmp_path / "catalog"
    shutil.copytree(SAMPLE, catalog)
    with open(catalog / "products.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    removed = next(r for r in rows if r["id"] == "p030")
    rows.remove(removed)  # removed (with --prune)
    next(r for r in rows if r["id"] == "p002")["description"] += " Now sold in a set of two."  # updated
    rows.append(  # added, with a new image
        {f: "" for f in fields}
        | {"id": "p031", "title": "Green glass water carafe", "description": "A one litre carafe with a cork stopper.",
           "category": "Kitchen", "brand": "Brewhaus", "price": "19.00", "image": "images/p031.png", "color": "green"}
    )
    with open(catalog / "products.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(rows)
    carafe = Image.new("RGB", (256, 256), "white")
    ImageDraw.Draw(carafe).ellipse((60, 40, 196, 230), fill=(40, 150, 70))
    carafe.save(catalog / "images/p031.png")
    with Image.open(catalog / "images/p005.png") as img:  # p005's image changes content, not name
        img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).rotate(10).save(catalog / "images/p005.png")

    recorder = ConnectionRecorder()
    request.addfinalizer(recorder.close)
    env = hostile_env(store, f"http://127.0.0.1:{recorder.port}")
    ingested = cli_json("ingest", str(catalog / "products.csv"), "--prune", env=env)
    assert {k: ingested[k] for k in ("added", "updated", "removed", "rejected")} == {"added": 1, "updated": 2, "removed": 1, "rejected": 0}

    # The live index still holds p030, yet a query for its exact title never returns it.
    stale = Searcher(Store(store))
    assert "p030" in stale.part("lexical").ids
    assert "p030" not in ids(stale.search(Query(text=removed["title"]), k=30))

    embedded = cli_json("embed", env=env)["modalities"]
    assert {m: r["embedded"] for m, r in embedded.items()} == {"text": 2, "image": 2, "audio": 0}  # p002+p031, p005+p031
    after = vectors(store)
    kept = before.keys() & after.keys()
    assert len(kept) == len(after) - 4
    assert all(after[k] == before[k] for k in kept)  # untouched vectors are the very same bytes
    gone = before.keys() - after.keys()  # p030's text and image, p002's old text, p005's old image
    assert {m for m, _ in gone} == {"text", "image"} and len(gone) == 4

    indexed = cli_json("index", env=env)
    assert {"text", "image", "lexical"} <= indexed["built"].keys()
    assert "audio" in indexed["reused"] and not {"text", "image", "lexical"} & set(indexed["reused"])
    assert {k: indexed["counts"][k] for k in ("text", "image", "audio", "lexical")} == {"text": 30, "image": 34, "audio": 10, "lexical": 30}
    assert run_json("index", store=store)["up_to_date"] is True
    verify(store, 0)

    # The same catalog from scratch in a fresh store.
    fresh = Store(tmp_path / "fresh")
    with fresh.writer("test"):
        ingest(fresh, catalog / "products.csv")
        embed(fresh)
        build_index(fresh)
    fresh.close()
    columns = "id, title, description, category, brand, price, attributes, content_hash"
    assert sql(store, f"SELECT {columns} FROM products ORDER BY id") == sql(fresh.root, f"SELECT {columns} FROM products ORDER BY id")
    assert_same_vectors(vectors(store), vectors(fresh.root))

    queries = [
        Query(text="red coffee mug"),
        Query(text=removed["title"]),
        Query(image=catalog / "images/p031.png"),
        Query(image=SAMPLE / "queries/q_p007.png"),
        Query(audio=SAMPLE / "queries/q_p018.wav"),
        Query(like="p005"),
    ]
    ours, theirs = Searcher(Store(store)), Searcher(Store(fresh.root))
    for q in queries:
        a, b = ours.search(q, k=10), theirs.search(q, k=10)
        assert ids(a) == ids(b), q
        assert np.allclose([r.score for r in a], [r.score for r in b], atol=1e-4), q
        assert "p030" not in ids(a)
    assert ids(ours.search(Query(image=catalog / "images/p031.png"), k=1, modalities=["image"])) == ["p031"]

    # And through a real `query` process, all signals at once, against the fresh store.
    query = Query(text=removed["title"], image=catalog / "images/p005.png", audio=SAMPLE / "queries/q_p018.wav")
    got = cli_json("query", query.text, "--image", str(query.image), "--audio", str(query.audio), "-k", "30", env=env)
    assert [r["id"] for r in got] == ids(theirs.search(query, k=30))
    assert "p030" not in {r["id"] for r in got}
    assert {"lexical", "text", "image", "audio"} <= {s for r in got for s, v in r["scores"].items() if v is not None}
    assert max(got, key=lambda r: r["scores"]["image"] or -1)["id"] == "p005"  # its new image, found by pixels
    assert recorder.connections == [], recorder.connections


# -- 2. resumable ----------------------------------------------------------------------
@pytest.mark.slow
def test_embed_killed_at_several_points_resumes_without_redoing_finished_batches(sample_store_template, tmp_path):
    store, logs = tmp_path / "store", tmp_path / "logs"
    shutil.copytree(sample_store_template, store)
    clean = vectors(store)
    # Forget every text and audio vector and 10 image vectors: 50 items to embed again.
    db = sqlite3.connect(store / "catalog.db")
    with db:
        db.execute("DELETE FROM vectors WHERE modality IN ('text', 'audio')")
        db.execute("DELETE FROM vectors WHERE modality='image' AND content_hash IN "
                   "(SELECT content_hash FROM vectors WHERE modality='image' ORDER BY content_hash LIMIT 10)")
    db.close()
    never_deleted = set(vectors(store))
    counts = lambda: {m: vector_count(store, m) for m in ("text", "image", "audio")}  # noqa: E731
    assert counts() == {"text": 0, "image": 24, "audio": 0}
    embed_args = ("embed", "--batch-size", "2", "--json")

    # a) killed while starting up: nothing written, nothing broken
    proc = spawn(*embed_args, store=store, logs=logs)
    time.sleep(0.3)
    kill(proc)
    assert counts() == {"text": 0, "image": 24, "audio": 0}

    # b) killed after at least two text batches are committed
    proc = spawn(*embed_args, store=store, logs=logs)
    wait_until(lambda: vector_count(store, "text") >= 4, "two text batches", proc=proc)
    kill(proc)
    text_done = vector_count(store, "text")
    assert 4 <= text_done < 30 and text_done % 2 == 0  # whole batches only

    # c) killed in the image pass, after at least one image batch
    proc = spawn(*embed_args, store=store, logs=logs)
    wait_until(lambda: vector_count(store, "image") >= 26, "an image batch", proc=proc)
    kill(proc)
    now = counts()
    assert now["text"] == 30 and 26 <= now["image"] < 34 and now["image"] % 2 == 0 and now["audio"] == 0

    # d) the re-run embeds exactly what is left, and nothing twice
    report = run_json(*embed_args, store=store)["modalities"]
    assert {m: r["embedded"] for m, r in report.items()} == {"text": 0, "image": 34 - now["image"], "audio": 10}
    resumed = vectors(store)
    assert_same_vectors(resumed, clean)
    assert len(never_deleted) == 24 and all(resumed[k] == clean[k] for k in never_deleted)  # not redone

    run_json("index", store=store)
    assert not scratch_folders(store)
    assert verify(store, 0)["problems"] == []


@pytest.mark.slow
def test_index_killed_mid_build_resumes_reusing_finished_parts(text_store_template, tmp_path):
    store, logs = tmp_path / "store", tmp_path / "logs"
    shutil.copytree(text_store_template, store)
    first = run_json("index", store=store)
    assert set(first["built"]) == {"text", "lexical"}
    live = generation(store)

    # A catalog change that both parts must rebuild for (the new text gets its vector,
    # as `embed` would give it).
    changed = Store(store)
    with changed.writer("test"):
        changed.db.execute("UPDATE products SET title = 'hand thrown stoneware teapot' WHERE id = 'p00007'")
        set_text_vectors(changed, np.random.default_rng(7))
    changed.close()
    slow = ("index", "--ef-construction", "400")  # a few seconds of HNSW work

    # a) killed while the text HNSW is being built: the live generation is untouched
    proc = spawn(*slow, store=store, logs=logs)
    wait_until(lambda: bool(scratch_folders(store)), "the scratch folder", proc=proc)
    time.sleep(0.3)
    kill(proc)
    (scratch,) = scratch_folders(store)
    assert not (scratch / "text.done.json").exists()
    assert generation(store) == live
    stale = verify(store, 1)["problems"]  # old but intact (every part loads): only staleness is reported
    assert stale and all("older than the catalog" in p for p in stale), stale

    # b) killed after the text part finished, while BM25 is being built
    proc = spawn(*slow, store=store, logs=logs)
    wait_until(lambda: any((f / "text.done.json").exists() for f in scratch_folders(store)), "the text part", proc=proc)
    kill(proc)
    assert scratch_folders(store) == [scratch]  # the same scratch folder, resumed
    assert (scratch / "text.done.json").exists() and generation(store) == live

    # c) the re-run reuses the finished text part and builds only what is left
    resumed = run_json(*slow, store=store)
    assert "text" in resumed["reused"] and set(resumed["built"]) == {"lexical"}
    assert not scratch_folders(store)
    assert resumed["generation"] == generation(store) != live
    assert (store / "indexes" / live).is_dir()  # the previous generation is kept for readers
    assert verify(store, 0)["problems"] == []

    # ... and equals a clean build of the same store.
    clean = tmp_path / "clean"
    shutil.copytree(store, clean, ignore=shutil.ignore_patterns("indexes"))
    with Store(clean).writer("test") as st:
        build_index(st, ef_construction=400)
    ours = json.loads((store / "indexes" / generation(store) / "manifest.json").read_text())["parts"]
    theirs = json.loads((clean / "indexes" / generation(clean) / "manifest.json").read_text())["parts"]
    assert {k: v["fingerprint"] for k, v in ours.items()} == {k: v["fingerprint"] for k, v in theirs.items()}
    gen_a, gen_b = store / "indexes" / generation(store), clean / "indexes" / generation(clean)
    assert (gen_a / "text.ids.json").read_bytes() == (gen_b / "text.ids.json").read_bytes()
    a, b = Searcher(Store(store)), Searcher(Store(clean))
    # BM25's files are not byte-reproducible (bm25s orders its vocabulary by Python's
    # per-process string hashing), so compare what they score.
    for text in ("walnut lamp", "stoneware teapot", "brass clock 4321"):
        (_, sa), (_, sb) = a.part("lexical").candidates_and_scores(text, 10, None), b.part("lexical").candidates_and_scores(text, 10, None)
        assert dict(zip(a.part("lexical").ids, sa)) == pytest.approx(dict(zip(b.part("lexical").ids, sb)))
    for pid in ("p00001", "p00007", "p01234", "p04999"):
        assert ids(a.search(Query(like=pid), k=10)) == ids(b.search(Query(like=pid), k=10)), pid


# -- 3. atomic publish under concurrent readers ------------------------------------------
READER = r"""
import functools, json, sys, time
from pathlib import Path
import mmsearch.search as S
from mmsearch import Query, Searcher, Store

S.load_encoder = functools.lru_cache(maxsize=None)(S.load_encoder)  # load the model once, not per Searcher
root, stop, out = Path(sys.argv[1]), Path(sys.argv[2]), open(sys.argv[3], "w")
queries = {"like": Query(like="p00042"), "text": Query(text="walnut lamp")}
Searcher(Store(root)).encoder("text").encode(["warm up"])
print("ready", flush=True)
deadline = time.monotonic() + 120
while not stop.exists() and time.monotonic() < deadline:
    store = Store(root)
    try:
        searcher = Searcher(store)  # a new reader each time: it picks up the newest generation
        record = {"gen": searcher.folder.name, "results": {n: [r.id for r in searcher.search(q, k=5)] for n, q in queries.items()}}
    except BaseException as exc:
        record = {"error": f"{type(exc).__name__}: {exc}"}
    store.close()
    out.write(json.dumps(record) + "\n")
    out.flush()
    time.sleep(0.1)
"""

# What `mmsearch index --m M` does, in a loop in one process so that generations are
# published every fraction of a second (the CLI's start-up alone takes seconds). It
# stops when argv[2] exists.
WRITER = r"""
import sys, time
from pathlib import Path
from mmsearch import Store, build_index
store, stop, i = Store(sys.argv[1]), Path(sys.argv[2]), 0
deadline = time.monotonic() + 120
while (i < 6 or not stop.exists()) and time.monotonic() < deadline:
    with store.writer("index"):
        report = build_index(store, m=8 if i % 2 == 0 else 16)
    assert "text" in report.built and not report.up_to_date, report
    print(report.generation, flush=True)
    i += 1
    time.sleep(0.5)  # leave the readers some CPU
"""


@pytest.mark.slow
def test_queries_in_other_processes_never_fail_while_index_rebuilds(tmp_path):
    store, logs, stop, stop_writer = tmp_path / "store", tmp_path / "logs", tmp_path / "stop", tmp_path / "stop-writer"
    make_text_store(store, 1000)
    run_json("index", store=store)
    (tmp_path / "reader.py").write_text(READER)
    (tmp_path / "writer.py").write_text(WRITER)
    python = lambda script, *args, **kw: subprocess.Popen(  # noqa: E731
        [sys.executable, str(tmp_path / script), str(store), *args], text=True, cwd=REPO, **kw
    )
    reader = python("reader.py", str(stop), str(tmp_path / "reader.jsonl"), stdout=subprocess.PIPE, stderr=open(tmp_path / "reader.err", "w"))
    writer = queries = None
    try:
        assert reader.stdout.readline().strip() == "ready", (tmp_path / "reader.err").read_text()
        writer = python("writer.py", str(stop_writer), stdout=subprocess.PIPE, stderr=open(tmp_path / "writer.err", "w"))
        # A real `query` process too: it reads CURRENT first, then loads parts while its
        # model loads, seconds later, across several publishes.
        queries = [spawn("query", "walnut lamp", "-k", "5", "--json", store=store, logs=logs)]
        finish_all(queries)
        stop_writer.touch()
        published = writer.communicate(timeout=120)[0].split()
        assert writer.returncode == 0, (tmp_path / "writer.err").read_text()
        # Then the real `index` command, twice, the reader still reading.
        last_m = 8 if len(published) % 2 else 16
        for m in (24 - last_m, last_m):
            report = run_json("index", "--m", str(m), store=store)
            assert "text" in report["built"], report
            published.append(report["generation"])
    finally:
        stop_writer.touch()
        stop.touch()
        reader.wait(timeout=60)
        if writer:
            writer.wait(timeout=120)
    assert len(set(published)) == len(published) >= 8 and generation(store) == published[-1]
    assert not scratch_folders(store)
    records = [json.loads(line) for line in (tmp_path / "reader.jsonl").read_text().splitlines()]
    errors = [r["error"] for r in records if "error" in r]
    assert not errors, errors[:5]
    assert len({r["gen"] for r in records}) >= 3, "the reader did not overlap the rebuilds"
    # Every generation indexes the same catalog, so every answer is the same answer.
    assert len(records) >= 5 and all(r["results"] == records[0]["results"] for r in records)
    for q in queries:
        assert q.returncode == 0, output(q)
        assert [r["id"] for r in json.loads(Path(f"{q.log}.out").read_text())] == records[0]["results"]["text"]


# -- 4. one writer at a time ------------------------------------------------------------
HOLDER = (
    "import sys, time; from mmsearch import Store; cm = Store(sys.argv[1]).writer('embed'); cm.__enter__(); "
    "print('held', flush=True); time.sleep(120)"
)


def finish_all(procs: list[subprocess.Popen], timeout: float = 120) -> dict[subprocess.Popen, float]:
    """Wait for every process, noting when each one was seen to end (polled, not in turn)."""
    ended: dict[subprocess.Popen, float] = {}
    deadline = time.monotonic() + timeout
    while len(ended) < len(procs):
        assert time.monotonic() < deadline, [output(p) for p in procs if p not in ended]
        for proc in procs:
            if proc not in ended and proc.poll() is not None:
                ended[proc] = time.monotonic()
        time.sleep(0.01)
    return ended


@pytest.mark.slow
def test_one_writer_at_a_time_and_readers_never_blocked(fake_store, tmp_path):
    from mmsearch.errors import StoreLockedError

    store, logs = fake_store, tmp_path / "logs"
    writers = [("ingest", str(SAMPLE / "products.csv")), ("embed",), ("index",)]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        queued = [spawn(*w, "--wait", "120", "--json", store=store, logs=logs) for w in writers]
        refused = [spawn(*w, store=store, logs=logs) for w in writers[:2]]
        started = time.monotonic()
        waited = spawn("index", "--wait", "1", store=store, logs=logs)  # gives up after a second
        readers = [spawn("status", "--json", store=store, logs=logs), spawn("query", "--like", "p001", "-k", "3", "--json", store=store, logs=logs)]
        ended = finish_all([*refused, waited, *readers])
        for proc in [*refused, waited]:
            err = Path(f"{proc.log}.err").read_text()
            assert proc.returncode == 5, output(proc)
            assert "is locked by `mmsearch embed`" in err and f"(pid {holder.pid} " in err, err
        assert ended[waited] - started >= 1.0
        for proc in readers:  # readers go on while a writer holds the lock
            assert proc.returncode == 0 and json.loads(Path(f"{proc.log}.out").read_text()), output(proc)
        # The lock wait itself, timed without process start-up: at once, or after --wait.
        for wait, low, high in ((0, 0.0, 0.5), (1, 1.0, 3.0)):
            started = time.monotonic()
            with pytest.raises(StoreLockedError, match=f"pid {holder.pid} "):
                with Store(store).writer("index", wait=wait):
                    pass
            assert low <= time.monotonic() - started < high
        # The queued writers are still waiting; the lock record still names the holder.
        assert all(proc.poll() is None for proc in queued), [output(p) for p in queued if p.poll() is not None]
        assert json.loads((store / "lock.json").read_text())["pid"] == holder.pid
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the OS must release the lock
        holder.wait()
    assert holder.returncode == -signal.SIGKILL
    finish_all(queued)
    for proc in queued:  # one after the other, each as soon as the lock is free
        assert proc.returncode == 0, output(proc)
    assert not (store / "lock.json").exists()  # the dead holder's record was replaced, then removed


# -- 5. integrity ---------------------------------------------------------------------------
def live_file(store: Path, name: str) -> Path:
    return store / "indexes" / generation(store) / name


def problems_text(store: Path) -> str:
    proc = run_cli("status", "--verify", store=store, check=1)
    text = " ".join((proc.stdout + proc.stderr).split())  # the table may wrap long lines
    assert "Traceback" not in text
    return text


@pytest.mark.slow
def test_verify_and_query_on_damaged_index_files(fake_store, tmp_path):
    text_hnsw, image_hnsw = live_file(fake_store, "text.hnsw"), live_file(fake_store, "image.hnsw")
    text_hnsw.write_bytes(text_hnsw.read_bytes()[: text_hnsw.stat().st_size // 2])  # truncated
    data = bytearray(image_hnsw.read_bytes())
    data[len(data) // 2] ^= 0x10  # one bit flipped, same size
    image_hnsw.write_bytes(bytes(data))
    live_file(fake_store, "audio.ids.json").unlink()  # missing

    report = problems_text(fake_store)
    for problem in ("text.hnsw is corrupted", "image.hnsw is corrupted", "audio.ids.json is missing"):
        assert re.search(re.escape(problem) + r"( \(size or checksum differs\))?: run `mmsearch index`", report), report
    # A query reaching each damaged part fails with a clear error, never a crash (a
    # negative return code would be a signal, e.g. SIGSEGV inside hnswlib).
    queries = {
        "text.hnsw": spawn("query", "red mug", store=fake_store, logs=tmp_path),
        "image.hnsw": spawn("query", "--image", str(SAMPLE / "queries/q_p001.png"), store=fake_store, logs=tmp_path),
        "audio.ids.json": spawn("query", "--audio", str(SAMPLE / "queries/q_p018.wav"), store=fake_store, logs=tmp_path),
    }
    finish_all(list(queries.values()))
    for name, proc in queries.items():
        err = Path(f"{proc.log}.err").read_text()
        assert proc.returncode == 1, output(proc)
        assert err.startswith("error: index file") and name in err and "run `mmsearch index`" in err and "Traceback" not in err, err
    # The named repair repairs.
    run_json("index", store=fake_store)
    assert verify(fake_store, 0)["problems"] == []


def test_verify_query_and_index_on_an_unreadable_index_manifest(tmp_path):
    store = tmp_path / "store"  # text only: the repair rebuilds every part, quickly
    make_text_store(store, 300)
    with Store(store).writer("test") as st:
        build_index(st)
    live_file(store, "manifest.json").write_text('{"parts": {"text": ')
    assert "index manifest" in problems_text(store)
    proc = run_cli("query", "--like", "p00001", store=store, check=1)
    assert proc.stderr.startswith("error: index manifest") and "run `mmsearch index`" in proc.stderr
    run_json("index", store=store)  # the named repair works although nothing can be reused
    assert verify(store, 0)["problems"] == []


def test_verify_finds_bad_vectors_and_removed_products(fake_store):
    db = sqlite3.connect(fake_store / "catalog.db")
    with db:
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("UPDATE vectors SET vector = substr(vector, 1, 100) WHERE rowid IN "
                   "(SELECT rowid FROM vectors WHERE modality='text' LIMIT 2)")
        db.execute("DELETE FROM products WHERE id IN ('p029', 'p030')")  # deleted after indexing
    db.close()
    report = problems_text(fake_store)
    assert "2 text vectors have the wrong length: run `mmsearch embed --modality text --rebuild`" in report, report
    assert "text index holds 2 products no longer in the catalog: run `mmsearch index`" in report, report
    # `index` stops with the same repair rather than a numpy traceback.
    proc = run_cli("index", store=fake_store, check=1)
    assert "wrong length" in proc.stderr and "--rebuild" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.slow
def test_verify_names_the_repair_for_an_unreadable_store_manifest(sample_store):
    (sample_store / "manifest.json").write_text('{"models": {"text": ')
    assert "manifest.json is unreadable" in problems_text(sample_store)
    proc = run_cli("embed", store=sample_store, check=1)  # the file cannot repair itself...
    repair = " ".join(proc.stderr.split())
    assert "delete it and run `mmsearch embed`" in repair, repair
    (sample_store / "manifest.json").unlink()  # ... the named repair does
    run_cli("embed", store=sample_store)
    assert verify(sample_store, 0)["problems"] == []


# -- 7. no pickle, no network ------------------------------------------------------------------

@pytest.mark.slow
def test_nothing_in_a_built_store_is_pickled(sample_store_template):
    files = [p for p in sample_store_template.rglob("*") if p.is_file()]
    assert any(p.suffix == ".npy" for p in files) and any(p.suffix == ".hnsw" for p in files)
    for path in files:
        with open(path, "rb") as fh:
            assert not PICKLE.match(fh.read(2)), f"{path} starts like a pickle"
        if path.suffix == ".npy":
            assert np.load(path, allow_pickle=False).dtype != object, path


def test_the_source_never_unpickles():
    problems = []
    for path in sorted((REPO / "mmsearch").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern in (r"^\s*(import|from)\s+(c?pickle|dill|joblib|cloudpickle)\b", r"\bpickle\.", r"allow_pickle\s*=\s*True"):
            problems += [f"{path.name}: {m.group(0).strip()}" for m in re.finditer(pattern, text, re.M)]
        for m in re.finditer(r"torch\.load\(", text):
            depth, end = 0, m.end() - 1
            for end in range(m.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            if "weights_only=True" not in text[m.start() : end]:
                problems.append(f"{path.name}: {text[m.start() : end + 1]}")
    assert not problems, problems
