"""Start-up: mmsearch runs one process per command, so a command imports only what it
uses. Help, status and a re-run of ingest, embed or index on an unchanged store must
not import a deep-learning stack, a Milvus client or the BM25 engine."""

from __future__ import annotations

import pytest

from .conftest import SAMPLE, cli_imports

#: what a command that loads no model must not import
MODELS = {"torch", "torchvision", "transformers", "sentence_transformers", "open_clip", "timm", "librosa"}
#: ... nor one that touches no Milvus collection or BM25 index
HEAVY = MODELS | {"pymilvus", "bm25s", "numba"}


def test_importing_the_cli_and_help_import_nothing_heavy(tmp_path):
    assert cli_imports(tmp_path, "--import-only") & HEAVY == set()
    modules = cli_imports(tmp_path, "--help")
    assert modules & HEAVY == set()
    assert {"numpy", "pandas", "hnswlib", "PIL"} & modules == set()


@pytest.mark.slow
def test_status_and_unchanged_reruns_import_nothing_heavy(sample_store, tmp_path):
    for args in (("status",), ("ingest", str(SAMPLE / "products.csv"), "--quiet"), ("embed", "--quiet"), ("index", "--quiet")):
        assert cli_imports(tmp_path, *args, store=sample_store) & HEAVY == set(), args
    # --verify opens every index part (BM25 included) to prove it loads; still no model
    assert cli_imports(tmp_path, "status", "--verify", store=sample_store) & MODELS == set()


def test_the_package_exports_load_on_first_use():
    import mmsearch

    assert callable(mmsearch.embed) and callable(mmsearch.evaluate) and callable(mmsearch.ingest)
    with pytest.raises(AttributeError):
        mmsearch.no_such_name  # noqa: B018
