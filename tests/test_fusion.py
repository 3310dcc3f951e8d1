import pytest

from mmsearch.fusion import RRF_K, fuse


def test_rrf_orders_by_reciprocal_rank():
    fused = fuse({"text": {"a": 0.9, "b": 0.5}, "lexical": {"a": 3.0, "b": 1.0}}, "rrf")
    assert fused["a"] == pytest.approx(1 / (RRF_K + 1))
    assert fused["b"] == pytest.approx(1 / (RRF_K + 2))


def test_product_missing_a_modality_is_not_penalised():
    # "b" has no image; it is ranked first by text and must beat "a", which is second
    # by text, even though "a" also has an image score.
    fused = fuse({"text": {"a": 0.5, "b": 0.9}, "image": {"a": 0.2}}, "rrf")
    assert fused["b"] > fused["a"]
    weighted = fuse({"text": {"a": 0.5, "b": 0.9, "c": 0.1}, "image": {"a": 0.2, "c": 0.9}}, "weighted")
    assert weighted["b"] == pytest.approx(1.0)


def test_weighted_uses_weights_and_minmax():
    scores = {"text": {"a": 1.0, "b": 0.0}, "lexical": {"a": 0.0, "b": 10.0}}
    assert fuse(scores, "weighted", {"text": 3.0})["a"] == pytest.approx(0.75)
    assert fuse(scores, "weighted", {"text": 3.0})["b"] == pytest.approx(0.25)


def test_unknown_fusion_is_refused():
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse({"text": {"a": 1.0}}, "max")
