"""A real Milvus standalone server for tests and benchmarks, from the PyPI package
`milvus` (which ships the server binary), started and stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


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
