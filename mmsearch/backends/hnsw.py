"""hnswlib backend (cosine space).

hnswlib's filtered search under-returns when the filter is selective (the graph walk
runs out of allowed neighbours) and is slow with a Python filter; so a narrow filter
goes straight to an exact search over the allowed rows, and a filtered graph search that
comes back short is redone exactly. Either way a filter never yields fewer than k.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from ..store import file_entry
from . import Item, Scope

# Allowed sets at most this large (or this fraction of the index) are searched exactly.
EXACT_MAX_ROWS = 20_000
EXACT_MAX_FRACTION = 0.25


class HnswIndex:
    backend = "hnswlib"

    def __init__(self, index: hnswlib.Index, ef_search: int = 100):
        self.index = index
        self.ef_search = ef_search

    @property
    def count(self) -> int:
        return self.index.get_current_count()

    @classmethod
    def build(cls, vectors: np.ndarray, m: int = 16, ef_construction: int = 200, seed: int = 100) -> "HnswIndex":
        index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
        index.init_index(max_elements=max(len(vectors), 1), M=m, ef_construction=ef_construction, random_seed=seed)
        if len(vectors):
            index.add_items(vectors, np.arange(len(vectors)))
        return cls(index)

    def save(self, path: Path) -> None:
        self.index.save_index(str(path))

    @classmethod
    def load(cls, path: Path, dim: int, count: int) -> "HnswIndex":
        index = hnswlib.Index(space="cosine", dim=dim)
        index.load_index(str(path), max_elements=max(count, 1))
        return cls(index)

    def vectors(self, labels: np.ndarray) -> np.ndarray:
        if len(labels) == 0:
            return np.zeros((0, self.index.dim), dtype=np.float32)
        return np.asarray(self.index.get_items(np.asarray(labels), return_type="numpy"), dtype=np.float32)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        n = self.count if allowed is None else len(allowed)
        k = min(k, n)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if allowed is not None and (n <= EXACT_MAX_ROWS or n <= EXACT_MAX_FRACTION * self.count):
            return self.exact(query, k, allowed)
        self.index.set_ef(max(self.ef_search, k))
        allowed_set = None if allowed is None else set(allowed.tolist())
        try:
            labels, distances = self.index.knn_query(
                query.reshape(1, -1), k=k, filter=None if allowed_set is None else allowed_set.__contains__
            )
        except RuntimeError:  # "Cannot return the results in a contiguous 2D array": too few found
            return self.exact(query, k, allowed)
        return labels[0].astype(np.int64), (1.0 - distances[0]).astype(np.float32)

    def exact(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Brute-force cosine search over ``allowed`` (or everything)."""
        labels = np.arange(self.count) if allowed is None else np.asarray(allowed, dtype=np.int64)
        sims = self.vectors(labels) @ (query / max(float(np.linalg.norm(query)), 1e-12))
        top = np.argsort(-sims, kind="stable")[:k]
        return labels[top], sims[top].astype(np.float32)


class HnswBackend:
    """Parts as hnswlib files in the generation folder (the embedded default)."""

    name = "hnswlib"

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name}

    def fingerprint(self, items: list[Item], model_id: str, products: Mapping[str, Any]) -> list[Any]:
        return []  # the index holds vectors only: filters are applied from the catalog

    def is_intact(self, entry: dict[str, Any]) -> bool:
        return True  # its files are checked against their checksums by the caller

    def close(self) -> None:
        pass  # nothing held open between parts

    def write(
        self,
        folder: Path,
        part: str,
        items: list[Item],
        vectors: Callable[[list[Item]], np.ndarray],
        model: dict[str, Any],
        params: dict[str, Any],
        products: Mapping[str, Any],
    ) -> dict[str, Any]:
        matrix = vectors(items)
        index = HnswIndex.build(matrix, m=params["M"], ef_construction=params["ef_construction"])
        index_path, ids_path = folder / f"{part}.hnsw", folder / f"{part}.ids.json"
        for path in (index_path, ids_path):  # may be hard links into the live generation
            path.unlink(missing_ok=True)
        index.save(index_path)
        ids_path.write_text(json.dumps([[pid, key] for pid, key, _ in items]), encoding="utf-8")
        return {
            "backend": self.name,
            "space": "cosine",
            "dim": int(matrix.shape[1]),
            "count": len(items),
            "model": model,
            "files": [file_entry(index_path), file_entry(ids_path)],
            **params,
        }


class HnswPart:
    """One part's hnswlib index with its id map (label -> product, media path)."""

    def __init__(self, folder: Path, name: str, entry: dict[str, Any]):
        self.name, self.entry = name, entry
        self.index = HnswIndex.load(folder / f"{name}.hnsw", dim=entry["dim"], count=entry["count"])
        ids = json.loads((folder / f"{name}.ids.json").read_text(encoding="utf-8"))
        self.labels: dict[str, list[int]] = defaultdict(list)
        for label, (pid, _key) in enumerate(ids):
            self.labels[pid].append(label)
        self.label_product = [pid for pid, _ in ids]
        self.max_per_product = max((len(v) for v in self.labels.values()), default=1)

    @property
    def count(self) -> int:
        return self.index.count

    def products(self) -> set[str]:
        return set(self.labels)

    def product_vectors(self, pid: str) -> np.ndarray:
        return self.index.vectors(np.array(self.labels.get(pid, []), dtype=np.int64))

    def _allowed_labels(self, products: set[str] | None) -> np.ndarray | None:
        if products is None:
            return None
        return np.array(sorted(label for pid in products for label in self.labels.get(pid, ())), dtype=np.int64)

    def candidates(self, queries: np.ndarray, n: int, scope: Scope) -> set[str]:
        """Up to ``n`` products nearest to any query vector."""
        allowed = self._allowed_labels(scope.products)
        found: set[str] = set()
        for q in queries:
            labels, _ = self.index.search(q, n * self.max_per_product, allowed)
            ranked = dict.fromkeys(self.label_product[label] for label in labels)
            found.update(list(ranked)[:n])
        return found

    def score(self, queries: np.ndarray, products: set[str]) -> dict[str, float]:
        """Exact cosine of each product's best media item against the best query vector."""
        pids = [pid for pid in products if pid in self.labels]
        if not pids:
            return {}
        labels = np.array([label for pid in pids for label in self.labels[pid]])
        sims = (self.index.vectors(labels) @ queries.T).max(axis=1)
        out: dict[str, float] = {}
        for label, sim in zip(labels, sims):
            pid = self.label_product[label]
            out[pid] = max(out.get(pid, -1.0), float(sim))
        return out
