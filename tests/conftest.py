"""Shared fixtures: a store built from sample_data with the real models (once per
session), a helper that runs the real `mmsearch` CLI in a subprocess, and a real Milvus
server for the Milvus backend's tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmsearch import Store, build_index, embed, ingest

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


class MilvusServerProcess:
    """A real Milvus standalone server from the PyPI package `milvus` (which ships the
    server binary), on ports that our own bind to 127.0.0.1 found free. Every component
    advertises 127.0.0.1 and the client connects there. Its embedded etcd always takes
    port 2380, so one such server runs per machine: the session shares it."""

    COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")
    START_TIMEOUT_S = 180

    def __init__(self, data_dir: Path):
        from milvus import MilvusServer, MilvusServerConfig

        self.config = MilvusServerConfig(data_dir=str(data_dir))
        self.config.try_bind_port = self._free  # type: ignore[method-assign]
        for component in self.COMPONENTS:
            self.config.set(f"{component}.ip", "127.0.0.1")
        self.server = MilvusServer(self.config, wait_for_started=False)
        self.data_dir = data_dir
        self.uri = ""

    @staticmethod
    def _free(port: int) -> socket.socket | None:
        """Port probe with SO_REUSEADDR, as the server binds: after a stop, the port's
        connections in TIME_WAIT must not make a restart pick other ports."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            return sock
        except OSError:
            sock.close()
            return None

    def start(self) -> str:
        """Start, and return once /healthz answers OK; fail at once if it exits."""
        self.server.start()
        proc = self.server.server_proc
        ports = {key: self.config.get(key) for key in self.server.config_keys if key.endswith("_port")}
        self.config.update(**ports)  # a restart gets the same ports, so the same URI
        deadline = time.monotonic() + self.START_TIMEOUT_S
        health = f"http://127.0.0.1:{self.server.webservice_port}/healthz"
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(health, timeout=2) as resp:
                    if b"OK" in resp.read():
                        self.uri = f"http://127.0.0.1:{self.server.listen_port}"
                        return self.uri
            except OSError:
                time.sleep(0.5)
        self.stop()
        log = self.data_dir / "logs" / "milvus-stdout.log"
        errors = [line[:300] for line in log.read_text(errors="replace").splitlines() if "[ERROR]" in line] if log.exists() else []
        raise RuntimeError(f"Milvus server did not start (exit {proc.returncode}): {errors[:1] or 'no error logged'}")

    def stop(self) -> None:
        """SIGTERM by pid, SIGKILL if it has not exited in 10 s."""
        proc = self.server.server_proc
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.server.server_proc = None
        for fh in self.server.proc_fds.values():
            fh.close()
        self.server.proc_fds.clear()


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
