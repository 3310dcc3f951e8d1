"""`mmsearch serve`: the JSON API, the search page, media, uploads, errors, generation
switching and concurrency, through starlette's TestClient (the app in this process) and,
for what only a server shows, a real uvicorn server over HTTP."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from mmsearch import Store, serve
from mmsearch.views import media_url

from .conftest import FAKE_MODELS, SAMPLE, build_store, cli_imports, run_cli
from .conftest import serve as serve_process

PHOTO = SAMPLE / "images" / "p007.png"
CLIP = SAMPLE / "audio" / "p025.wav"


@contextmanager
def client(store: Path, **options: Any) -> Iterator[TestClient]:
    """A TestClient of a fresh app (lifespan run: the app's thread is stopped after)."""
    with TestClient(serve.create_app(store, **options)) as c:
        yield c


def error_of(response: httpx.Response, status: int) -> str:
    """The one-line JSON error of a response that must have ``status``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


# -- the API -------------------------------------------------------------------------
def test_health_names_the_store_generation_and_counts(fake_store):
    live = (fake_store / "indexes" / "CURRENT").read_text().strip()
    manifest = json.loads((fake_store / "indexes" / live / "manifest.json").read_text())
    with client(fake_store) as c:
        health = c.get("/api/health").json()
    assert health["status"] == "ok" and health["store"] == str(fake_store.resolve())
    assert health["generation"] == live and health["products"] == 30
    assert health["parts"] == {name: entry["count"] for name, entry in manifest["parts"].items()}
    assert health["parts"]["text"] == 30 and health["parts"]["image"] == 34


QUERIES = [
    {"q": "red coffee mug", "k": 5},
    {"q": "mug", "category": "Mugs", "k": 3},
    {"q": "speaker", "where": ["color=black"], "min_price": 20},
    {"q": "mugs under 15", "explain": True},
    {"like": "p007", "k": 4},
    {"q": "doorbell", "modality": "lexical,text", "fusion": "rrf", "weight": ["text=2"], "k": 6},
]


def cli_args(params: dict[str, Any]) -> list[str]:
    """`mmsearch query` arguments for the API parameters ``params``."""
    args = [params["q"]] if "q" in params else []
    for name, value in params.items():
        option = {"k": "-k", "explain": "--explain"}.get(name, f"--{name.replace('_', '-')}")
        if name == "q":
            continue
        if value is True:
            args.append(option)
        else:
            for item in value if isinstance(value, list) else [value]:
                args += [option, str(item)]
    return args


@pytest.mark.parametrize("params", QUERIES, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_search_answers_what_query_json_answers_with_media_urls(fake_store, params):
    expected = json.loads(run_cli("query", *cli_args(params), "--json", store=fake_store).stdout)
    with client(fake_store) as c:
        answer = c.get("/api/search", params=params).json()
    if params.get("explain"):
        assert answer["understood"] == expected["understood"]
        expected = expected["results"]
        assert all("contributions" in r for r in answer["results"])
    got = answer["results"]
    assert answer["generation"] == (fake_store / "indexes" / "CURRENT").read_text().strip()
    assert got and len(got) == len(expected)
    for mine, theirs in zip(got, expected):
        for key, kind in (("images", "image"), ("audio", "audio")):
            urls, paths = mine.pop(key), theirs.pop(key)
            assert urls == [media_url(mine["id"], kind, n) for n in range(len(paths))]
            assert not any(str(SAMPLE) in url for url in urls)
        assert mine == theirs


def test_filters_and_like_select_what_they_name(fake_store):
    with client(fake_store) as c:
        mugs = c.get("/api/search", params={"q": "mug", "category": "mugs", "max_price": 15, "k": 30}).json()["results"]
        like = c.get("/api/search", params={"like": "p001", "k": 5}).json()["results"]
        none = c.get("/api/search", params={"q": "mug", "category": "Mugs", "min_price": 1000}).json()
    assert mugs and all(r["category"] == "Mugs" and r["price"] <= 15 for r in mugs)
    assert len(like) == 5 and "p001" not in [r["id"] for r in like]
    assert none["results"] == [] and none["note"].startswith("no product matches the filters together")


def test_a_photo_upload_ranks_its_product_first_and_leaves_no_file(fake_store, tmp_path, monkeypatch):
    uploads = tmp_path / "tmp"
    uploads.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(uploads))
    with client(fake_store) as c:
        with open(PHOTO, "rb") as fh:
            found = c.post("/api/search", files={"image": ("shirt.png", fh, "image/png")}, data={"k": "3"}).json()
        with open(CLIP, "rb") as fh:
            heard = c.post("/api/search", files={"audio": ("clip", fh, "audio/wav")}, data={"where": ["color=walnut"]}).json()
        broken = c.post("/api/search", files={"image": ("broken.png", b"not a picture", "image/png")})
    assert found["results"][0]["id"] == "p007" and len(found["results"]) == 3
    assert heard["results"][0]["id"] == "p025"
    message = error_of(broken, 400)
    assert message.startswith("uploaded image 'broken.png':") and str(uploads) not in message
    assert list(uploads.iterdir()) == []


def test_an_upload_over_the_limit_is_refused_with_413(fake_store):
    with client(fake_store, max_upload_bytes=2000) as c:
        big = PHOTO.read_bytes()  # over the file limit, under the body's allowance for the other fields
        over = c.post("/api/search", files={"image": ("p007.png", big + b"\0" * 70_000, "image/png")})
        streamed = c.post(  # no Content-Length: refused while it arrives
            "/api/search", content=iter([b"--b\r\n"] + [b"x" * 8192] * 20), headers={"content-type": "multipart/form-data; boundary=b"}
        )
        file_only = c.post("/api/search", files={"image": ("p007.png", big, "image/png")})  # under the body allowance
        page = c.post("/", files={"file": ("p007.png", big + b"\0" * 70_000, "image/png")})
    for response in (over, streamed, file_only):
        message = error_of(response, 413)
        assert "0.00190735 MB" in message and "--max-upload-mb" in message
    assert page.status_code == 413 and "--max-upload-mb" in page.text and 'id="search"' in page.text


def test_products_are_their_catalog_rows(fake_store):
    with client(fake_store) as c:
        row = c.get("/api/products/p005").json()
        missing = c.get("/api/products/nope")
    assert row == {
        "id": "p005", "title": "Green striped stoneware mug", "description": row["description"], "category": "Mugs",
        "brand": "Hearth & Loom", "price": 16.0, "attributes": {"color": "green", "material": "stoneware"},
        "images": ["/media/p005/image/0", "/media/p005/image/1"], "audio": [],
    }  # fmt: skip
    assert "stoneware" in row["description"]
    assert error_of(missing, 404) == "no product 'nope' in the store"


def test_media_serves_only_registered_files(fake_store):
    with client(fake_store) as c:
        front, back = c.get("/media/p005/image/0"), c.get("/media/p005/image/1")
        clip = c.get("/media/p025/audio/0")
        refused = [
            c.get(url)
            for url in (
                "/media/p005/image/2",  # no such position
                "/media/p001/audio/0",  # no audio
                "/media/p001/video/0",  # no such kind
                "/media/nope/image/0",  # no such product
                "/media/..%2F..%2Fetc%2Fpasswd/image/0",  # a path is an id like any other
                "/media/%2Fetc%2Fpasswd/image/0",
                f"/media/{SAMPLE / 'images' / 'p001.png'}/image/0",
                "/media/p001/image/-1",
                "/media/p001/image/99999999999999999999999",
            )
        ]
    assert front.content == (SAMPLE / "images" / "p005.png").read_bytes() and front.headers["content-type"] == "image/png"
    assert back.content == (SAMPLE / "images" / "p005_back.png").read_bytes()
    assert clip.content == CLIP.read_bytes() and clip.headers["content-type"].startswith("audio/")
    for response in refused:
        error_of(response, 404)


def test_media_gone_from_disk_is_404(fake_store, tmp_path):
    gone = tmp_path / "gone.png"
    gone.write_bytes(PHOTO.read_bytes())
    with sqlite3.connect(fake_store / "catalog.db") as db:
        db.execute("UPDATE media SET path=? WHERE product_id='p001' AND kind='image'", (str(gone),))
    with client(fake_store) as c:
        assert c.get("/media/p001/image/0").content == PHOTO.read_bytes()
        gone.unlink()
        assert "no longer on disk" in error_of(c.get("/media/p001/image/0"), 404)


@pytest.mark.parametrize(
    "query, status, words",
    [
        ("k=abc&q=mug", 422, "k: Input should be a valid integer"),
        ("k=0&q=mug", 422, "k: Input should be greater than or equal to 1"),
        (f"k={serve.MAX_K + 1}&q=mug", 422, "k: Input should be less than or equal to"),
        ("min_price=cheap&q=mug", 422, "min_price: Input should be a valid number"),
        ("min_price=20&max_price=10&q=mug", 400, "is above --max-price"),
        ("min_price=nan&q=mug", 400, "a price bound is a finite number"),
        ("fusion=magic&q=mug", 422, "fusion: Input should be"),
        ("text=mug", 422, "unknown parameter 'text'"),
        ("q=mug&where=colour", 400, "expected NAME=VALUE"),
        ("q=mug&where=colour=red", 400, "unknown column 'colour'"),
        ("q=mug&weight=text=-1", 400, "a weight is a number"),
        ("q=mug&modality=smell", 400, "unknown modality 'smell'"),
        ("like=nope", 400, "no such product"),
        ("", 400, "empty query"),
    ],
)
def test_bad_parameters_are_one_line_json_errors(fake_store, query, status, words):
    with client(fake_store) as c:
        assert words in error_of(c.get(f"/api/search?{query}"), status)


def test_unknown_routes_and_unexpected_failures_are_one_line_json(fake_store, monkeypatch):
    from mmsearch.search import Searcher

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug with a /secret/path")

    with client(fake_store) as c:
        assert "no such page" in error_of(c.get("/api/nothing"), 404)
        assert error_of(c.put("/api/search"), 405)
    monkeypatch.setattr(Searcher, "search", broken)
    with TestClient(serve.create_app(fake_store), raise_server_exceptions=False) as c:
        message = error_of(c.get("/api/search?q=mug"), 500)
        page = c.get("/?q=mug")
    assert message == "internal error (RuntimeError): see the server's log"
    assert page.status_code == 500 and "see the server&#39;s log" in page.text and "secret" not in page.text


def test_docs_are_served_without_a_cdn(fake_store):
    with client(fake_store) as c:
        docs = c.get("/docs").text
        scripts = re.findall(r'(?:src|href)="([^"]+)"', docs)
        assert scripts and all(url.startswith("/") for url in scripts)
        assert all(c.get(url).status_code == 200 for url in scripts)
        paths = c.get("/openapi.json").json()["paths"]
    assert {"/api/search", "/api/health", "/api/products/{product_id}", "/media/{product_id}/{kind}/{n}"} <= set(paths)
    assert "multipart/form-data" in paths["/api/search"]["post"]["requestBody"]["content"]


# -- the page ------------------------------------------------------------------------
class Elements(HTMLParser):
    """Every start tag of a page as (tag, attributes), and the text of #error."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.error = ""
        self._in_error = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_error = dict(attrs).get("id") == "error"

    def handle_data(self, data: str) -> None:
        if self._in_error:
            self.error += data

    def find(self, tag: str, **attrs: str | bool) -> list[dict[str, str | None]]:
        """The ``tag`` elements with ``attrs`` (class_ for class; True: the attribute is there)."""
        return [
            a
            for t, a in self.tags
            if t == tag and all((k.rstrip("_") in a) if v is True else a.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]


def test_the_page_renders_cards_and_filter_controls(fake_store):
    with client(fake_store) as c:
        response = c.get("/?q=mug&category=Mugs&where=color%3Dred&k=3")
        api = c.get("/api/search", params={"q": "mug", "category": "Mugs", "where": "color=red", "k": 3}).json()
    assert response.status_code == 200
    page = Elements(response.text)
    assert page.find("form", id="search", method="post", action="/", enctype="multipart/form-data")
    assert page.find("input", name="q", value="mug") and page.find("input", id="upload", name="file", type="file")
    assert page.find("input", name="k", value="3") and page.find("input", name="min_price") and page.find("input", name="max_price")
    assert page.find("option", value="Mugs", selected=True) and page.find("select", name="brand", id="f-brand")
    colours = page.find("select", name="where")
    assert {c["data-column"] for c in colours} == {"color", "material"}
    assert page.find("option", value="color=red", selected=True)
    cards = [a["data-id"] for a in page.find("article") if "card" in (a.get("class") or "")]
    assert cards == [r["id"] for r in api["results"]]
    assert page.find("img", src=media_url(cards[0], "image"))
    assert page.find("a", class_="like", href=f"/?like={cards[0]}")


def test_the_page_searches_a_posted_photo_and_shows_errors_in_the_page(fake_store):
    with client(fake_store) as c:
        with open(PHOTO, "rb") as fh:
            posted = c.post("/", files={"file": ("shirt.png", fh, "image/png")}, data={"q": "", "k": "3", "category": ""})
        empty = c.post("/", files={"file": ("", b"", "application/octet-stream")}, data={"q": "red mug"})
        blank = c.get("/")
        bad = c.get("/?q=mug&k=lots")
        unknown = c.get("/?like=nope")
        text = c.post("/", files={"file": ("notes.txt", b"hello", "text/plain")})
    found = Elements(posted.text)
    assert posted.status_code == 200 and found.find("article")[0]["data-id"] == "p007"
    assert found.find("img", id="query-image") and "photo shirt.png" in posted.text
    assert Elements(empty.text).find("article")[0]["data-id"] == "p001"  # no file chosen: a text search
    assert blank.status_code == 200 and not Elements(blank.text).find("article") and not Elements(blank.text).error
    assert bad.status_code == 422 and Elements(bad.text).error.startswith("k: Input should be a valid integer")
    assert unknown.status_code == 400 and "no such product" in Elements(unknown.text).error
    assert text.status_code == 400 and "neither a picture nor a sound" in Elements(text.text).error
    for response in (bad, unknown, text):
        assert Elements(response.text).find("form", id="search") and "\n" not in Elements(response.text).error.strip()


# -- a live store --------------------------------------------------------------------
def add_product_and_reindex(store_path: Path, tmp_path: Path) -> None:
    """The sample catalog plus one new product, ingested, embedded and indexed: a new generation."""
    rows = (SAMPLE / "products.csv").read_text(encoding="utf-8")
    catalog = tmp_path / "products.csv"
    catalog.write_text(rows.rstrip("\n") + "\np999,Purple velvet armchair,Deep purple velvet armchair,Chairs,Loungeco,299,,,purple,velvet\n")
    build_store(store_path, FAKE_MODELS, catalog, SAMPLE)


def test_a_new_generation_is_served_without_a_restart(fake_store, tmp_path):
    app = serve.create_app(fake_store)
    live = app.state.live
    with TestClient(app) as c:
        before = c.get("/api/search", params={"q": "purple velvet armchair"}).json()
        encoder = live.call(lambda: live.searcher().encoder("text"))
        add_product_and_reindex(fake_store, tmp_path)
        after = c.get("/api/search", params={"q": "purple velvet armchair"}).json()
        assert after["generation"] != before["generation"]
        assert after["generation"] == (fake_store / "indexes" / "CURRENT").read_text().strip()
        assert "p999" not in [r["id"] for r in before["results"]] and after["results"][0]["id"] == "p999"
        assert live.call(lambda: live.searcher().encoder("text")) is encoder  # the model was not loaded again
        assert c.get("/api/health").json()["products"] == 31
        assert c.get("/api/products/p999").json()["title"] == "Purple velvet armchair"


def test_fusion_settings_saved_by_tune_are_used_without_a_restart(fake_store):
    from mmsearch.fusion import FusionSettings
    from mmsearch.tuning import save_settings

    with client(fake_store) as c:
        before = c.get("/api/search", params={"q": "red mug"}).json()["results"]
        store = Store(fake_store)
        with store.writer("test"):
            save_settings(store, FusionSettings("rrf", 10.0, {"text": 3.0}, "saved"))
        store.close()
        after = c.get("/api/search", params={"q": "red mug"}).json()["results"]
    expected = json.loads(run_cli("query", "red mug", "--json", store=fake_store).stdout)
    assert [r["score"] for r in after] == [r["score"] for r in expected] != [r["score"] for r in before]


@contextmanager
def running(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free port in a thread of this process; its URL."""
    import uvicorn

    sock = serve.listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield serve.url(sock)
    finally:
        server.should_exit = True
        thread.join(20)


def test_concurrent_requests_get_the_answers_they_get_alone(fake_store):
    requests = [("GET", "/api/search", {"q": q, "k": 5}) for q in ("red mug", "speaker", "doorbell", "t-shirt")]
    requests += [("GET", "/api/search", {"like": "p002"}), ("GET", "/api/products/p010", None), ("GET", "/media/p005/image/1", None)]
    requests += [("POST", "/api/search", None)]

    def send(http: httpx.Client, method: str, path: str, params: Any) -> bytes:
        if method == "POST":
            with open(PHOTO, "rb") as fh:
                response = http.post(path, files={"image": ("p.png", fh, "image/png")})
        else:
            response = http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.content

    with running(serve.create_app(fake_store)) as url:
        with httpx.Client(base_url=url, timeout=30) as http:
            alone = [send(http, *r) for r in requests]
        answers: dict[tuple[int, int], bytes] = {}
        failures: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                with httpx.Client(base_url=url, timeout=30) as http:
                    for i in range(len(requests)):
                        j = (i + n) % len(requests)  # each thread in another order
                        answers[n, j] = send(http, *requests[j])
            except BaseException as exc:  # reported below, not lost in the thread
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not failures, failures
    assert len(answers) == 6 * len(requests)
    assert all(answers[n, j] == alone[j] for n, j in answers)


# -- the command ---------------------------------------------------------------------
def test_help_and_query_import_no_web_stack(tmp_path, fake_store):
    web = {"fastapi", "starlette", "uvicorn", "jinja2", "fastapi_offline", "multipart", "python_multipart"}
    assert cli_imports(tmp_path, "--help") & web == set()
    assert cli_imports(tmp_path, "query", "red mug", "--json", store=fake_store) & web == set()


def test_serve_fails_in_one_line_without_an_index_or_a_port(tmp_path, fake_store):
    store = tmp_path / "unindexed"
    run_cli("ingest", str(SAMPLE / "products.csv"), "--quiet", store=store)
    unindexed = run_cli("serve", "--port", "0", store=store, check=1)
    assert "has no index" in unindexed.stderr and len(unindexed.stderr.strip().splitlines()) == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = run_cli("serve", "--port", str(taken.getsockname()[1]), store=fake_store, check=1)
    assert "cannot listen on 127.0.0.1:" in busy.stderr and len(busy.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_serve_command_answers_over_http(sample_store, tmp_path):
    with serve_process(sample_store, tmp_path / "logs") as url, httpx.Client(base_url=url, timeout=60) as http:
        health = http.get("/api/health").json()
        found = http.get("/api/search", params={"q": "red coffee mug", "k": 3}).json()
        with open(SAMPLE / "queries" / "q_p014.png", "rb") as fh:
            photo = http.post("/api/search", files={"image": ("q.png", fh, "image/png")}, data={"k": "3"}).json()
        page = http.get("/", params={"q": "red coffee mug"})
        image = http.get(found["results"][0]["images"][0])
    assert health["products"] == 30 and health["generation"] == found["generation"]
    assert found["results"][0]["id"] == "p001" and photo["results"][0]["id"] == "p014"
    assert 'data-id="p001"' in page.text and image.content == (SAMPLE / "images" / "p001.png").read_bytes()
