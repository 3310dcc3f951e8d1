"""Start-up benchmark: wall time of whole `mmsearch` processes, the way shells, cron and
CI run them (one process per command), optionally beside an older checkout.

    .venv/bin/python -m benchmarks.startup [--store DIR --catalog CSV --media-dir DIR --photo IMG] [--baseline DIR] [--runs 5]

Without --store it builds a store from sample_data. --baseline is another checkout of
mmsearch (e.g. `git worktree add ../old COMMIT`): its commands run with the same
interpreter from that folder (`python -m mmsearch` imports the package of the working
directory), interleaved with this checkout's, so both see the same machine load. Each
checkout gets its own copy of the store in benchmarks/work/ (index formats differ
between versions), re-indexed by that checkout before timing. Writes
benchmarks/results/startup.{json,md} (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work"
RESULTS = REPO / "benchmarks" / "results"
SAMPLE = REPO / "sample_data"


def commands(catalog: Path, media_dir: Path, photo: Path) -> dict[str, list[str]]:
    """What is timed: the commands that do no work on an unchanged store, and queries."""
    return {
        "--help": ["--help"],
        "status": ["status"],
        "ingest (unchanged)": ["ingest", str(catalog), "--media-dir", str(media_dir), "--quiet"],
        "embed (unchanged)": ["embed", "--quiet"],
        "index (unchanged)": ["index", "--quiet"],
        "query text (cold)": ["query", "red coffee mug", "-k", "10", "--json"],
        "query image (cold)": ["query", "--image", str(photo), "-k", "10", "--json"],
    }


def run_once(checkout: Path, store: Path, args: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mmsearch", *args],
        cwd=checkout,
        env={**os.environ, "MMSEARCH_STORE": str(store)},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{checkout}: mmsearch {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return seconds


def sample_store() -> Path:
    store = WORK / "startup-store"
    if not (store / "indexes" / "CURRENT").exists():
        for args in (["ingest", str(SAMPLE / "products.csv"), "--quiet"], ["embed", "--quiet"], ["index", "--quiet"]):
            run_once(REPO, store, args)
    return store


def store_for(checkout: Path, name: str, source: Path) -> Path:
    """A copy of ``source`` indexed by ``checkout`` (vectors are shared: same models)."""
    import shutil

    store = WORK / f"startup-{name}"
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(source, store, ignore=shutil.ignore_patterns("lock", "lock.json"))
    run_once(checkout, store, ["index", "--quiet"])
    return store


def markdown(results: dict[str, Any]) -> str:
    checkouts = list(results["checkouts"])
    lines = [
        "# Start-up: whole `mmsearch` processes",
        "",
        f"Machine: {results['machine']}. Store: {results['store']} ({results['products']} products). "
        f"p50 of {results['runs']} runs per command, checkouts interleaved.",
        "",
        "| command | " + " | ".join(f"{name} p50 s" for name in checkouts) + (" | ratio |" if len(checkouts) == 2 else ""),
        "|---|" + "---:|" * len(checkouts) + ("---:|" if len(checkouts) == 2 else ""),
    ]
    for command in results["commands"]:
        p50 = [results["checkouts"][name][command]["p50_s"] for name in checkouts]
        ratio = f" {p50[0] / p50[1]:.1f}x |" if len(p50) == 2 else ""
        lines.append(f"| `{command}` | " + " | ".join(f"{v:.2f}" for v in p50) + " |" + ratio)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="an indexed store [default: one built from sample_data]")
    parser.add_argument("--catalog", type=Path, help="the CSV that store was ingested from (for the unchanged ingest)")
    parser.add_argument("--media-dir", type=Path, help="the folder that store's media paths resolve against [default: the CSV's]")
    parser.add_argument("--photo", type=Path, default=SAMPLE / "queries" / "q_p007.png", help="query image")
    parser.add_argument("--baseline", type=Path, help="another mmsearch checkout to time beside this one")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for name in ("store", "catalog", "media_dir", "photo"):  # the baseline runs from its own folder
        if getattr(args, name):
            setattr(args, name, getattr(args, name).resolve())
    if args.store and not args.catalog:
        parser.error("--store needs --catalog (the CSV it was ingested from)")
    source, catalog = (args.store, args.catalog) if args.store else (sample_store(), SAMPLE / "products.csv")
    checkouts = {"baseline": args.baseline.resolve(), "this": REPO} if args.baseline else {"this": REPO}
    stores = {name: store_for(checkout, name, source) for name, checkout in checkouts.items()}
    todo = commands(catalog, args.media_dir or catalog.parent, args.photo)
    times: dict[str, dict[str, list[float]]] = {name: {c: [] for c in todo} for name in checkouts}
    for name, checkout in checkouts.items():  # warm the page cache and byte-compile both
        for command, cmd_args in todo.items():
            run_once(checkout, stores[name], cmd_args)
    for _ in range(args.runs):
        for command, cmd_args in todo.items():
            for name, checkout in checkouts.items():
                times[name][command].append(run_once(checkout, stores[name], cmd_args))
    store = source
    import sqlite3

    with sqlite3.connect(f"file:{store / 'catalog.db'}?mode=ro", uri=True) as db:
        products = db.execute("SELECT count(*) FROM products").fetchone()[0]
    results = {
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "store": str(store),
        "products": products,
        "runs": args.runs,
        "commands": list(todo),
        "checkouts": {name: {c: {"p50_s": statistics.median(v), "runs_s": v} for c, v in per.items()} for name, per in times.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (args.out / "startup.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
