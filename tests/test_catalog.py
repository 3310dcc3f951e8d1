"""Ingest semantics on a real SQLite store: upsert by id, prune, field mapping,
attributes kept, media hashed and path-checked."""

import json

import pytest
from PIL import Image

from mmsearch import Store, ingest
from mmsearch.catalog import parse_mapping, product_text
from mmsearch.errors import ExitCode, MMSearchError


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _products(store):
    return {r["id"]: dict(r) for r in store.db.execute("SELECT * FROM products")}


def test_upsert_adds_updates_leaves_unchanged_and_prunes(tmp_path):
    store = Store(tmp_path / "store")
    csv = _write(tmp_path / "c.csv", "id,title,price,colour\n1,Red mug,5,red\n2,Blue mug,6,blue\n3,Lamp,20,white\n")
    first = ingest(store, csv)
    assert first.summary() == {"added": 3, "updated": 0, "unchanged": 0, "removed": 0, "rejected": 0}
    before = _products(store)

    _write(tmp_path / "c.csv", "id,title,price,colour\n1,Red mug,5,red\n2,Blue mug,7.5,blue\n4,Clock,30,black\n")
    second = ingest(store, csv)
    assert (second.added, second.updated, second.unchanged, second.removed) == (["4"], ["2"], 1, [])
    after = _products(store)
    assert after["1"] == before["1"]  # untouched, same updated_at
    assert after["2"]["price"] == 7.5
    assert "3" in after  # without --prune nothing is removed

    third = ingest(store, csv, prune=True)
    assert third.removed == ["3"] and "3" not in _products(store)


def test_prune_keeps_products_whose_row_was_rejected(tmp_path):
    store = Store(tmp_path / "store")
    csv = _write(tmp_path / "c.csv", "id,title,price\n1,Mug,5\n2,Lamp,9\n")
    ingest(store, csv)
    _write(tmp_path / "c.csv", "id,title,price\n1,Mug,5\n2,Lamp,not-a-price\n")
    report = ingest(store, csv, prune=True)
    assert [(r.line, r.column) for r in report.rejects] == [(3, "price")]
    assert _products(store)["2"]["price"] == 9  # the stored version survives


def test_map_and_attributes(tmp_path):
    store = Store(tmp_path / "store")
    csv = _write(tmp_path / "c.csv", "sku,productDisplayName,gender,usage\nA1,Black handbag,Women,Casual\n")
    ingest(store, csv, mapping=parse_mapping(["id=sku", "title=productDisplayName"]))
    row = _products(store)["A1"]
    assert row["title"] == "Black handbag"
    assert json.loads(row["attributes"]) == {"gender": "Women", "usage": "Casual"}
    assert product_text(row) == "Black handbag. gender: Women. usage: Casual"
    assert product_text(row, ["title", "usage"]) == "Black handbag. usage: Casual"


@pytest.mark.parametrize(
    "items, words",
    [(["name=title"], "unknown field"), (["title"], "expected FIELD=COLUMN, e.g. --map title="), (["title="], "name the CSV column")],
)
def test_bad_mapping_is_a_usage_error(items, words):
    """A malformed --map is a mistake on the command line: exit 2, like --where/--weight."""
    with pytest.raises(MMSearchError, match=words) as raised:
        parse_mapping(items)
    assert raised.value.exit_code == ExitCode.USAGE


def test_media_is_hashed_and_a_changed_image_updates_the_product(tmp_path):
    store = Store(tmp_path / "store")
    (tmp_path / "img").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "img" / "a.png")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "img" / "b.png")
    csv = _write(tmp_path / "c.csv", "id,title,image\n1,Mug,img/a.png|img/b.png\n")
    ingest(store, csv)
    media = store.db.execute("SELECT position, sha256 FROM media ORDER BY position").fetchall()
    assert len(media) == 2 and media[0][1] != media[1][1]
    Image.new("RGB", (8, 8), "green").save(tmp_path / "img" / "a.png")
    assert ingest(store, csv).updated == ["1"]


def test_file_level_errors_write_nothing(tmp_path):
    store = Store(tmp_path / "store")
    ingest(store, _write(tmp_path / "good.csv", "id,title\n1,Mug\n"))
    with pytest.raises(MMSearchError, match="no 'id' column"):
        ingest(store, _write(tmp_path / "bad.csv", "sku,title\n2,Lamp\n"), prune=True)
    assert list(_products(store)) == ["1"]
