"""hnswlib backend (cosine space).

hnswlib's filtered search under-returns when the filter is selective (the graph walk
runs out of allowed neighbours) and is slow with a Python filter; so a narrow filter
goes straight to an exact search over the allowed rows, and a filtered graph search that
comes back short is redone exactly. Either way a filter never yields fewer than k.
"""

from __future__ import annotations

from pathlib import Path

import hnswlib
import numpy as np

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
