"""Photo -> product: image queries are embedded at the catalog's own image sizes (recorded
at embed time, never enlarged), and a perceptual-hash ``duplicate`` signal ranks a
near-duplicate of the query picture first.

Real data slices come from ../shared/data/myntra (skipped when absent): 512-px product
photos against 60x80 catalog thumbnails, the benchmark's photo protocol in small.
"""

from __future__ import annotations

import csv
import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from benchmarks.photo import DISTORTIONS  # the benchmark's own alterations
from mmsearch import Query, Searcher, Store, build_index, embed, ingest
from mmsearch.duplicates import catalog_sized, common_sizes
from mmsearch.search import DUPLICATE

from .conftest import FAKE_MODELS, SHARED, run_cli

MYNTRA = SHARED / "myntra"
needs_myntra = pytest.mark.skipif(not (MYNTRA / "products.csv").exists(), reason="no ../shared/data/myntra")


def myntra_rows(n: int, with_photo: bool = True) -> list[dict[str, str]]:
    """The first ``n`` dev products (with a photo); only train and dev are ever read."""
    with open(MYNTRA / "products.csv", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "dev" and (r["photo"] or not with_photo)]
    return rows[:n]


def make_store(root: Path, rows: list[dict[str, str]], media: Path, models: dict[str, str | None] | None = None) -> Path:
    """A store of ``rows`` (id, title, image relative to ``media``), embedded and indexed."""
    catalog = root / "catalog.csv"
    with open(catalog, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["id", "title", "image"])
        writer.writeheader()
        writer.writerows({"id": r["id"], "title": r["title"], "image": r["image"]} for r in rows)
    store = Store(root / "store")
    with store.writer("test"):
        assert not ingest(store, catalog, media_dir=media).rejects
        embed(store, models)
        build_index(store)
    store.close()
    return root / "store"


def rank_of(store: Path, query: Query, pid: str, **kwargs) -> int | None:
    results = Searcher(Store(store)).search(query, k=10, **kwargs)
    return next((r.rank for r in results if r.id == pid), None)


# -- sizes: pure functions ----------------------------------------------------------
def test_query_is_scaled_to_each_common_catalog_size_and_never_enlarged():
    photo = Image.new("RGB", (480, 640), "red")
    sized = catalog_sized(photo, [[60, 80, 900], [120, 160, 100]])
    assert [img.size for img in sized] == [(60, 80), (120, 160)]
    small = Image.new("RGB", (30, 40), "red")
    assert [img.size for img in catalog_sized(small, [[60, 80, 900], [120, 160, 100]])] == [(30, 40)]
    # another aspect keeps its own, at the catalog image's area
    assert catalog_sized(Image.new("RGB", (800, 400), "red"), [[60, 80, 1]])[0].size == (98, 49)
    assert catalog_sized(photo, []) == [photo]  # an index without sizes: the query as given


def test_common_sizes_keep_the_few_sizes_a_mixed_catalog_is_made_of():
    sizes = Counter({(60, 80): 700, (120, 160): 250, (53, 80): 30, (61, 80): 20})
    assert common_sizes(sizes) == [[60, 80, 700], [120, 160, 250]]
    assert common_sizes(Counter({(1, 1): 1})) == [[1, 1, 1]]


# -- the store records sizes and hashes (fake encoder: no model loads) ----------------
@needs_myntra
def test_embed_records_each_images_size_and_hashes_and_index_keeps_the_common_sizes(tmp_path):
    rows = myntra_rows(12, with_photo=False)
    media = tmp_path / "media"
    media.mkdir()
    for i, r in enumerate(rows):  # a mixed catalog: a third of the images at twice the size
        img = Image.open(MYNTRA / r["image"]).convert("RGB")
        if i % 3 == 0:
            img = img.resize((img.width * 2, img.height * 2), Image.BICUBIC)
        img.save(media / f"{r['id']}.png")
        r["image"] = f"{r['id']}.png"
    store_path = make_store(tmp_path, rows, media, FAKE_MODELS)
    store = Store(store_path)
    facts = {(w, h) for w, h in store.db.execute("SELECT width, height FROM image_info")}
    assert facts == {(60, 80), (120, 160)}
    searcher = Searcher(store)
    assert searcher.catalog_sizes() == [[60, 80, 8], [120, 160, 4]]
    # a store embedded before sizes were recorded gets them from the next plain `embed`
    store.close()
    store = Store(store_path)
    with store.writer("test"):
        with store.transaction() as tx:
            tx.execute("DELETE FROM image_info")
        embed(store, FAKE_MODELS)
        assert store.db.execute("SELECT count(*) FROM image_info").fetchone()[0] == 12


@needs_myntra
@pytest.mark.parametrize("distortion", DISTORTIONS)
def test_an_altered_copy_of_a_catalog_image_ranks_its_product_first(tmp_path, distortion):
    """The fake image encoder maps any changed pixel to an unrelated vector, so only the
    duplicate signal can find the product: it must put it first."""
    rows = myntra_rows(60, with_photo=False)
    store = make_store(tmp_path, rows, MYNTRA, FAKE_MODELS)
    for r in rows[::12]:
        query = tmp_path / f"q-{r['id']}.png"
        DISTORTIONS[distortion](Image.open(MYNTRA / r["image"]).convert("RGB")).save(query)
        assert rank_of(store, Query(image=query), r["id"]) == 1, (distortion, r["id"])
        results = Searcher(Store(store)).search(Query(image=query), k=3)
        assert results[0].scores[DUPLICATE] is not None


