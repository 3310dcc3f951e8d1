"""The hnswlib backend against exact search, and its filtered search guarantee."""

import numpy as np

from mmsearch.backends import Scope
from mmsearch.backends.hnsw import HnswBackend, HnswIndex, HnswPart, recall_vs_exact


def _random_unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_search_agrees_with_exact_and_roundtrips(tmp_path):
    vectors = _random_unit(2000, 32)
    index = HnswIndex.build(vectors, m=16, ef_construction=200)
    index.save(tmp_path / "i.hnsw", tmp_path / "i.npy")
    loaded = HnswIndex.load(tmp_path / "i.hnsw", tmp_path / "i.npy", dim=32)
    q = vectors[7] + 0.01
    labels, sims = loaded.search(q, 10)
    exact = np.argsort(-(vectors @ (q / np.linalg.norm(q))))[:10]
    assert labels[0] == 7
    assert len(set(labels) & set(exact)) >= 9
    assert np.all(np.diff(sims) <= 1e-6)


def test_filtered_search_never_under_returns():
    vectors = _random_unit(30_000, 16, seed=1)
    index = HnswIndex.build(vectors, m=8, ef_construction=50)
    q = _random_unit(1, 16, seed=2)[0]
    everything = np.arange(30_000)
    # a wide filter (graph search with a filter) and a narrow one (exact search)
    for allowed in (everything[everything % 7 != 0], np.array([5, 77, 20_001, 29_999])):
        labels, _ = index.search(q, 10, allowed)
        assert len(labels) == min(10, len(allowed))
        assert set(labels) <= set(allowed.tolist())
        exact = allowed[np.argsort(-(vectors[allowed] @ q))[: len(labels)]]
        assert len(set(labels) & set(exact)) >= len(labels) - 1


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Tight clusters, as product embeddings are: the hard case for a graph walk."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    x = centres[rng.integers(0, 40, n)] + 0.35 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_ef_is_calibrated_to_reach_the_target_recall_on_unseen_queries():
    vectors = _clustered(20_000, 48, seed=3)
    index = HnswIndex.build(vectors, m=8, ef_construction=64)  # a weak graph: ef must grow a lot
    low_ef = index.calibrate(0.5)["ef_search"]
    calibration = index.calibrate(0.98)
    ef = calibration["ef_search"]
    assert calibration["calibrated_recall"] >= 0.98 and ef > low_ef
    # fresh queries of another kind than the calibration's: real-looking noisy points
    rng = np.random.default_rng(9)
    queries = vectors[rng.integers(0, len(vectors), 200)] + 0.3 * rng.normal(size=(200, 48)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index.index.set_ef(ef)
    assert recall_vs_exact(index.index.knn_query(queries, k=10)[0], vectors, queries, 10) >= 0.97
    index.index.set_ef(low_ef)
    assert recall_vs_exact(index.index.knn_query(queries, k=10)[0], vectors, queries, 10) < 0.98


def test_products_sharing_a_vector_share_one_node(tmp_path):
    rng = np.random.default_rng(4)
    table = {f"h{i}": v for i, v in enumerate(_random_unit(300, 16, seed=5))}
    items = [(f"p{i}", "", f"h{i % 300}") for i in range(600)]  # every vector belongs to two products
    items.append(("solo", "", "h7"))  # and one to a third
    entry, synced = HnswBackend().write(
        tmp_path, "text", items, lambda some: np.stack([table[h] for _, _, h in some]), {"id": "m"}, {"M": 16, "ef_construction": 100}, {}
    )
    assert entry["count"] == 601 and entry["nodes"] == 300 and synced is None
    part = HnswPart(tmp_path, "text", {**entry, "fingerprint": ""})
    assert part.count == 601 and part.index.count == 300
    q = table["h7"][None] + 0.01 * rng.normal(size=(1, 16)).astype(np.float32)
    found = part.candidates(q, 3, Scope())
    assert {"p7", "p307", "solo"} <= found
    scores = part.score(q, {"p7", "p307", "solo", "p8"})
    assert scores["p7"] == scores["p307"] == scores["solo"] > scores["p8"]
    # a filter that admits one product of a shared node returns only that one
    only = part.candidates(q, 3, Scope(products={"p307", "p8", "p9", "p10"}))
    assert "p307" in only and not {"p7", "solo"} & only
