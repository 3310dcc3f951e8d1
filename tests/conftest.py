"""Shared fixtures: a store built from sample_data with the real models (once per
session), a helper that runs the real `mmsearch` CLI in a subprocess, and a real Milvus
server for the Milvus backend's tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmsearch import Store, build_index, embed, ingest

from .milvus_server import MilvusServerProcess

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
SHARED = REPO.parent / "shared" / "data"


def run_cli(*args: str, store: Path | None = None, check: int | None = 0, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m mmsearch ARGS` as its own process; assert its exit code."""
    env = {**os.environ, "COLUMNS": "200"}
    if store is not None:
        env["MMSEARCH_STORE"] = str(store)
    proc = subprocess.run(
        [sys.executable, "-m", "mmsearch", *args], capture_output=True, text=True, env=env, cwd=kwargs.pop("cwd", REPO), **kwargs
    )
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def run_json(*args: str, **kwargs):
    return json.loads(run_cli(*args, "--json", **kwargs).stdout)


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory) -> Path:
    """Exported ONNX models go to a folder of this test session, not the user's cache
    (subprocesses inherit it through the environment)."""
    from mmsearch.encoders.onnx import CACHE_ENV

    folder = tmp_path_factory.mktemp("model-cache")
    os.environ[CACHE_ENV] = str(folder)
    return folder


@pytest.fixture(scope="session")
def sample_store_template(tmp_path_factory) -> Path:
    """sample_data ingested, embedded and indexed once with the real models."""
    root = tmp_path_factory.mktemp("sample") / "store"
    store = Store(root)
    with store.writer("test"):
        report = ingest(store, SAMPLE / "products.csv")
        assert not report.rejects
        embed(store)
        build_index(store)
    store.close()
    return root


@pytest.fixture
def sample_store(sample_store_template, tmp_path) -> Path:
    """A private copy of the sample store that a test may change."""
    root = tmp_path / "store"
    shutil.copytree(sample_store_template, root)
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
