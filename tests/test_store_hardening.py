"""The store and the reader commands on hostile ground: a read-only store, a corrupt
catalog.db, --store naming a file, a store of another format version; and `eval` on
inconsistent query files, `--fail-under` mistakes, and tables written to a pipe.

Commands run in-process through typer's CliRunner (real store, real SQLite, real
models), except where the process itself matters (stdout being a pipe)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from mmsearch import store as store_module
from mmsearch.cli import app
from mmsearch.errors import MMSearchError
from mmsearch.store import FORMAT_VERSION, Store

from .conftest import REPO, SAMPLE

NOBODY = 65534


# -- helpers ------------------------------------------------------------------------
def cli(*args: str, store: Path) -> Result:
    return CliRunner().invoke(app, [*args, "--store", str(store)])


def no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def error_line(result: Result, code: int = 1) -> str:
    """The one line a failed command printed on stderr (and nothing on stdout)."""
    no_traceback(result)
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def journal_mode(db: Path) -> str:
    """From the file header (bytes 18-19: 1 rollback journal, 2 WAL), without opening it."""
    return {1: "delete", 2: "wal"}[db.read_bytes()[18]]


def set_user_version(db: Path, version: int) -> None:
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {version}")
    con.close()


def lexical_eval(folder: Path) -> list[str]:
    """`eval` of the sample's text queries on BM25 alone (no model to load)."""
    queries = folder / "queries.csv"
    queries.write_text("".join((SAMPLE / "queries.csv").read_text().splitlines(keepends=True)[:6]))
    return ["eval", "--queries", str(queries), "--qrels", str(SAMPLE / "qrels.csv"), "--modality", "lexical"]