@needs_myntra
def test_duplicate_signal_is_silent_for_a_picture_the_catalog_does_not_hold(tmp_path):
    rows = myntra_rows(60, with_photo=False)
    store = make_store(tmp_path, rows[:40], MYNTRA, FAKE_MODELS)
    searcher = Searcher(Store(store))
    for r in rows[40:]:
        assert searcher.near_duplicates(Query(image=MYNTRA / r["image"]), [DUPLICATE], None) == {}
    # and it can be switched off: weight 0 ranks by the other signals only
    query = tmp_path / "q.png"
    ImageOps.mirror(Image.open(MYNTRA / rows[0]["image"]).convert("RGB")).save(query)
    assert rank_of(store, Query(image=query), rows[0]["id"], modalities=["image"]) != 1
    assert rank_of(store, Query(image=query), rows[0]["id"], weights={DUPLICATE: 0.0}) != 1


def test_hamming_scan_stays_fast_on_a_million_images(tmp_path):
    """The near-duplicate scan is one vectorised pass: a million images well under a second."""
    import time

    from mmsearch.duplicates import WORDS, DuplicatePart, write_part

    rng = np.random.default_rng(0)
    n = 1_000_000
    write_part(tmp_path, [("0", 60, 80, rng.bytes(16 * WORDS))])
    part = DuplicatePart(tmp_path, {})  # then given a million random images
    part.words = rng.integers(0, 2**63, size=(2, WORDS, n), dtype=np.uint64)
    part.ids = [str(i) for i in range(n)]
    q = part.words[0, :, 123_456][None].copy()
    started = time.perf_counter()
    scores = part.scores(np.concatenate([q, q]), None)
    assert time.perf_counter() - started < 1.0
    assert scores == {"123456": 1.0}


# -- real models on real data slices --------------------------------------------------
@pytest.mark.slow
@needs_myntra
def test_a_512px_photo_finds_its_60x80_thumbnail(tmp_path):
    """The benchmark's photo protocol in small: each product's photo, image signal only."""
    rows = myntra_rows(40)
    store = make_store(tmp_path, rows, MYNTRA)
    searcher = Searcher(Store(store))
    first = [searcher.search(Query(image=MYNTRA / r["photo"]), k=1, modalities=["image"])[0].id == r["id"] for r in rows]
    assert sum(first) >= 0.95 * len(rows), f"{sum(first)}/{len(rows)} photos found their product first"


@pytest.mark.slow
@needs_myntra
def test_mixed_size_catalog_and_a_query_smaller_than_the_catalogs_images(tmp_path):
    """Half the thumbnails enlarged to 120x160: photos still find their product; a query
    smaller than every catalog image is embedded as it is (not enlarged)."""
    rows = myntra_rows(30)
    media = tmp_path / "media"
    media.mkdir()
    for i, r in enumerate(rows):
        img = Image.open(MYNTRA / r["image"]).convert("RGB")
        (img.resize((120, 160), Image.BICUBIC) if i % 2 else img).save(media / f"{r['id']}.png")
        r["image"] = f"{r['id']}.png"
    store = make_store(tmp_path, rows, media)
    searcher = Searcher(Store(store))
    assert sorted(size[:2] for size in searcher.catalog_sizes()) == [[60, 80], [120, 160]]
    first = [searcher.search(Query(image=MYNTRA / r["photo"]), k=1, modalities=["image"])[0].id == r["id"] for r in rows]
    assert sum(first) >= 0.9 * len(rows), f"{sum(first)}/{len(rows)} photos found their product first"
    small = tmp_path / "small.png"
    Image.open(MYNTRA / rows[0]["photo"]).convert("RGB").resize((30, 40), Image.BICUBIC).save(small)
    (_, vectors), = searcher.query_vectors(Query(image=small), ["image"]).values()
    direct = searcher.encoder("image").encode([Image.open(small).convert("RGB")])
    assert vectors.shape[0] == 1
    np.testing.assert_allclose(vectors[0], direct[0] / np.linalg.norm(direct[0]), atol=1e-5)


def test_a_store_embedded_before_image_facts_were_recorded_gets_them_from_index(fake_store):
    """Such a store has no image_info table: `status` (a reader) says the index is stale
    instead of failing, and `index` records the facts and rebuilds the part."""
    db = sqlite3.connect(fake_store / "catalog.db")
    db.execute("DROP TABLE image_info")
    db.commit()
    db.close()
    status = run_cli("status", "--verify", store=fake_store, check=None)
    assert status.returncode in (0, 1) and "Traceback" not in status.stderr
    run_cli("index", store=fake_store)
    store = Store(fake_store)
    images = store.db.execute("SELECT count(DISTINCT sha256) FROM media WHERE kind='image'").fetchone()[0]
    assert store.db.execute("SELECT count(*) FROM image_info").fetchone()[0] == images
    assert Searcher(store).catalog_sizes()
    run_cli("status", "--verify", store=fake_store)
