"""Query understanding: catalog values named in a query are evidence for the products
carrying them (the ``attributes`` signal), price phrases become price filters, and
`query --explain` shows both with each signal's share of each score.

Real data: a slice of the Myntra dev split (skipped when ../shared is absent) and
sample_data, both embedded with the deterministic fake encoder: what is tested is what
understanding adds to the same signals, not what the models find."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmsearch import Store
from mmsearch.catalog import ingest
from mmsearch.cli import app
from mmsearch.embedding import embed
from mmsearch.indexing import build_index
from mmsearch.search import ATTRIBUTES, Query, Searcher
from mmsearch.understanding import Vocabulary, find_price, understand

from .conftest import myntra_rows

COLUMNS = ["id", "title", "category", "brand", "gender", "baseColour", "usage", "season"]
WITHOUT = ["lexical", "text", "image", "audio"]  # every signal but the understood values


@pytest.fixture(scope="module")
def myntra_store(tmp_path_factory) -> Path:
    """300 real dev-split products (text only), indexed with the fake text encoder."""
    rows = myntra_rows("dev", 300)
    folder = tmp_path_factory.mktemp("myntra")
    catalog = folder / "catalog.csv"
    with open(catalog, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for r in rows:
            writer.writerow([r["id"], r["title"], r["articleType"], r["title"].split()[0], r["gender"], r["baseColour"], r["usage"], r["season"]])
    store = Store(folder / "store")
    with store.writer("test"):
        ingest(store, catalog)
        embed(store, {"text": "fake:32"})
        build_index(store)
    store.close()
    return folder / "store"


def _carries(store: Store, pid: str, column: str, value: str) -> bool:
    row = store.db.execute("SELECT category, brand, attributes FROM products WHERE id=?", (pid,)).fetchone()
    have = row[column] if column in ("category", "brand") else json.loads(row["attributes"]).get(column)
    return (have or "").lower() == value.lower()


def test_values_are_found_singular_plural_multiword_and_chinese():
    vocabulary = Vocabulary(
        {
            "products": 100,
            "values": [
                ["category", "Sports Shoes", 5], ["usage", "Sports", 30], ["category", "Shoes", 9],
                ["baseColour", "Red", 20], ["brand", "Red", 2], ["category", "T-Shirts", 12], ["colour", "红色", 3],
            ],
        }
    )
    found = [(phrase, v.column, v.value) for phrase, v in vocabulary.find("red sports shoes and tshirts 红色的")]
    # the longest match wins; "red" is the colour of 20 products, not the brand of 2
    assert ("sports shoes", "category", "Sports Shoes") in found and ("red", "baseColour", "Red") in found
    assert not any(value in ("Sports", "Shoes") for _, _, value in found)
    assert ("红色", "colour", "红色") in found
    assert [v.value for _, v in vocabulary.find("Red T-Shirt")] == ["Red", "T-Shirts"]
    assert vocabulary.find("a bag for the beach") == []


@pytest.mark.parametrize(
    ("text", "low", "high", "rest"),
    [
        ("red mug under 50", None, 50, "red mug"),
        ("below $20 lamp", None, 20, "lamp"),
        ("shoes less than 30", None, 30, "shoes"),
        ("watch over 1,000", 1000, None, "watch"),
        ("bags between 10 and 30", 10, 30, "bags"),
        ("kettle 10-30 dollars", 10, 30, "kettle"),
        ("茶杯50元以下", None, 50, "茶杯"),
        ("¥20到50元 茶杯", 20, 50, "茶杯"),
        ("size 10-12 shoes", None, None, "size 10-12 shoes"),  # no currency: not a price
        ("under armour shoes", None, None, "under armour shoes"),
    ],
)
def test_price_phrases(text, low, high, rest):
    price, left = find_price(text)
    assert (price and price.min, price and price.max) == ((low, high) if price else (None, None))
    assert left == rest


def test_a_named_attribute_boosts_products_carrying_it(myntra_store):
    """Queries like the benchmark's ("casual black watches for men", from the 20 most
    common usage/colour/type/gender combinations of the slice): the understood values
    raise the products carrying them, by a discounted count of the values each result
    carries (ndcg's gain), over every signal alone or fused without them."""
    store = Store(myntra_store, read_only=True)
    searcher = Searcher(store)
    combos = store.db.execute(
        "SELECT json_extract(attributes, '$.usage') AS u, json_extract(attributes, '$.baseColour') AS c, category, "
        "json_extract(attributes, '$.gender') AS g FROM products WHERE g IN ('Men', 'Women') AND u != '' "
        "GROUP BY u, c, category, g ORDER BY count(*) DESC, category LIMIT 20"
    ).fetchall()

    def gain(results, understood) -> float:
        return sum(
            sum(_carries(store, r.id, v["column"], v["value"]) for v in understood.values) / math.log2(r.rank + 1) for r in results
        )

    totals = {"with": 0.0, "without": 0.0, "text": 0.0, "text+attributes": 0.0}
    for usage, colour, category, gender in combos:
        text = f"{usage} {colour} {category} for {gender}".lower()
        understood, found = searcher.explain(Query(text), k=10)
        named = {(v["column"], v["value"].lower()) for v in understood.values}
        assert {("usage", usage.lower()), ("baseColour", colour.lower()), ("gender", gender.lower())} <= named, text
        assert all(r.scores[ATTRIBUTES] is not None for r in found)
        totals["with"] += gain(found, understood)
        totals["without"] += gain(searcher.search(Query(text), k=10, modalities=WITHOUT), understood)
        totals["text"] += gain(searcher.search(Query(text), k=10, modalities=["text"]), understood)
        totals["text+attributes"] += gain(searcher.search(Query(text), k=10, modalities=["text", ATTRIBUTES]), understood)
    assert totals["with"] > totals["without"] and totals["text+attributes"] > totals["text"], totals


def test_a_price_phrase_filters(fake_store):
    searcher = Searcher(Store(fake_store, read_only=True))
    understood, found = searcher.explain(Query("mug under 15"), k=20)
    assert understood.price.max == 15 and understood.rest == "mug"
    assert found and all(r.price is not None and r.price <= 15 for r in found)
    everything = searcher.search(Query("mug"), k=20)
    assert any(r.price > 15 for r in everything)  # the filter removed something
    # --max-price given: it wins over the phrase
    understood, found = searcher.explain(Query("mug under 15"), k=20, filters=_filters(max_price=30))
    assert not understood.price.applied and understood.rest == "mug"
    assert any(r.price > 15 for r in found) and all(r.price <= 30 for r in found)


def _filters(**bounds):
    from mmsearch.filters import Filters

    return Filters(**bounds)


def test_a_price_phrase_is_words_in_a_catalog_without_prices(myntra_store):
    understood, found = Searcher(Store(myntra_store, read_only=True)).explain(Query("shirts under 50"), k=5)
    assert understood.price is None and understood.rest == "shirts under 50" and found


def test_a_query_naming_no_value_ranks_as_before(myntra_store):
    searcher = Searcher(Store(myntra_store, read_only=True))
    text = "something nice to wear this weekend"
    understood, found = searcher.explain(Query(text), k=10)
    assert understood.values == [] and understood.price is None
    before = searcher.search(Query(text), k=10, modalities=WITHOUT)
    assert [(r.id, r.score) for r in found] == [(r.id, r.score) for r in before]
    assert ATTRIBUTES not in found[0].scores


def test_explain_names_values_price_and_contributions(fake_store):
    runner = CliRunner()
    args = ["query", "red mugs under 20", "--store", str(fake_store), "-k", "3"]
    table = runner.invoke(app, [*args, "--explain"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "'red' = color red" in table.output and "category Mugs" in table.output
    assert "price phrase 'under 20': price <= 20" in table.output

    explained = json.loads(runner.invoke(app, [*args, "--explain", "--json"]).stdout)
    assert explained["understood"]["price"]["max"] == 20
    assert {(v["column"], v["value"]) for v in explained["understood"]["values"]} == {("color", "red"), ("category", "Mugs")}
    for r in explained["results"]:
        assert r["price"] <= 20
        assert set(r["contributions"]) == set(r["scores"]) and abs(sum(r["contributions"].values()) - r["score"]) < 1e-5

    plain = json.loads(runner.invoke(app, [*args, "--json"]).stdout)  # scripts' shape is unchanged
    assert isinstance(plain, list) and "contributions" not in plain[0]
    assert [r["id"] for r in plain] == [r["id"] for r in explained["results"]]


def test_the_vocabulary_is_saved_with_the_index(fake_store):
    searcher = Searcher(Store(fake_store, read_only=True))
    saved = searcher.part("lexical").vocabulary
    assert saved is not None and ("mug",) in saved.by_terms  # category Mugs, stemmed
    understood = understand("blue ceramic mugs", saved, lambda: True)
    assert {v["column"] for v in understood.values} == {"color", "material", "category"}


def test_a_number_too_large_for_a_price_is_not_a_price(fake_store):
    """"under 999…9" (400 digits) is words, not --max-price inf (which exits 2 naming an
    option the user never gave)."""
    huge = "9" * 400
    assert find_price(f"mug under {huge}") == (None, f"mug under {huge}")
    assert Searcher(Store(fake_store, read_only=True)).search(Query(f"mug under {huge}"), k=3)
