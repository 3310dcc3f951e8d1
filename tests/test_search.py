"""Search through the library API on the sample store, with the real models."""

import pytest

from mmsearch import Filters, Query, Searcher, Store
from mmsearch.errors import MMSearchError
from mmsearch.search import BRIDGED_WEIGHT

from .conftest import SAMPLE

pytestmark = pytest.mark.slow  # what the real models find


@pytest.fixture(scope="module")
def searcher(sample_store_template):
    return Searcher(Store(sample_store_template))


def ids(results):
    return [r.id for r in results]


def test_text_query_finds_the_product_by_words_and_meaning(searcher):
    assert ids(searcher.search(Query(text="red coffee mug"), k=3))[0] == "p001"
    # no shared words with the title: only the dense text signal can find it
    dense = searcher.search(Query(text="something to wake me up in the morning"), k=5, modalities=["text"])
    assert {"p026", "p028"} & set(ids(dense))


def test_image_and_audio_queries_find_their_source_product(searcher):
    assert ids(searcher.search(Query(image=SAMPLE / "queries/q_p007.png"), k=3))[0] == "p007"
    assert ids(searcher.search(Query(audio=SAMPLE / "queries/q_p025.wav"), k=3))[0] == "p025"


def test_results_carry_every_signal_score(searcher):
    results = searcher.search(Query(text="blue enamel mug", image=SAMPLE / "queries/q_p002.png"), k=5)
    assert results[0].id == "p002"
    # "blue", "mug": understood values; the words also reach the clips through what they sound like
    assert set(results[0].scores) == {"lexical", "text", "image", "audio", "attributes"}
    assert all(r.scores["text"] is not None for r in results)
    assert [r.rank for r in results] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in zip(results, results[1:]))


def test_modality_restricts_signals(searcher):
    results = searcher.search(Query(text="red coffee mug"), k=3, modalities=["lexical"])
    assert set(results[0].scores) == {"lexical"}
    with pytest.raises(MMSearchError, match="reaches none"):
        searcher.search(Query(text="red coffee mug"), k=3, modalities=["duplicate"])
    with pytest.raises(MMSearchError, match="unknown modality"):
        searcher.search(Query(text="mug"), modalities=["smell"])


def test_filters(searcher):
    cheap = searcher.search(Query(text="lamp"), k=10, filters=Filters(max_price=30))
    assert cheap and all(r.price <= 30 for r in cheap)
    clocks = searcher.search(Query(text="mug"), k=10, filters=Filters(category="clocks"))
    # no clock matches "mug" by words, yet every clock is still returned (dense signal)
    assert sorted(ids(clocks)) == ["p026", "p027", "p028", "p029", "p030"]
    wood = searcher.search(Query(text="lamp"), k=10, filters=Filters(where={"material": "wood"}))
    assert wood and all(r.category for r in wood)
    store = Store(searcher.store.root)
    materials = {
        pid: m for pid, m in store.db.execute("SELECT id, json_extract(attributes, '$.material') FROM products")
    }
    assert all(materials[r.id] == "wood" for r in wood)


def test_filter_never_returns_fewer_than_k_when_k_match(searcher):
    # 25 products cost at least 10; an image query reaches only products with images.
    for k in (5, 20):
        results = searcher.search(Query(image=SAMPLE / "queries/q_p001.png"), k=k, filters=Filters(min_price=10))
        assert len(results) == k
        assert all(r.price >= 10 for r in results)


def test_like_finds_similar_products_and_excludes_itself(searcher):
    results = searcher.search(Query(like="p002"), k=5)
    assert "p002" not in ids(results)
    assert results[0].category == "Mugs"
    with pytest.raises(MMSearchError, match="no such product"):
        searcher.search(Query(like="nope"))


def test_weighted_fusion(searcher):
    results = searcher.search(Query(text="red coffee mug"), k=3, fusion="weighted", weights={"lexical": 2.0})
    assert results[0].id == "p001"
    assert 0 <= results[-1].score <= results[0].score <= 1.0


def test_a_bridged_signal_counts_less_by_default(searcher):
    """A text query reaches images only through the bridge: that signal weighs
    BRIDGED_WEIGHT unless --weight says otherwise."""
    query = Query(text="striped t-shirt")
    default = searcher.search(query, k=10)
    assert all("image" in r.scores for r in default)
    assert default == searcher.search(query, k=10, weights={"image": BRIDGED_WEIGHT})
    assert [r.score for r in default] != [r.score for r in searcher.search(query, k=10, weights={"image": 1.0})]
    # a photo query: its own image signal keeps weight 1, the bridged text signal gets less
    photo = Query(image=SAMPLE / "queries/q_p007.png")
    assert searcher.search(photo, k=10) == searcher.search(photo, k=10, weights={"image": 1.0, "text": BRIDGED_WEIGHT})
