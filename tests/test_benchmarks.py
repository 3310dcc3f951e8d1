"""The benchmark eval-set builders, on tiny hand-made slices (no ../shared needed)."""

from pathlib import Path

import pytest

from benchmarks import datasets


def _row(id, article, colour, gender, usage, split="dev", photo=""):
    return {
        "id": id, "title": f"Brand {gender} {colour} {article}", "gender": gender, "masterCategory": "Apparel",
        "subCategory": "Topwear", "articleType": article, "baseColour": colour, "season": "", "year": "",
        "usage": usage, "image": f"thumbs/{id}.jpg", "photo": photo, "split": split,
    }


ROWS = [
    _row("1", "Handbags", "Black", "Women", "Casual", photo="photos/1.jpg"),
    _row("2", "Handbags", "Black", "Women", "Formal"),
    _row("3", "Handbags", "Brown", "Men", "Casual"),
    _row("4", "Tshirts", "Black", "Women", "Casual"),
    _row("5", "Tshirts", "Black", "Women", "Casual", split="test", photo="photos/5.jpg"),
]


def test_test_split_is_never_used():
    assert [r["id"] for r in datasets.only_allowed(ROWS, ["dev"])] == ["1", "2", "3", "4"]
    with pytest.raises(ValueError, match="held out"):
        datasets.only_allowed(ROWS, ["test"])


def test_attribute_qrels_are_graded_by_matching_attributes():
    rows = datasets.only_allowed(ROWS, ["dev"])
    es = datasets.attribute_queries(rows, n=100, seed=0)
    texts = {q["query_id"]: q["text"] for q in es.queries}
    qid = next(q for q, t in texts.items() if t == "casual black handbags for women")
    grades = {pid: g for q, pid, g in es.qrels if q == qid}
    # article type must match for relevance; grade = matching attributes out of four
    assert grades == {"1": 4, "2": 3, "3": 2}
    assert "4" not in grades and "5" not in {pid for _, pid, _ in es.qrels}
    assert len(es.queries) == len({tuple(r[a] for a in datasets.ATTRIBUTES) for r in rows})


def test_known_item_qrels_hold_exactly_the_product():
    es = datasets.known_item_queries(datasets.only_allowed(ROWS, ["dev"]))
    assert len(es.queries) == 4
    assert all(q["text"] for q in es.queries)
    assert {(q, p) for q, p, _ in es.qrels} == {(f"ki{i}", i) for i in "1234"}


def test_photo_queries_exact_and_category():
    exact, category = datasets.photo_queries(datasets.only_allowed(ROWS, ["dev"]), Path("/data"))
    assert exact.queries == [{"query_id": "ph1", "image": "/data/photos/1.jpg"}]
    assert exact.qrels == [("ph1", "1", 1)]
    assert sorted(category.qrels) == [("ph1", "1", 0), ("ph1", "2", 1), ("ph1", "3", 1)]


def test_fsdd_queries_never_meet_their_own_speaker():
    clips = [
        {"file": f"recordings/{d}_{s}_{t}.wav", "digit": str(d), "speaker": s, "take": str(t), "split": "train"}
        for d in (0, 1) for s in ("ann", "bob", "cy") for t in (5, 6, 7)
    ]
    catalog, es = datasets.fsdd_speaker_split(clips, "ann", Path("/fsdd"), takes_per_digit=2)
    assert {c["speaker"] for c in catalog} == {"bob", "cy"}
    assert all("0" not in c["title"] and "1" not in c["title"] for c in catalog)  # no digit in the text
    assert len(es.queries) == 4 and all(q["audio"].startswith("/fsdd/recordings/") for q in es.queries)
    digit_of = {c["id"]: c["digit"] for c in catalog}
    for qid, pid, grade in es.qrels:
        assert grade == 1 and digit_of[pid] == qid.split("-")[1]
    assert len(es.qrels) == 4 * 6  # each query: the 6 same-digit clips of the two other speakers


def test_milvus_benchmark_recall_counts_ties_as_hits():
    from benchmarks.milvus import recall_at_k

    exact = {f"p{i}": 1.0 - i / 100 for i in range(20)}
    assert recall_at_k({f"p{i}" for i in range(10)}, exact) == 1.0
    assert recall_at_k({f"p{i}" for i in range(5, 15)}, exact) == 0.5
    exact["twin"] = exact["p9"]  # shares p9's vector: either one is a correct 10th result
    assert recall_at_k({*(f"p{i}" for i in range(9)), "twin"}, exact) == 1.0
    assert recall_at_k({"p0"}, {"p0": 0.3}) == 1.0  # a filter that leaves fewer than k
