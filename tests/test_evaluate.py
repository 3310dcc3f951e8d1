"""The IR metrics: pytrec_eval's measures under mmsearch's names, checked against
values worked out by hand."""

import math

import pytest

from mmsearch.errors import MMSearchError
from mmsearch.evaluation import below_thresholds, parse_thresholds, score_run


def test_metrics_match_hand_computation():
    qrels = {"q1": {"a": 2, "b": 1, "z": 0}, "q2": {"c": 1}}
    run = {"q1": {"a": 3.0, "x": 2.0, "b": 1.0}, "q2": {"y": 1.0}}
    m = score_run(run, qrels, [1, 2])
    q1 = m["q1"]
    assert q1["recall@1"] == pytest.approx(0.5)
    assert q1["precision@2"] == pytest.approx(0.5)
    assert q1["f1@2"] == pytest.approx(2 * 0.5 * 0.5 / 1.0)
    # graded nDCG@2: DCG = 2/log2(2) + 0; ideal = 2/log2(2) + 1/log2(3)
    assert q1["ndcg@2"] == pytest.approx(2 / (2 + 1 / math.log2(3)))
    assert q1["map"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert q1["mrr"] == pytest.approx(1.0)
    assert all(v == 0 for v in m["q2"].values())


def test_query_with_no_results_scores_zero_not_dropped():
    m = score_run({"q1": {}}, {"q1": {"a": 1}}, [10])
    assert m["q1"]["ndcg@10"] == 0 and m["q1"]["mrr"] == 0


def test_queries_without_relevant_products_are_not_scored():
    assert score_run({"q1": {"a": 1.0}}, {"q1": {"a": 0}}, [10]) == {}


def test_thresholds():
    bars = parse_thresholds(["ndcg@10=0.5", "mrr=0.2"])
    assert below_thresholds({"ndcg@10": 0.4, "mrr": 0.3}, bars) == ["ndcg@10 = 0.4000 is below 0.5"]
    with pytest.raises(MMSearchError, match="unknown metric"):
        below_thresholds({"mrr": 1.0}, {"ndcg@5": 0.1})
    with pytest.raises(MMSearchError, match="METRIC=VALUE"):
        parse_thresholds(["ndcg@10"])