def user_version(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()


# -- 1. a read-only store -----------------------------------------------------------------
@pytest.fixture
def shared_store(sample_store) -> Iterator[Path]:
    """A copy of the sample store in a folder every user can reach (tmp_path's parents
    are private to the user running the tests)."""
    folder = Path(tempfile.mkdtemp(prefix="mmsearch-test-"))
    folder.chmod(0o755)
    shutil.copytree(sample_store, folder / "store")
    yield folder / "store"
    subprocess.run(["chmod", "-R", "u+w", str(folder)], check=True)
    shutil.rmtree(folder)


@contextmanager
def without_write_access(folder: Path) -> Iterator[None]:
    """`chmod -R a-w` (and a+rX: a store shared read-only is readable by all). Root
    ignores file modes, so as root the effective uid becomes nobody's meanwhile."""
    subprocess.run(["chmod", "-R", "a+rX,a-w", str(folder)], check=True)
    root = os.geteuid() == 0
    try:
        if root:
            os.setegid(NOBODY)
            os.seteuid(NOBODY)
        yield
    finally:
        if root:
            os.seteuid(0)
            os.setegid(0)
        subprocess.run(["chmod", "-R", "u+w", str(folder)], check=True)


READERS = [
    ["status"],
    ["status", "--verify", "--json"],
    ["query", "--like", "p001", "-k", "3"],
    ["query", "red coffee mug", "--modality", "lexical", "--json"],
]
WRITERS = [
    ["ingest", str(SAMPLE / "products.csv")],
    ["embed"],
    ["index"],
    ["align", "--epochs", "1"],
]


def test_a_read_only_store_serves_readers_and_refuses_writers(shared_store):
    """Readers opened catalog.db read-write (WAL pragma: `unable to open database file`,
    or `attempt to write a readonly database`), writers crashed on `lock`. The readers
    use no model here: the model cache of this test session is private to its user."""
    if os.geteuid() == 0 and not hasattr(os, "seteuid"):
        pytest.skip("running as root, whom chmod does not bind, and the uid cannot be dropped")
    import mmsearch.align  # noqa: F401  (what the commands import on first use, imported
    import mmsearch.catalog  # noqa: F401  while the interpreter's own files are readable)
    import mmsearch.embedding  # noqa: F401
    import mmsearch.evaluation  # noqa: F401
    import mmsearch.status  # noqa: F401

    readers = [*READERS, [*lexical_eval(shared_store.parent), "--json"]]
    expected = {tuple(args): cli(*args, store=shared_store) for args in readers}
    for args, result in expected.items():
        assert result.exit_code == 0, (args, result.output)
    cli("query", "--like", "nosuch", store=shared_store)  # warms the error path's imports
    before = files(shared_store)

    with without_write_access(shared_store):
        for args, want in expected.items():
            got = cli(*args, store=shared_store)
            no_traceback(got)
            assert got.exit_code == 0, (args, got.output)
            if "eval" not in args:  # eval's output holds latencies
                assert got.stdout == want.stdout, args
        for args in WRITERS:
            line = error_line(cli(*args, store=shared_store))
            assert f"store {shared_store} is read-only" in line and "writable" in line, line
    assert files(shared_store) == before  # readers left nothing behind (no -wal, no -shm)


def test_readers_never_write_to_the_store(sample_store):
    """query, eval and status open catalog.db read-only: a store in rollback-journal
    mode stays so (a read-write open switched it to WAL, a write)."""
    db = sample_store / "catalog.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    set_user_version(db, 0)  # as stores written before the format was recorded
    before = files(sample_store)
    for args in (["status", "--verify"], ["query", "--like", "p001"], lexical_eval(sample_store.parent)):
        result = cli(*args, store=sample_store)
        assert result.exit_code == 0, result.output
    assert journal_mode(db) == "delete" and user_version(db) == 0
    assert files(sample_store) == before


def test_a_read_only_handle_reads_and_refuses_to_write(sample_store):
    store = Store(sample_store, read_only=True).require()
    assert store.db.execute("SELECT count(*) FROM products").fetchone()[0] == 30
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.db.execute("DELETE FROM products")
    with pytest.raises(MMSearchError, match="read-only"):
        with store.writer("ingest"):
            pass
    store.close()
    assert not (sample_store / "lock.json").exists()


# -- 2. a corrupt catalog.db ---------------------------------------------------------------
def garble(db: Path, where: str) -> None:
    """Overwrite the header, or 1,000 bytes of every page after the first, with noise."""
    data = bytearray(db.read_bytes())
    noise = np.random.default_rng(0).bytes(1000)
    if where == "header":
        data[:100] = noise[:100]
    else:
        for page in range(4096, len(data), 4096):
            data[page + 100 : page + 1100] = noise
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["header", "pages"])
def test_a_corrupt_catalog_is_reported_not_a_crash(sample_store, where):
    """Every command crashed with `database disk image is malformed` or `file is not a
    database`, status --verify included."""
    db = sample_store / "catalog.db"
    garble(db, where)

    verify = cli("status", "--verify", "--json", store=sample_store)
    no_traceback(verify)
    assert verify.exit_code == 1, verify.output
    problems = json.loads(verify.stdout)["problems"]
    assert len(problems) == 1 and f"{db} is corrupt" in problems[0] and "backup" in problems[0], problems
    table = cli("status", "--verify", store=sample_store)
    assert table.exit_code == 1 and f"{db} is corrupt" in " ".join(table.stdout.split())

    commands = [["status"], ["ingest", str(SAMPLE / "products.csv"), "--quiet"]]
    if where == "header":  # a query reads few pages: garbled ones may go unread
        commands.append(["query", "red coffee mug"])
    for args in commands:
        line = error_line(cli(*args, store=sample_store))
        assert f"{db} is corrupt" in line and "backup" in line and "new store" in line, (args, line)


# -- 3. --store naming a file ----------------------------------------------------------------
def test_store_option_naming_a_file_is_one_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a store\n")
    for args in (["ingest", str(SAMPLE / "products.csv")], ["embed"], ["status"], ["query", "mug"]):
        line = error_line(cli(*args, store=path), code=2)
        assert f"{path} is a file" in line, (args, line)
    assert path.read_text() == "not a store\n"


