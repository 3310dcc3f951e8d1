"""Vector index backends: where a part's vectors live and how they are searched.

A part is one modality's vectors (or a bridged projection of them), one vector per item
(a product's text, or one of its image or audio files). A backend writes a part from
the store's items (``Backend.write``) and opens it for search (``open_part``), which
answers the two questions search asks: which products are near these query vectors
within this scope, and what is each given product's best exact cosine score.

Backends: ``hnswlib`` (embedded, files in the store: backends/hnsw.py) and ``milvus``
(a Milvus server or cluster, or a milvus-lite file: backends/milvus.py), registered by
name in ``BACKENDS``. A new engine is one new module here plus its line in ``BACKENDS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import MMSearchError

if TYPE_CHECKING:
    import numpy as np

    from ..filters import Filters

Item = tuple[str, str, str]  # (product id, media path or "", content hash)
Synced = dict[str, int]  # what a sync changed: {"upserted": n, "deleted": n}
#: every index backend: name -> its Backend class, as "module:Class" under this package so
#: that a store that does not use an engine never imports its client
BACKENDS: dict[str, str] = {"hnswlib": "hnsw:HnswBackend", "milvus": "milvus:MilvusBackend"}
DEFAULT_BACKEND = "hnswlib"
#: HNSW graph degree and build beam (hnswlib's own suggestions; `mmsearch index --m ...`)
DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 200
#: recall@10 against exact search that an hnswlib part's search ef is calibrated to reach
DEFAULT_TARGET_RECALL = 0.98
#: where the Milvus token is read from (never written to the store)
MILVUS_TOKEN_ENV = "MMSEARCH_MILVUS_TOKEN"


@dataclass
class Scope:
    """Which products a search may return: the filters as the user gave them (for an
    engine that evaluates them itself) and the products they select in the catalog
    (None: no filter)."""

    filters: "Filters | None" = None
    products: set[str] | None = None


class VectorPart(Protocol):
    name: str

    @property
    def count(self) -> int:
        """How many vectors the backend holds for this part."""
        ...

    def products(self) -> set[str]: ...

    def product_vectors(self, pid: str) -> np.ndarray:
        """(n, dim) unit vectors of one product's items; (0, dim) if it has none."""
        ...

    def candidates(self, queries: np.ndarray, n: int, scope: Scope) -> set[str]:
        """Up to ``n`` products in ``scope`` nearest to any of the query vectors."""
        ...

    def score(self, queries: np.ndarray, products: set[str]) -> dict[str, float]:
        """Exact cosine of each product's best item against the best query vector."""
        ...


class Backend(Protocol):
    name: str

    @classmethod
    def from_config(cls, config: dict[str, Any], store_id: str, token: str | None = None) -> "Backend":
        """The backend a store's index config names (see indexing.configure_backend)."""
        ...

    @staticmethod
    def open_part(folder: Path, name: str, entry: dict[str, Any]) -> VectorPart:
        """Open a part this backend wrote (its manifest entry) for search."""
        ...

    def settings(self) -> dict[str, Any]:
        """Recorded in each part's manifest entry: where the part lives."""
        ...

    def fingerprint(self, items: list[Item], model_id: str, products: Mapping[str, Any]) -> list[Any]:
        """What, beyond the items' vectors, the part is made from."""
        ...

    def is_intact(self, entry: dict[str, Any]) -> bool:
        """Whether a finished part (its manifest entry) can be reused as it is."""
        ...

    def close(self) -> None:
        """Release connections (a milvus-lite file admits one process at a time)."""
        ...

    def write(
        self,
        folder: Path,
        part: str,
        items: list[Item],
        vectors: Callable[[list[Item]], np.ndarray],
        model: dict[str, Any],
        params: dict[str, Any],
        products: Mapping[str, Any],
    ) -> tuple[dict[str, Any], Synced | None]:
        """Write the part (files under ``folder``, or rows in an engine) and return its
        manifest entry, with what an engine that syncs in place changed (None for one
        that writes the part afresh). ``vectors`` computes the vectors of any subset of
        ``items``, so an engine that syncs incrementally only computes what changed."""
        ...


def best_per_product(owners: Sequence[str], vectors: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    """Each product's best exact cosine: ``vectors[i]`` (unit rows) belongs to product
    ``owners[i]``; a product scores its best item against its best query vector."""
    out: dict[str, float] = {}
    if not len(owners):
        return out
    for pid, sim in zip(owners, (vectors @ queries.T).max(axis=1).tolist()):
        if sim > out.get(pid, -2.0):
            out[pid] = sim
    return out


def backend_class(name: str) -> type[Backend]:
    """The class registered as backend ``name``."""
    if name not in BACKENDS:
        raise MMSearchError(f"unknown index backend {name!r}: use one of {', '.join(BACKENDS)}")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def make_backend(config: dict[str, Any], store_id: str, token: str | None = None) -> Backend:
    """The backend a store's index config names (see indexing.configure_backend)."""
    return backend_class(config.get("backend", DEFAULT_BACKEND)).from_config(config, store_id, token)


def open_part(folder: Path, name: str, entry: dict[str, Any]) -> VectorPart:
    """Open a part of a published generation for search, with the backend that wrote it."""
    return backend_class(entry.get("backend", DEFAULT_BACKEND)).open_part(folder, name, entry)
