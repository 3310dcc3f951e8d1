"""`mmsearch serve` over loopback HTTP: query latency, and a bounded load test while the
index is republished. `python -m benchmarks.serve [--clients 8] [--seconds 60]`.

- Latency: a server on the train store (26k products, built by `python -m benchmarks.run`),
  one client with a kept-alive connection, one request at a time: every train
  natural-language query (GET /api/search?q=…, k=10), then every 512-px dev photo
  uploaded (POST /api/search, multipart). Client-side wall time per request.
- Load: a server on a copy of the dev store (4,377 products); N clients send the dev
  natural queries for S seconds while `mmsearch index` republishes the index twice (each
  time with another --ef-construction, so every vector part is really rebuilt). Every
  response must be a 200, and within one generation the answers to one query must be
  identical: a request never mixes two generations' parts.

Writes benchmarks/results/serve.{json,md}. Exits 0 with a message when the stores of
`benchmarks.run` are missing.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from mmsearch.backends import DEFAULT_EF_CONSTRUCTION

from .run import RESULTS, WORK, machine

K = 10
STARTUP_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m mmsearch serve` on a free loopback port, stopped on exit."""

    def __init__(self, store: Path, logs: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        logs.mkdir(parents=True, exist_ok=True)
        self._log = open(logs / f"serve-{self.port}.log", "w")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mmsearch", "serve", "--store", str(store), "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.health = self._wait()
        self.startup_s = time.perf_counter() - started

    def _wait(self) -> dict[str, Any]:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mmsearch serve exited {self.proc.returncode}: see {self._log.name}")
            try:
                return httpx.get(f"{self.url}/api/health", timeout=5).raise_for_status().json()
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"mmsearch serve did not answer within {STARTUP_TIMEOUT_S} s")

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self._log.close()


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"n": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "p99_ms": float(np.percentile(ms, 99))}


def read_column(path: Path, column: str) -> list[str]:
    return [row[column] for row in csv.DictReader(open(path, encoding="utf-8")) if row.get(column)]


# -- latency -----------------------------------------------------------------------
def latency(store: Path, texts: list[str], photos: list[Path]) -> dict[str, Any]:
    with Server(store, WORK / "serve") as server, httpx.Client(base_url=server.url, timeout=60) as client:

        def text(q: str) -> httpx.Response:
            return client.get("/api/search", params={"q": q, "k": K})

        def image(path: Path) -> httpx.Response:
            with open(path, "rb") as fh:
                return client.post("/api/search", data={"k": str(K)}, files={"image": (path.name, fh, "image/jpeg")})

        out: dict[str, Any] = {"products": server.health.get("products"), "startup_s": server.startup_s}
        for name, send, items in (("text", text, texts), ("image", image, photos)):
            send(items[0]).raise_for_status()  # loads the models this kind of query needs
            times = []
            for item in items:
                started = time.perf_counter()
                send(item).raise_for_status()
                times.append(time.perf_counter() - started)
            out[name] = percentiles(times)
        return out


# -- load --------------------------------------------------------------------------
def republish(store: Path, ef_construction: int) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mmsearch", "index", "--store", str(store), "--ef-construction", str(ef_construction), "--json"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"mmsearch index exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return {"ef_construction": ef_construction, "wall_s": time.perf_counter() - started}


