"""The hnswlib backend against exact search, and its filtered search guarantee."""

import numpy as np

from mmsearch.backends.hnsw import HnswIndex


def _random_unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_search_agrees_with_exact_and_roundtrips(tmp_path):
    vectors = _random_unit(2000, 32)
    index = HnswIndex.build(vectors, m=16, ef_construction=200)
    index.save(tmp_path / "i.hnsw")
    loaded = HnswIndex.load(tmp_path / "i.hnsw", dim=32, count=2000)
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