# -- 4. the store's format version ------------------------------------------------------------
def test_store_format_is_recorded_and_checked(sample_store, tmp_path, monkeypatch):
    db = sample_store / "catalog.db"
    assert user_version(db) == FORMAT_VERSION  # recorded when the store was created

    set_user_version(db, FORMAT_VERSION + 1)
    for args in (["status"], ["query", "--like", "p001"], ["ingest", str(SAMPLE / "products.csv")]):
        line = error_line(cli(*args, store=sample_store))
        assert "newer" in line and "upgrade mmsearch" in line, (args, line)

    set_user_version(db, 0)  # written before the format was recorded: format 1, stamped by a writer
    assert cli("status", store=sample_store).exit_code == 0
    assert cli("ingest", str(SAMPLE / "products.csv"), store=sample_store).exit_code == 0
    assert user_version(db) == FORMAT_VERSION

    manifest = json.loads((sample_store / "manifest.json").read_text())
    (sample_store / "manifest.json").write_text(json.dumps({**manifest, "format": FORMAT_VERSION + 1}))
    assert "newer" in error_line(cli("embed", store=sample_store))
    (sample_store / "manifest.json").write_text(json.dumps(manifest))

    # A later mmsearch (a later format) opening this store without a migration for it.
    monkeypatch.setattr(store_module, "FORMAT_VERSION", FORMAT_VERSION + 1)
    line = error_line(cli("status", store=sample_store))
    assert "older" in line and "new store" in line, line
    fresh = tmp_path / "fresh"
    assert cli("ingest", str(SAMPLE / "products.csv"), store=fresh).exit_code == 0
    assert user_version(fresh / "catalog.db") == FORMAT_VERSION + 1


# -- 5. eval: duplicate ids, queries and judgments that are not scored -------------------------
def test_eval_refuses_a_duplicate_query_id(sample_store, tmp_path):
    queries = tmp_path / "queries.csv"
    queries.write_text("query_id,text\nq01,red coffee mug\nq02,wireless doorbell\nq01,blue mug\n")
    line = error_line(cli("eval", "--queries", str(queries), "--qrels", str(SAMPLE / "qrels.csv"), store=sample_store))
    assert "'q01'" in line and "line 4" in line and "line 2" in line, line


def test_eval_refuses_a_duplicate_judgment(sample_store, tmp_path):
    qrels = tmp_path / "qrels.csv"
    qrels.write_text("query_id,product_id,relevance\nq01,p001,2\nq01,p002,1\nq01,p001,0\n")
    line = error_line(cli("eval", "--queries", str(SAMPLE / "queries.csv"), "--qrels", str(qrels), store=sample_store))
    assert "q01" in line and "p001" in line and "line 4" in line and "line 2" in line, line


def test_eval_reports_what_it_does_not_score(sample_store, tmp_path):
    queries = tmp_path / "queries.csv"
    queries.write_text("query_id,text\nq01,red coffee mug\nq02,wireless doorbell\nq90,teapot\nq91,kettle\n")
    clean = tmp_path / "clean.csv"
    clean.write_text("query_id,product_id,relevance\nq01,p001,2\nq01,p002,1\nq02,p018,2\nq91,p003,0\n")
    noisy = tmp_path / "noisy.csv"
    noisy.write_text(clean.read_text() + "q01,p999,2\nq77,p001,1\nq78,p002,1\nq90,gone,1\n")
    base = cli("eval", "--queries", str(queries), "--qrels", str(clean), "--json", store=sample_store)
    assert base.exit_code == 0, base.output
    report = json.loads(base.stdout)
    assert report["queries"] == 2
    assert report["skipped"] == {"queries_without_relevant": ["q90", "q91"], "qrels_unknown_queries": [], "qrels_unknown_products": []}

    got = cli("eval", "--queries", str(queries), "--qrels", str(noisy), "--json", "-k", "1", "-k", "10", store=sample_store)
    assert got.exit_code == 0, got.output
    noisy_report = json.loads(got.stdout)
    assert noisy_report["skipped"] == {
        "queries_without_relevant": ["q90", "q91"],
        "qrels_unknown_queries": ["q77", "q78"],
        "qrels_unknown_products": [["q01", "p999"], ["q90", "gone"]],
    }
    # a product the store does not hold is left out of the scoring, as the summary says
    assert noisy_report["metrics"]["recall@10"] == report["metrics"]["recall@10"] == 1.0
    notes = [line for line in got.stderr.splitlines() if line.strip()]
    assert len(notes) == 1, got.stderr
    for words in ("relevant product in QRELS: 2 (q90, q91)", "not in QUERIES: 2 (q77, q78)", "not in the store: 2 (q01/p999, q90/gone)"):
        assert words in notes[0], notes[0]

    table = cli("eval", "--queries", str(queries), "--qrels", str(noisy), store=sample_store)
    assert "q01/p999" in table.stderr and "ndcg@10" in table.stdout