def load(store: Path, queries: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads, each with its own connection, loop over ``queries`` for
    ``seconds`` while the main thread republishes the index twice."""
    records: list[tuple[str, int, float, str | None, str | None]] = []  # query, status, s, generation, answer
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int, url: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            i = n
            while not stop.is_set():
                q = queries[i % len(queries)]
                i += clients
                started = time.perf_counter()
                try:
                    response = http.get("/api/search", params={"q": q, "k": K})
                    status = response.status_code
                    body = response.json() if status == 200 else None
                except httpx.HTTPError:
                    status, body = 0, None
                elapsed = time.perf_counter() - started
                generation = body and body["generation"]
                answer = body and json.dumps([(r["id"], r["score"]) for r in body["results"]])
                with lock:
                    records.append((q, status, elapsed, generation, answer))

    with Server(store, WORK / "serve") as server:
        threads = [threading.Thread(target=client, args=(n, server.url)) for n in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        rebuilds = []
        for n in (1, 2):  # republish twice, spread over the run
            time.sleep(max(0.0, started + seconds * n / 4 - time.perf_counter()))
            rebuilds.append({**republish(store, DEFAULT_EF_CONSTRUCTION + n), "at_s": time.perf_counter() - started})
        time.sleep(max(0.0, started + seconds - time.perf_counter()))
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    answers: dict[tuple[str, str], set[str]] = defaultdict(set)
    for q, status, _, generation, answer in records:
        if status == 200:
            answers[(q, generation)].add(answer)
    failed = [r for r in records if r[1] != 200]
    return {
        "clients": clients,
        "seconds": elapsed,
        "requests": len(records),
        "failed": len(failed),
        "failed_statuses": sorted({r[1] for r in failed}),
        "requests_per_s": len(records) / elapsed,
        "latency": percentiles([r[2] for r in records]),
        "generations_seen": sorted({r[3] for r in records if r[3]}),
        "republished": rebuilds,
        "queries_answered_two_ways_in_one_generation": sum(len(a) > 1 for a in answers.values()),
    }


def markdown(results: dict[str, Any]) -> str:
    lat, ld = results["latency"], results["load"]
    rebuilds = "; ".join(f"{r['wall_s']:.0f} s, done at {r['at_s']:.0f} s" for r in ld["republished"])
    rows = [f"| {name} | {lat[name]['n']} | {lat[name]['p50_ms']:.1f} | {lat[name]['p95_ms']:.1f} |" for name in ("text", "image")]
    return "\n".join(
        [
            "# `mmsearch serve` over loopback",
            "",
            f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores. Run {results['started']}.",
            "",
            f"Latency: train store ({lat['products']} products), one client, k={K}, server up in {lat['startup_s']:.1f} s.",
            "",
            "| query | requests | p50 ms | p95 ms |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            f"Load: dev store, {ld['clients']} clients for {ld['seconds']:.0f} s while `mmsearch index` republished twice "
            f"({rebuilds}). Every answer is checked: status 200, and one answer per query per generation.",
            "",
            "| requests | failed | req/s | p50 ms | p95 ms | p99 ms | generations seen | queries answered two ways in one generation |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {ld['requests']} | {ld['failed']} | {ld['requests_per_s']:.1f} | {ld['latency']['p50_ms']:.1f} | "
            f"{ld['latency']['p95_ms']:.1f} | {ld['latency']['p99_ms']:.1f} | {len(ld['generations_seen'])} | "
            f"{ld['queries_answered_two_ways_in_one_generation']} |",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    work = WORK / "myntra"
    sets = work / "sets"
    if not (work / "train-store").exists() or not (work / "dev-store").exists():
        print(f"benchmarks.serve skipped: no stores in {work} (run `python -m benchmarks.run` first)")
        return 0
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    texts = read_column(sets / "train_natural.queries.csv", "text")
    photos = [sets / p for p in read_column(sets / "photo_exact.queries.csv", "image")]
    print(f"serve: latency on the train store ({len(texts)} text, {len(photos)} photo queries)", flush=True)
    measured = latency(work / "train-store", texts, photos)
    copy = WORK / "serve" / "dev-store"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(work / "dev-store", copy, ignore=shutil.ignore_patterns("lock", "lock.json"))
    print(f"serve: {args.clients} clients for {args.seconds:.0f} s on a copy of the dev store, republishing twice", flush=True)
    loaded = load(copy, read_column(sets / "dev_natural.queries.csv", "text"), args.clients, args.seconds)
    results = {"machine": machine(), "started": started, "latency": measured, "load": loaded}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (args.out / "serve.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0 if loaded["failed"] == 0 and loaded["queries_answered_two_ways_in_one_generation"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
