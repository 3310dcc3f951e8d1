"""hnswlib backend (cosine space).

One graph node per distinct vector: products that share a text or an image share a
node, mapped back to every one of them. In the Myntra catalog 22 % of product texts
repeat another product's, and duplicate nodes crowd each other out of the graph's
neighbour lists, which cost recall on queries far from any product.

The unit vectors are also kept as a plain matrix (``<part>.vectors.npy``, memory
mapped) for re-scoring candidates and for exact scans. The search-time ``ef`` is
calibrated when the part is built: the smallest value on a ladder whose recall@10
against exact search reaches the target (0.98 by default) on calibration queries (see
``calibration_queries``); then the graph at that ef and a full scan are timed and the
faster one answers queries. Both are recorded in the part's manifest entry and shown
by `mmsearch status`.

hnswlib's filtered search under-returns when the filter is selective (the graph walk
runs out of allowed neighbours) and is slow with a Python filter; so a narrow filter
goes straight to an exact search over the allowed rows, and a filtered graph search that
comes back short is redone exactly. Either way a filter never yields fewer than k.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from operator import itemgetter
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from ..encoders import l2_normalize
from ..errors import MMSearchError
from ..generations import file_entry
from . import (
    DEFAULT_EF_CONSTRUCTION,
    DEFAULT_M,
    DEFAULT_TARGET_RECALL,
    Item,
    Scope,
    best_per_product,
)

# Allowed sets at most this large (or this fraction of the index) are searched exactly.
EXACT_MAX_ROWS = 20_000
EXACT_MAX_FRACTION = 0.25
#: what a part's files hold; parts of another format are rebuilt by `mmsearch index`
FORMAT = 2  # 2: one node per distinct vector, a .npy matrix beside the graph, calibrated ef
EF_LADDER = (50, 100, 200, 400, 800, 1600, 3200)
CALIBRATION_QUERIES = 300
CALIBRATION_K = 10


def calibration_queries(unit_vectors: np.ndarray, n: int = CALIBRATION_QUERIES, seed: int = 0) -> dict[str, np.ndarray]:
    """Two kinds of unit queries, ``n`` of each, as hard for the graph as real ones. A
    stored vector as query is too easy (its own node is in the graph: recall 0.995 at
    ef=100 where real shopper queries got 0.74-0.78).

    - ``between``: the mean of two or three random stored vectors, a point between
      products, where a query that names a few of the catalog's concepts lands;
    - ``anywhere``: random directions, far from every product, where a query in words the
      catalog does not use lands. On the Myntra train store's text part, WANDS furniture
      queries had about the same recall as these at every ef (0.70/0.61 at ef=50,
      0.92/0.88 at 200, 0.98/0.98 at 800; benchmarks/README.md). For image parts they
      are conservative: photo queries reach 0.99 at ef=100.
    """
    rng = np.random.default_rng(seed)
    mixes = [unit_vectors[rng.integers(0, len(unit_vectors), size=(n // 2, mix))].sum(axis=1) for mix in (2, 3)]
    kinds = {"between": np.concatenate(mixes), "anywhere": rng.normal(size=(n, unit_vectors.shape[1]))}
    return {kind: l2_normalize(q) for kind, q in kinds.items()}


def recall_vs_exact(found: np.ndarray, unit_vectors: np.ndarray, queries: np.ndarray, k: int) -> float:
    """Mean recall@k of ``found`` (n, k) labels against exact search over unit vectors. A
    hit counts when its similarity reaches the exact k-th best, so ties are not misses.
    Queries go 32 at a time: all at once against a million vectors is gigabytes."""
    hits = []
    for start in range(0, len(queries), 32):
        sims = queries[start : start + 32] @ unit_vectors.T
        kth = np.partition(sims, -k, axis=1)[:, -k]
        rows = found[start : start + 32].astype(np.int64)
        hits.append(np.take_along_axis(sims, rows, axis=1) >= kth[:, None] - 1e-6)
    return float(np.concatenate(hits).mean())


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Unit rows; a float32 array is normalised in place (a million 384-d vectors are
    1.5 GB: a second copy would be the build's peak)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


def _ms_per_query(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> float:
    started = time.perf_counter()
    for q in queries:
        search(q)
    return (time.perf_counter() - started) / len(queries) * 1000


class HnswIndex:
    """An hnswlib graph plus its unit vectors as a plain matrix (a ``.npy`` file, memory
    mapped). hnswlib's ``get_items`` copies through Python lists (0.5 s for 20k 384-d
    vectors), too slow to re-score candidates or scan a filter's rows; the matrix serves
    both. ``method`` is ``hnsw`` or ``exact`` (a full scan of the matrix), whichever
    reaches the target recall faster (``calibrate``)."""

    backend = "hnswlib"

    def __init__(self, index: hnswlib.Index, matrix: np.ndarray, ef_search: int = 100, method: str = "hnsw"):
        self.index, self.matrix = index, matrix
        self.ef_search, self.method = ef_search, method

    @property
    def count(self) -> int:
        return len(self.matrix)

    @classmethod
    def build(cls, vectors: np.ndarray, m: int = DEFAULT_M, ef_construction: int = DEFAULT_EF_CONSTRUCTION, seed: int = 100) -> "HnswIndex":
        """The graph over ``vectors``, which are normalised in place."""
        matrix = _unit(vectors)
        index = hnswlib.Index(space="cosine", dim=matrix.shape[1])
        index.init_index(max_elements=max(len(matrix), 1), M=m, ef_construction=ef_construction, random_seed=seed)
        if len(matrix):
            index.add_items(matrix, np.arange(len(matrix)))
        return cls(index, matrix)

    def calibrate(self, target: float) -> dict[str, Any]:
        """Settle ``ef_search`` and ``method`` and return them with what was measured.

        ef is the smallest on ``EF_LADDER`` whose recall@10 against exact search reaches
        ``target`` on each kind of ``calibration_queries`` (the largest rung when none
        does). Then the graph at that ef and a full scan are timed on the same queries;
        the scan is chosen when it is faster or the graph cannot reach the target (small
        catalogs: at 26k 384-d vectors a scan takes 0.6 ms, the graph at ef=800 0.8 ms)."""
        k = min(CALIBRATION_K, self.count)
        if k == 0 or self.count <= EF_LADDER[0]:
            self.ef_search, self.method = EF_LADDER[0], "exact"
            return {"ef_search": self.ef_search, "method": self.method, "calibrated_recall": 1.0}
        kinds = calibration_queries(self.matrix)
        for ef in EF_LADDER:
            self.index.set_ef(ef)
            recall = min(recall_vs_exact(self.index.knn_query(q, k=k)[0], self.matrix, q, k) for q in kinds.values())
            if recall >= target:
                break
        self.index.set_num_threads(1)  # as a query runs: one vector at a time
        timed = kinds["anywhere"][:100]
        graph_ms = _ms_per_query(lambda q: self.index.knn_query(q, k=k), timed)
        scan_ms = _ms_per_query(lambda q: self._scan(q, k, None), timed)
        self.ef_search, self.method = ef, "exact" if scan_ms <= graph_ms or recall < target else "hnsw"
        return {
            "ef_search": ef,
            "method": self.method,
            "calibrated_recall": round(1.0 if self.method == "exact" else recall, 4),
            "graph_ms": round(graph_ms, 3),
            "scan_ms": round(scan_ms, 3),
        }

    def save(self, path: Path, matrix_path: Path) -> None:
        self.index.save_index(str(path))
        np.save(matrix_path, self.matrix, allow_pickle=False)

    @classmethod
    def load(cls, path: Path, matrix_path: Path, dim: int, ef_search: int = 100, method: str = "hnsw") -> "HnswIndex":
        matrix = np.load(matrix_path, mmap_mode="r", allow_pickle=False)
        if matrix.dtype != np.float32 or matrix.ndim != 2 or matrix.shape[1] != dim:
            raise ValueError(f"{matrix_path} holds {matrix.dtype} {matrix.shape}, expected float32 (n, {dim})")
        index = hnswlib.Index(space="cosine", dim=dim)
        index.load_index(str(path), max_elements=max(len(matrix), 1))
        return cls(index, matrix, ef_search, method)

    def vectors(self, labels: np.ndarray) -> np.ndarray:
        return np.asarray(self.matrix[np.asarray(labels, dtype=np.int64)], dtype=np.float32)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        n = self.count if allowed is None else len(allowed)
        k = min(k, n)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self.method == "exact" or (allowed is not None and (n <= EXACT_MAX_ROWS or n <= EXACT_MAX_FRACTION * self.count)):
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
        return self._scan(query / max(float(np.linalg.norm(query)), 1e-12), k, allowed)

    def _scan(self, unit_query: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        labels = None if allowed is None else np.asarray(allowed, dtype=np.int64)
        sims = (self.matrix if labels is None else self.matrix[labels]) @ unit_query
        k = min(k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.lexsort((top, -sims[top]))]  # best first; ties by label, as a stable sort
        return (top if labels is None else labels[top]), sims[top].astype(np.float32)


class HnswBackend:
    """Parts as hnswlib files in the generation folder (the embedded default)."""

    name = "hnswlib"

    @classmethod
    def from_config(cls, config: dict[str, Any], store_id: str, token: str | None = None) -> "HnswBackend":
        return cls()  # nothing to configure: the files live in the generation folder

    @staticmethod
    def open_part(folder: Path, name: str, entry: dict[str, Any]) -> "HnswPart":
        return HnswPart(folder, name, entry)

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name}

    def fingerprint(self, items: list[Item], model_id: str, products: Mapping[str, Any]) -> list[Any]:
        return [FORMAT]  # the index holds vectors only: filters are applied from the catalog

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
    ) -> tuple[dict[str, Any], None]:
        # items with the same content hash have the same vector: one node for all of them
        node_of: dict[str, int] = {}
        nodes = [node_of.setdefault(digest, len(node_of)) for _, _, digest in items]
        first = {}
        for item, node in zip(items, nodes):
            first.setdefault(node, item)
        index = HnswIndex.build(vectors([first[node] for node in range(len(node_of))]), params["M"], params["ef_construction"])
        calibration = index.calibrate(params.get("target_recall", DEFAULT_TARGET_RECALL))
        index_path, matrix_path, ids_path = (folder / f"{part}{suffix}" for suffix in (".hnsw", ".vectors.npy", ".ids.json"))
        for path in (index_path, matrix_path, ids_path):  # may be hard links into the live generation
            path.unlink(missing_ok=True)
        index.save(index_path, matrix_path)
        ids_path.write_text(json.dumps([[pid, key, node] for (pid, key, _), node in zip(items, nodes)]), encoding="utf-8")
        entry = {
            "backend": self.name,
            "format": FORMAT,
            "space": "cosine",
            "dim": int(index.matrix.shape[1]),
            "count": len(items),
            "nodes": len(node_of),
            **calibration,
            "model": model,
            "files": [file_entry(index_path), file_entry(matrix_path), file_entry(ids_path)],
            **params,
        }
        return entry, None


class HnswPart:
    """One part's hnswlib index with its id map: item -> (product, media path, node)."""

    def __init__(self, folder: Path, name: str, entry: dict[str, Any]):
        self.name, self.entry = name, entry
        if entry.get("format") != FORMAT:
            raise MMSearchError(f"the {name} index part was built by an older mmsearch: run `mmsearch index` to rebuild it")
        self.index = HnswIndex.load(
            folder / f"{name}.hnsw", folder / f"{name}.vectors.npy", entry["dim"], entry["ef_search"], entry["method"]
        )
        ids = json.loads((folder / f"{name}.ids.json").read_text(encoding="utf-8"))
        self.labels: dict[str, list[int]] = defaultdict(list)  # product -> its items' nodes
        self.node_products: dict[int, list[str]] = defaultdict(list)
        for pid, _key, node in ids:
            self.labels[pid].append(node)
            self.node_products[node].append(pid)
        self.max_per_product = max((len(v) for v in self.labels.values()), default=1)
        # most products have one item per part: a flat map makes a filter's nodes one C-level lookup
        self.single_node = {pid: nodes[0] for pid, nodes in self.labels.items() if len(nodes) == 1}
        self.multi_nodes = {pid: nodes for pid, nodes in self.labels.items() if len(nodes) > 1}
        self.items = len(ids)

    @property
    def count(self) -> int:
        """Items (a product's text, each of its media files), not graph nodes."""
        return self.items

    def products(self) -> set[str]:
        return set(self.labels)

    def product_vectors(self, pid: str) -> np.ndarray:
        return self.index.vectors(np.array(self.labels.get(pid, []), dtype=np.int64))

    def _allowed_labels(self, products: set[str] | None) -> np.ndarray | None:
        if products is None:
            return None
        single = products & self.single_node.keys()
        nodes = list(itemgetter(*single)(self.single_node)) if len(single) > 1 else [self.single_node[p] for p in single]
        for pid in products & self.multi_nodes.keys():
            nodes += self.multi_nodes[pid]
        return np.unique(np.array(nodes, dtype=np.int64))

    def candidates(self, queries: np.ndarray, n: int, scope: Scope) -> set[str]:
        """Up to ``n`` products nearest to any query vector."""
        allowed = self._allowed_labels(scope.products)
        found: set[str] = set()
        for q in queries:
            labels, _ = self.index.search(q, n * self.max_per_product, allowed)
            ranked = dict.fromkeys(pid for label in labels for pid in self.node_products[label])
            if scope.products is not None:
                ranked = {pid: None for pid in ranked if pid in scope.products}  # a shared node's other products
            found.update(list(ranked)[:n])
        return found

    def score(self, queries: np.ndarray, products: set[str]) -> dict[str, float]:
        """Exact cosine of each product's best media item against the best query vector."""
        pids = [pid for pid in products if pid in self.labels]
        if not pids:
            return {}
        owners = [pid for pid in pids for _ in self.labels[pid]]
        labels = np.array([label for pid in pids for label in self.labels[pid]])
        return best_per_product(owners, self.index.vectors(labels), queries)