# -- 6. --fail-under names -----------------------------------------------------------------------
def test_fail_under_an_unknown_metric_fails_before_evaluating(tmp_path):
    """No store and no query files exist: the metric name must be refused first (it used
    to be checked after the whole evaluation)."""
    absent = ["eval", "--queries", str(tmp_path / "q.csv"), "--qrels", str(tmp_path / "r.csv")]
    line = error_line(cli(*absent, "--fail-under", "ndcg@20=0.5", "-k", "5", "-k", "10", store=tmp_path / "none"), code=2)
    assert "'ndcg@20'" in line and "ndcg@5" in line and "ndcg@10" in line, line
    line = error_line(cli(*absent, "--fail-under", "ndcg@10=0.5", "-k", "5", store=tmp_path / "none"), code=2)
    assert "'ndcg@10'" in line and "ndcg@5" in line, line
    # a known name gets past the check (to the missing store)
    assert "no store" in error_line(cli(*absent, "--fail-under", "latency_ms_p95=9", store=tmp_path / "none"))


# -- 7. tables written to a pipe -------------------------------------------------------------------
def test_piped_tables_are_not_cut_to_80_columns(sample_store):
    """stdout a pipe, COLUMNS unset: the table was cut to 80 columns, dropping score
    columns and folding titles."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run(
        [sys.executable, "-m", "mmsearch", "query", "red coffee mug", "-k", "5", "--store", str(sample_store)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if "rank" in line)
    for column in ("rank", "id", "title", "category", "price", "score", "lexical", "text", "image"):
        assert f" {column} " in header, header
    assert "White porcelain espresso cup with saucer" in proc.stdout and "…" not in proc.stdout
    rows = [line for line in proc.stdout.splitlines() if " p0" in line]
    assert len(rows) == 5, proc.stdout  # one line per result: nothing folded


def test_index_files_get_the_umask_permissions(sample_store):
    """Every file of a generation is created like any other file of the user's (mode
    0666 less the umask), so a store shared read-only is readable by its other users:
    safetensors wrote the zero-shot bridge 0600."""
    umask = os.umask(0)
    os.umask(umask)
    generation = Store(sample_store).indexes_dir
    modes = {p.relative_to(generation).as_posix(): oct(p.stat().st_mode & 0o777) for p in generation.rglob("*") if p.is_file()}
    assert any(name.endswith(".safetensors") for name in modes), modes
    assert {name: mode for name, mode in modes.items() if mode != oct(0o666 & ~umask)} == {}


def test_a_read_only_model_cache_serves_its_models_and_an_unusable_one_is_one_line(shared_store, model_cache):
    """Users sharing a store may share a model cache they cannot write: the exported
    models in it are used. A cache with nothing usable is one line naming $MMSEARCH_CACHE
    (it was a PermissionError traceback)."""
    shutil.copytree(model_cache, shared_store.parent / "cache")
    (shared_store.parent / "empty-cache").mkdir()
    args = ["query", "red coffee mug", "--modality", "text", "--json", "--store", str(shared_store)]
    with without_write_access(shared_store.parent):
        served = CliRunner().invoke(app, args, env={"MMSEARCH_CACHE": str(shared_store.parent / "cache")})
        unusable = CliRunner().invoke(app, args, env={"MMSEARCH_CACHE": str(shared_store.parent / "empty-cache")})
    no_traceback(served)
    assert served.exit_code == 0 and json.loads(served.stdout), served.output
    assert "MMSEARCH_CACHE" in error_line(unusable)


def test_an_error_is_one_line_even_when_the_reason_spans_lines(fake_store, tmp_path):
    """pandas ends its parser messages with a newline, which left a `)` on a second line."""
    queries = tmp_path / "queries.csv"
    queries.write_text("query_id,text\nq1,mug\nq2,lamp,extra\n", encoding="utf-8")
    qrels = tmp_path / "qrels.csv"
    qrels.write_text("query_id,product_id,relevance\nq1,p001,1\n", encoding="utf-8")
    result = cli("eval", "--queries", str(queries), "--qrels", str(qrels), store=fake_store)
    assert "line 3" in error_line(result) and error_line(result).endswith(")")
