"""Start-up: mmsearch runs one process per command, so a command imports only what it
uses. Help, status and a re-run of ingest, embed or index on an unchanged store must
not import a deep-learning stack, a Milvus client or the BM25 engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, SAMPLE

#: what a command that loads no model must not import
MODELS = {"torch", "torchvision", "transformers", "sentence_transformers", "open_clip", "timm", "librosa"}
#: ... nor one that touches no Milvus collection or BM25 index
HEAVY = MODELS | {"pymilvus", "bm25s", "numba"}

PROBE = """
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


def imports_of(tmp_path: Path, *args: str, store: Path | None = None) -> set[str]:
    """Top-level packages imported by `mmsearch ARGS` in a fresh interpreter; the command
    must succeed."""
    out = tmp_path / "modules.json"
    env = {**os.environ, **({"MMSEARCH_STORE": str(store)} if store else {})}
    subprocess.run([sys.executable, "-c", PROBE, str(out), *args], cwd=REPO, env=env, capture_output=True, check=True)
    result = json.loads(out.read_text())
    assert result["code"] == 0, args
    return set(result["modules"])


def test_importing_the_cli_and_help_import_nothing_heavy(tmp_path):
    assert imports_of(tmp_path, "--import-only") & HEAVY == set()
    modules = imports_of(tmp_path, "--help")
    assert modules & HEAVY == set()
    assert {"numpy", "pandas", "hnswlib", "PIL"} & modules == set()


@pytest.mark.slow
def test_status_and_unchanged_reruns_import_nothing_heavy(sample_store, tmp_path):
    for args in (("status",), ("ingest", str(SAMPLE / "products.csv"), "--quiet"), ("embed", "--quiet"), ("index", "--quiet")):
        assert imports_of(tmp_path, *args, store=sample_store) & HEAVY == set(), args
    # --verify opens every index part (BM25 included) to prove it loads; still no model
    assert imports_of(tmp_path, "status", "--verify", store=sample_store) & MODELS == set()


def test_the_package_exports_load_on_first_use():
    import mmsearch

    assert callable(mmsearch.embed) and callable(mmsearch.evaluate) and callable(mmsearch.ingest)
    with pytest.raises(AttributeError):
        mmsearch.no_such_name  # noqa: B018
