"""The search page and the evaluation report in a real browser: Debian's Chromium driven
by Playwright, against a real `mmsearch serve` process on the sample store (real
models) and a report opened from disk.

Without Chromium these tests skip, unless $MMSEARCH_REQUIRE_BROWSER is set (CI sets it:
there a missing browser is a failure, not a skip). With $MMSEARCH_SCREENSHOTS=DIR they
also save the screenshots the README shows.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from .conftest import SAMPLE, run_cli, serve

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: what Chromium needs to start as root in a container and not reach for Google's hosts
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator["object"]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("MMSEARCH_REQUIRE_BROWSER"):
            pytest.fail(f"Chromium not found at {CHROMIUM}: scripts/install.sh installs Debian's chromium")
        pytest.skip("Chromium not installed (scripts/install.sh installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def server(sample_store_template, tmp_path_factory) -> Iterator[str]:
    """`mmsearch serve` on a copy of the sample store; yields its base URL."""
    store = tmp_path_factory.mktemp("served") / "store"
    shutil.copytree(sample_store_template, store)
    with serve(store, tmp_path_factory.mktemp("logs")) as url:
        yield url


def screenshot(page, name: str, tmp_path: Path, height: int | None = None) -> None:
    """The whole page, or its top ``height`` pixels. Always taken (a blank page fails);
    kept for the README with $MMSEARCH_SCREENSHOTS."""
    clip = {"x": 0, "y": 0, "width": page.viewport_size["width"], "height": height} if height else None
    shot = page.screenshot(path=tmp_path / name, full_page=True, clip=clip)
    assert len(shot) > 10_000
    if folder := os.environ.get("MMSEARCH_SCREENSHOTS"):  # 256 colours: a third of the bytes, for the repo
        Path(folder).mkdir(parents=True, exist_ok=True)
        Image.open(tmp_path / name).convert("RGB").quantize(256).save(Path(folder) / name, optimize=True)


def card_ids(page) -> list[str]:
    return page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.id)")


def images_loaded(page, selector: str = ".card img") -> list[int]:
    """naturalWidth of every image once the browser has loaded and decoded it (0: broken).
    Lazy images below the fold are made eager first, so every one is fetched."""
    return page.locator(selector).evaluate_all(
        "imgs => Promise.all(imgs.map(i => { i.loading = 'eager'; return i.decode().then(() => i.naturalWidth, () => 0); }))"
    )


def test_text_query_shows_cards_whose_images_load(page, server, tmp_path):
    page.goto(server + "/")
    page.fill("input[name=q]", "red coffee mug")
    page.locator("#search button[type=submit]").click()
    page.wait_for_selector(".card")
    ids = card_ids(page)
    assert ids[0] == "p001", ids  # the red ceramic coffee mug
    widths = images_loaded(page)
    assert widths and all(w > 0 for w in widths), widths
    assert "Red ceramic coffee mug" in page.locator(".card").first.inner_text()
    screenshot(page, "search-page.png", tmp_path)


def test_uploaded_photo_finds_its_product_first(page, server):
    page.goto(server + "/")
    page.set_input_files("#upload", str(SAMPLE / "queries" / "q_p007.png"))
    page.locator("#search button[type=submit]").click()
    page.wait_for_selector(".card")
    assert card_ids(page)[0] == "p007"


def test_more_like_this_searches_by_that_product(page, server):
    page.goto(server + "/?q=mug")
    page.wait_for_selector(".card")
    first = card_ids(page)[0]
    page.locator(f'.card[data-id="{first}"] a.like').click()
    page.wait_for_selector(".card")
    assert f"like={first}" in page.url
    ids = card_ids(page)
    assert ids and first not in ids  # products like it, not itself
    assert all(w > 0 for w in images_loaded(page))


def test_a_category_filter_keeps_only_that_category(page, server):
    page.goto(server + "/?q=blue")
    page.wait_for_selector(".card")
    categories = set(page.locator(".card .meta").all_inner_texts())
    assert len(categories) > 1  # the query alone spans categories
    page.select_option("select[name=category]", "Mugs")
    page.locator("#search button[type=submit]").click()
    page.wait_for_selector(".card")
    metas = page.locator(".card .meta").all_inner_texts()
    assert metas and all(m.endswith("· Mugs") for m in metas), metas


def test_eval_report_opens_from_disk_with_its_table_and_plot(page, sample_store_template, tmp_path):
    report = tmp_path / "moved" / "report"
    run_cli(
        "eval", "--queries", str(SAMPLE / "queries.csv"), "--qrels", str(SAMPLE / "qrels.csv"),
        "--report", str(tmp_path / "report"), "-q", store=sample_store_template,
    )
    shutil.move(tmp_path / "report", report)  # a report folder opens from wherever it is put
    scored = json.loads((report / "report.json").read_text(encoding="utf-8"))
    page.goto((report / "index.html").as_uri())
    rows = page.locator("table#per-query tr.query")
    assert rows.count() == len(scored["per_query"]) > 0
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.queryId)") == [q["id"] for q in scored["per_query"]]
    assert page.locator("figure#plot svg").is_visible()
    assert page.locator("table#metrics tr[data-metric]").count() == len(scored["metrics"])
    widths = images_loaded(page, "img")
    assert widths and all(w > 0 for w in widths)
    screenshot(page, "eval-report.png", tmp_path, height=1600)
