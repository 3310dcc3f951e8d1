"""The bad-input corpus (issue 5 point 6, issue 2 "bad-input tests for every rejection").

Every case builds its broken input in tmp_path (Pillow, numpy, soundfile: nothing
downloaded, nothing from ../shared), runs the CLI (in this process: conftest.run_cli)
against a store in tmp_path, and checks four things:

- the exit code (0 ok, 1 could not do the job, 3 partial: some rows/files rejected);
- a one-line reason naming the row (line) or the file, and what is wrong;
- the rest of the catalog is processed (the valid rows are in STORE/catalog.db);
- nothing already stored is lost: every store starts with a good catalog ingested,
  and those products (and their media rows) are still there, unchanged.

Cases share runs where they can: one CSV holds every bad-row kind, one media catalog
holds every bad and every must-be-accepted file, and the real models are loaded by a
single `embed` run.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from mmsearch import media

from .conftest import run_cli

GOOD_CSV = 'id,title,description,price,image\ng1,Good mug,"A mug, ""glazed""",5,good/mug.png\ng2,Good lamp,,7.5,\n'


# -- helpers -----------------------------------------------------------------------
def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The error a failed command printed: exactly one non-blank line on stderr."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def snapshot(store: Path) -> dict[str, tuple]:
    """Every stored product: all its columns and its media rows."""
    db = sqlite3.connect(store / "catalog.db")
    db.row_factory = sqlite3.Row
    try:
        media_rows: dict[str, list] = {}
        for r in db.execute("SELECT * FROM media ORDER BY product_id, kind, position"):
            media_rows.setdefault(r["product_id"], []).append(tuple(r))
        return {r["id"]: (dict(r), media_rows.get(r["id"], [])) for r in db.execute("SELECT * FROM products")}
    finally:
        db.close()


def stored(store: Path) -> dict[str, dict]:
    return {pid: row for pid, (row, _) in snapshot(store).items()}


def assert_kept(store: Path, before: dict[str, tuple]) -> None:
    """Nothing that was stored before is lost or changed (row, media, updated_at)."""
    after = snapshot(store)
    assert {pid: after.get(pid) for pid in before} == before


def write_catalog(path: Path, rows: list[list[str]]) -> Path:
    """A CSV written by the csv module, so quoting is right; lines end in \\n."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return path


@pytest.fixture(scope="module")
def good_template(tmp_path_factory) -> Path:
    """A store holding two good products (one with an image), ingested once per module."""
    root = tmp_path_factory.mktemp("good")
    (root / "good").mkdir()
    Image.new("RGB", (16, 16), "red").save(root / "good" / "mug.png")
    (root / "good.csv").write_text(GOOD_CSV, encoding="utf-8")
    report = json.loads(run_cli("ingest", str(root / "good.csv"), "--json", store=root / "store", check=0).stdout)
    assert report["added"] == 2
    return root / "store"


@pytest.fixture
def store(good_template, tmp_path) -> Path:
    """A private copy of the good store that the test may change."""
    shutil.copytree(good_template, tmp_path / "store")
    return tmp_path / "store"


# -- CSV rows ------------------------------------------------------------------------
def test_bad_rows_are_rejected_by_line_and_column_and_the_rest_is_stored(tmp_path, store):
    before = snapshot(store)
    quoted = 'He said "hi", twice'
    multiline = 'first line\nsecond, with a "quote"\nthird'
    rows = [
        ["id", "title", "description", "price"],  # line 1
        ["a1", "Mug", quoted, "3"],  # 2
        ["a2", "Lamp", multiline, "4"],  # 3-5: one record over three lines
        ["a1", "Mug again", "", "3"],  # 6: duplicate of line 2
        ["", "No id", "", "1"],  # 7
        ["b1", "NaN price", "", "nan"],  # 8
        ["b2", "Negative", "", "-1"],  # 9
        ["b3", "Words", "", "twelve"],  # 10
        ["b4", "Infinite", "", "inf"],  # 11
        ["b5", "No price", "", ""],  # 12: empty price is fine (NULL)
        ["b6", "Huge", "x" * 10_000_000, "1"],  # 13: a 10 MB field
        ["g1", "Good mug, now free?", "", "-5"],  # 14: a bad update of a stored product
        ["g2", "Good lamp", "", "7.5"],  # 15: unchanged
        ["", "", "", ""],  # 16: a row of bare commas (blank)
        ["c1", "Unquoted, comma", "", "1", "extra"],  # 17: one field too many
        ["c2", "Last", "", "2.50"],  # 18
    ]
    catalog = write_catalog(tmp_path / "catalog.csv", rows)
    rejects_csv = tmp_path / "rejects.csv"
    # --prune: products whose rows were rejected (g1) must survive it too.
    proc = run_cli("ingest", str(catalog), "--json", "--prune", "--rejects", str(rejects_csv), store=store, check=3)
    report = json.loads(proc.stdout)
    assert {k: report[k] for k in ("added", "updated", "unchanged", "removed", "rejected")} == {
        "added": 4,  # a1 a2 b5 c2
        "updated": 0,
        "unchanged": 1,  # g2
        "removed": 0,
        "rejected": 9,
    }
    got = {r["line"]: r for r in report["rejects"]}
    expected = {  # line: (column, product_id, words the reason must contain)
        6: ("id", "a1", ["duplicate id 'a1'", "first on line 2"]),
        7: ("id", "", ["missing id"]),
        8: ("price", "b1", ["'nan'", "not a finite number"]),
        9: ("price", "b2", ["-1", "negative"]),
        10: ("price", "b3", ["'twelve'", "not a number"]),
        11: ("price", "b4", ["'inf'", "not a finite number"]),
        13: ("description", "b6", ["10,000,000 characters", "limit 100,000"]),
        14: ("price", "g1", ["-5", "negative"]),
        17: ("", "c1", ["5 fields", "header has 4"]),
    }
    assert set(got) == set(expected)
    for line, (column, pid, words) in expected.items():
        r = got[line]
        assert (r["column"], r["product_id"]) == (column, pid), r
        assert all(w in r["reason"] for w in words), r
        assert "\n" not in r["reason"] and len(r["reason"]) < 300

    products = stored(store)
    assert set(products) == {"g1", "g2", "a1", "a2", "b5", "c2"}
    assert products["a1"]["description"] == quoted
    assert products["a2"]["description"] == multiline
    assert products["b5"]["price"] is None
    assert products["c2"]["price"] == 2.5
    assert_kept(store, before)  # g1's bad update changed nothing; --prune removed nothing

    with open(rejects_csv, newline="", encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    assert [(int(r["line"]), r["column"], r["product_id"], r["reason"]) for r in written] == [
        (r["line"], r["column"], r["product_id"], r["reason"]) for r in report["rejects"]
    ]

    # Again, for people (-q): one stderr line per reject; the stored rows stay as they are.
    after_first = snapshot(store)
    again = run_cli("ingest", str(catalog), "-q", store=store, check=3)
    lines = [line for line in again.stderr.splitlines() if line.strip()]
    assert [int(line.split()[2]) for line in lines] == sorted(expected)  # "rejected line N (column): reason"
    assert all(line.startswith("rejected line ") and got[int(line.split()[2])]["reason"] in line for line in lines)
    assert snapshot(store) == after_first


def test_utf8_bom_is_accepted_and_the_id_column_found(tmp_path, store):
    before = snapshot(store)
    catalog = tmp_path / "bom.csv"
    catalog.write_bytes("\ufeffid,title,price\nbom1,Thé vert,3\nbom2,Bad,x\n".encode("utf-8"))
    report = json.loads(run_cli("ingest", str(catalog), "--json", store=store, check=3).stdout)
    assert report["added"] == 1 and [(r["line"], r["column"]) for r in report["rejects"]] == [(3, "price")]
    assert stored(store)["bom1"]["title"] == "Thé vert"
    assert_kept(store, before)


@pytest.mark.parametrize(
    "encoding,title,brand",
    [("gbk", "红色马克杯", "景德镇"), ("latin-1", "Crème brûlée dish", "Façon")],
)
def test_non_utf8_catalog_fails_at_once_then_reads_with_encoding(tmp_path, store, encoding, title, brand):
    before = snapshot(store)
    catalog = tmp_path / f"{encoding}.csv"
    catalog.write_bytes(f"id,title,brand,price\nx1,{title},{brand},9\nx2,plain,,1\n".encode(encoding))
    failed = run_cli("ingest", str(catalog), "--prune", store=store, check=1)
    message = one_error_line(failed)
    assert str(catalog) in message and "not valid utf-8" in message and "--encoding" in message
    assert not failed.stdout.strip()
    assert_kept(store, before)

    run_cli("ingest", str(catalog), "--encoding", encoding, "-q", store=store, check=0)
    products = stored(store)
    assert (products["x1"]["title"], products["x1"]["brand"]) == (title, brand)
    assert products["x2"]["title"] == "plain"
    assert_kept(store, before)


def test_missing_id_column_names_the_column_and_the_fix(tmp_path, store):
    before = snapshot(store)
    catalog = tmp_path / "noid.csv"
    catalog.write_text("sku,title,price\nS1,Mug,5\n", encoding="utf-8")
    message = one_error_line(run_cli("ingest", str(catalog), "--prune", store=store, check=1))
    assert str(catalog) in message and "no 'id' column" in message and "sku" in message
    assert "--map id=COLUMN" in message
    assert_kept(store, before)
    # ... and the suggested fix works.
    run_cli("ingest", str(catalog), "--map", "id=sku", "-q", store=store, check=0)
    assert stored(store)["S1"]["title"] == "Mug"


@pytest.mark.parametrize(
    "content,words",
    [
        pytest.param(b"", ["is empty"], id="zero-bytes"),
        pytest.param(b"  \n\r\n\n", ["is empty"], id="blank-lines"),
        pytest.param(b'id,"title\nq1,Mug\nq2,Lost\n', ["line 1", "never closed"], id="unclosed-quote-in-header"),
    ],
)
def test_unreadable_file_fails_at_once_and_stores_nothing(tmp_path, store, content, words):
    before = snapshot(store)
    catalog = tmp_path / "bad.csv"
    catalog.write_bytes(content)
    message = one_error_line(run_cli("ingest", str(catalog), "--prune", store=store, check=1))
    assert str(catalog) in message and all(w in message for w in words), message
    assert_kept(store, before)
    assert set(stored(store)) == set(before)


def test_header_only_catalog_is_nothing_to_do_but_refuses_to_prune_everything(tmp_path, store):
    before = snapshot(store)
    catalog = tmp_path / "header.csv"
    catalog.write_text("id,title,price\n", encoding="utf-8")
    report = json.loads(run_cli("ingest", str(catalog), "--json", store=store, check=0).stdout)
    assert {k: report[k] for k in ("added", "updated", "unchanged", "removed", "rejected", "rejects")} == {"added": 0, "updated": 0, "unchanged": 0, "removed": 0, "rejected": 0, "rejects": []}
    # With --prune it would wipe the store: most likely a failed export, so refuse.
    message = one_error_line(run_cli("ingest", str(catalog), "--prune", "--json", store=store, check=1))
    assert str(catalog) in message and "no product rows" in message and "--prune" in message
    assert_kept(store, before)
    assert set(stored(store)) == set(before)


# -- media -------------------------------------------------------------------------
def _noise_image(seed: int = 0, size: int = 48) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def _wav(path: Path, samples: np.ndarray, rate: int = 16_000) -> None:
    sf.write(path, samples.astype(np.float32), rate, subtype="PCM_16")


LONG_RATE = 8_000


def build_media_corpus(folder: Path, outside: Path) -> dict[str, tuple[str, str, bool]]:
    """Write every bad and every must-be-accepted media file.

    Returns {product id: (column, cell value, accepted?)} in catalog order."""
    folder.mkdir()
    outside.mkdir()
    good = _noise_image()
    good.save(folder / "full.png")
    good.save(folder / "full.jpg", quality=90)
    png, jpg = (folder / "full.png").read_bytes(), (folder / "full.jpg").read_bytes()
    (folder / "trunc.png").write_bytes(png[: len(png) // 2])
    (folder / "trunc.jpg").write_bytes(jpg[: len(jpg) // 2])
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is a text file, not a JPEG\n")
    # Bombs: tiny files whose header declares more than MAX_IMAGE_PIXELS pixels. 9000^2 is
    # between 1x and 2x the limit (Pillow warns: made an error), 20000^2 above 2x (Pillow errors).
    assert 9000**2 > media.MAX_IMAGE_PIXELS and 20000**2 > 2 * media.MAX_IMAGE_PIXELS
    Image.new("1", (9000, 9000)).save(folder / "bomb81m.png")
    Image.new("1", (20000, 20000)).save(folder / "bomb400m.png")
    # Unusual but valid images that must be accepted and embedded.
    _noise_image(1).convert("CMYK").save(folder / "cmyk.jpg")
    grey16 = Image.fromarray((np.arange(48 * 48, dtype=np.uint16) * 28).reshape(48, 48))
    assert grey16.mode == "I;16"
    grey16.save(folder / "grey16.png")
    _noise_image(2).convert("P").save(folder / "palette.png")
    rgba = np.array(_noise_image(3).convert("RGBA"))
    rgba[:, :24, 3] = 0  # left half fully transparent
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    _noise_image(4).save(folder / "victim.png")  # corrupted after ingest (embed test)
    _noise_image(5).save(folder / "gone.png")  # deleted after ingest (embed test)
    (folder / "sub").mkdir()
    _noise_image(6).save(folder / "sub" / "inner.png")
    (folder / "inner-link.png").symlink_to(folder / "sub" / "inner.png")  # stays inside: fine
    _noise_image(7).save(outside / "secret.png")
    (folder / "escape-link.png").symlink_to(outside / "secret.png")
    # Audio.
    with wave.open(str(folder / "empty.wav"), "wb") as w:  # valid header, no samples
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
    _wav(folder / "silent.wav", np.zeros(16_000))
    (folder / "random.wav").write_bytes(np.random.default_rng(8).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    rng = np.random.default_rng(9)
    head = rng.normal(0, 0.02, int(LONG_RATE * media.MAX_AUDIO_SECONDS))  # low-level noise
    t = np.arange(LONG_RATE * 600 - head.size) / LONG_RATE
    rest = 0.5 * np.sin(2 * np.pi * 440 * t)  # a loud tone after the first 30 s
    _wav(folder / "long.wav", np.concatenate([head, rest]), LONG_RATE)  # 10 minutes
    _wav(folder / "long-head.wav", head, LONG_RATE)  # just its first 30 s
    _wav(folder / "chirp.wav", 0.3 * np.sin(2 * np.pi * np.linspace(200, 2000, 16_000) * np.linspace(0, 1, 16_000)))
    return {
        "trunc_png": ("image", "trunc.png", False),
        "trunc_jpg": ("image", "trunc.jpg", False),
        "zero": ("image", "zero.jpg", False),
        "text": ("image", "text.jpg", False),
        "bomb81m": ("image", "bomb81m.png", False),
        "bomb400m": ("image", "bomb400m.png", False),
        "one_bad_of_two": ("image", "full.png|trunc.jpg", False),
        "missing": ("image", "nope.png", False),
        "dotdot": ("image", "../outside/secret.png", False),
        "absolute": ("image", str(outside / "secret.png"), False),
        "symlink_out": ("image", "escape-link.png", False),
        "empty_wav": ("audio", "empty.wav", False),
        "silent_wav": ("audio", "silent.wav", False),
        "random_wav": ("audio", "random.wav", False),
        "image_as_audio": ("audio", "full.png", False),
        "two_images": ("image", "full.png|full.jpg", True),
        "cmyk": ("image", "cmyk.jpg", True),
        "grey16": ("image", "grey16.png", True),
        "palette": ("image", "palette.png", True),
        "rgba": ("image", "rgba.png", True),
        "victim": ("image", "victim.png", True),
        "gone": ("image", "gone.png", True),
        "symlink_in": ("image", "inner-link.png", True),
        "long": ("audio", "long.wav", True),
        "long_head": ("audio", "long-head.wav", True),
        "chirp": ("audio", "chirp.wav", True),
    }


def media_catalog_rows(corpus: dict[str, tuple[str, str, bool]]) -> list[list[str]]:
    rows = [["id", "title", "image", "audio"]]
    for pid, (column, cell, _) in corpus.items():
        rows.append([pid, f"{pid} product", cell if column == "image" else "", cell if column == "audio" else ""])
    return rows


@pytest.fixture(scope="module")
def media_run(good_template, tmp_path_factory):
    """The good store, then one catalog mixing every bad and every good media file."""
    root = tmp_path_factory.mktemp("media")
    store = root / "store"
    shutil.copytree(good_template, store)
    before = snapshot(store)
    corpus = build_media_corpus(root / "media", root / "outside")
    catalog = write_catalog(root / "catalog.csv", media_catalog_rows(corpus))
    proc = run_cli("ingest", str(catalog), "--media-dir", str(root / "media"), "--json", store=store, check=3)
    return {"root": root, "store": store, "before": before, "corpus": corpus, "catalog": catalog, "report": json.loads(proc.stdout)}


def test_broken_media_and_escaping_paths_are_rejected_by_row(media_run):
    corpus, report, store = media_run["corpus"], media_run["report"], media_run["store"]
    bad = [pid for pid, (_, _, ok) in corpus.items() if not ok]
    good = [pid for pid, (_, _, ok) in corpus.items() if ok]
    got = {r["product_id"]: r for r in report["rejects"]}
    assert sorted(got) == sorted(bad)
    assert report["added"] == len(good)
    for pid, r in got.items():
        column, cell, _ = corpus[pid]
        assert r["line"] == list(corpus).index(pid) + 2 and r["column"] == column, r
        named = "trunc.jpg" if pid == "one_bad_of_two" else cell
        assert repr(named) in r["reason"], r  # the reason names the file as written in the CSV
        assert "\n" not in r["reason"]
    reasons = {pid: r["reason"] for pid, r in got.items()}
    for pid in ("trunc_png", "trunc_jpg", "one_bad_of_two"):
        assert "cannot be decoded" in reasons[pid] and "truncated" in reasons[pid]
    assert "empty (0 bytes)" in reasons["zero"]
    assert "not an image" in reasons["text"]
    for pid in ("bomb81m", "bomb400m"):
        assert f"larger than {media.MAX_IMAGE_PIXELS:,} pixels" in reasons[pid] and "decompression bomb" in reasons[pid]
    assert "not found" in reasons["missing"]
    assert "'..' leaves the media folder" in reasons["dotdot"]
    assert "absolute path" in reasons["absolute"] and "relative to the media folder" in reasons["absolute"]
    assert "symlink leading outside the media folder" in reasons["symlink_out"]
    assert "no samples" in reasons["empty_wav"]
    assert "silent" in reasons["silent_wav"]
    for pid in ("random_wav", "image_as_audio"):
        assert "not a readable audio file" in reasons[pid] and not reasons[pid].endswith(": )")

    products = snapshot(store)
    assert set(good) <= set(products) and not set(bad) & set(products)
    assert_kept(store, media_run["before"])
    assert [m[2] for m in products["two_images"][1]] == [0, 1]  # both images, in order
    inner = products["symlink_in"][1][0]
    assert inner[3] == str((media_run["root"] / "media" / "sub" / "inner.png").resolve())


def test_images_are_decoded_to_rgb_whatever_their_mode(media_run):
    """The accepted oddities decode to 8-bit RGB the way a shop page shows them."""
    folder = media_run["root"] / "media"
    for name in ("cmyk.jpg", "grey16.png", "palette.png", "rgba.png"):
        img = media.load_image(folder / name)
        assert img.mode == "RGB" and img.size == (48, 48), name
    rgba = np.asarray(media.load_image(folder / "rgba.png"))
    assert (rgba[:, :24] == 255).all()  # transparent pixels composited on white
    grey = np.asarray(media.load_image(folder / "grey16.png"))
    assert grey.min() == 0 and grey.max() == 255  # 16-bit range scaled, not clipped to white
    y = media.load_audio(folder / "long.wav")
    assert y.shape == (int(media.MAX_AUDIO_SECONDS * media.AUDIO_SAMPLE_RATE),)


@pytest.mark.slow
def test_embed_accepts_odd_media_and_skips_files_broken_after_ingest(media_run):
    root, store, corpus = media_run["root"], media_run["store"], media_run["corpus"]
    folder = root / "media"
    (folder / "victim.png").write_bytes((folder / "victim.png").read_bytes()[:100])  # corrupted
    (folder / "gone.png").unlink()  # deleted
    accepted = [pid for pid, (_, _, ok) in corpus.items() if ok]

    first = run_cli("embed", "--json", store=store, check=3)
    report = json.loads(first.stdout)
    failures = {Path(f["path"]).name: f for f in report["failures"]}
    assert set(failures) == {"victim.png", "gone.png"}
    assert failures["victim.png"]["modality"] == "image" and "truncated" in failures["victim.png"]["reason"]
    assert "No such file" in failures["gone.png"]["reason"]
    mods = report["modalities"]
    images = {cell for pid in accepted for cell in corpus[pid][1].split("|") if corpus[pid][0] == "image"}
    assert mods["image"]["wanted"] == len(images) + 1  # + the good store's mug.png
    assert (mods["image"]["embedded"], mods["image"]["failed"]) == (len(images) + 1 - 2, 2)
    assert (mods["audio"]["embedded"], mods["audio"]["failed"]) == (3, 0)
    assert mods["text"]["embedded"] == mods["text"]["wanted"] == len(accepted) + 2

    # Every accepted file has a finite, non-zero vector, except the two broken since.
    db = sqlite3.connect(store / "catalog.db")
    vectors = {
        Path(path).name: np.frombuffer(blob, "<f4")
        for path, blob in db.execute(
            "SELECT m.path, v.vector FROM media m JOIN vectors v ON v.content_hash = m.sha256 AND v.modality = m.kind"
        )
    }
    expected = (images - {"victim.png", "gone.png"}) | {"mug.png", "long.wav", "long-head.wav", "chirp.wav"}
    assert set(vectors) == (expected - {"inner-link.png"}) | {"inner.png"}  # stored resolved
    for name, vector in vectors.items():
        assert np.isfinite(vector).all() and np.linalg.norm(vector) > 0, name
    # Only the first MAX_AUDIO_SECONDS are used: 10 minutes embed like their first 30 s.
    assert np.allclose(vectors["long.wav"], vectors["long-head.wav"], atol=1e-6)
    assert not np.allclose(vectors["long.wav"], vectors["chirp.wav"], atol=1e-3)
    db.close()

    # A re-run neither crashes nor retries the broken files (they wait for a change).
    again = json.loads(run_cli("embed", "--json", store=store, check=0).stdout)
    assert again["failures"] == []
    assert {m: (r["embedded"], r["failed"]) for m, r in again["modalities"].items()} == {
        "text": (0, 0),
        "image": (0, 2),
        "audio": (0, 0),
    }

    # The next ingest sees the changed files and rejects those rows by name; the stored
    # products (and their media rows) stay as they were.
    before = snapshot(store)
    proc = run_cli("ingest", str(media_run["catalog"]), "--media-dir", str(folder), "--json", store=store, check=3)
    got = {r["product_id"]: r["reason"] for r in json.loads(proc.stdout)["rejects"]}
    assert "'victim.png': image cannot be decoded" in got["victim"]
    assert "'gone.png' not found" in got["gone"]
    assert_kept(store, before)


# -- queries and options that used to end in a traceback (issue 12) ----------------
@pytest.mark.parametrize("args", [["query", "mug", "-k", "0"], ["query", "mug", "--fusion", "foo"], ["index", "--m", "0"], ["index", "--m", "-1"], ["index", "--ef-construction", "-5"], ["eval", "--queries", "q.csv", "--qrels", "r.csv", "-k", "0"]])
def test_bad_option_values_are_usage_errors(tmp_path, args):
    """Checked at parse time, before any model or store is touched: exit 2, no traceback
    (`index --m 0` used to segfault inside hnswlib)."""
    proc = run_cli(*args, store=tmp_path / "store", check=2)
    assert "Invalid value" in proc.stderr and "Traceback" not in proc.stderr


def test_a_query_without_lexical_terms_scores_zero_in_bm25():
    from mmsearch.lexical import LexicalIndex

    index = LexicalIndex.build(["red mug", "blue lamp", "the green tea"])
    for text in ("the", "L", "5", "!!!", "   "):  # bm25s raised IndexError on each
        assert index.scores(text).tolist() == [0.0, 0.0, 0.0]
    assert index.scores("red")[0] > 0


def test_queries_without_lexical_terms_are_answered_by_the_other_signals(fake_store, tmp_path):
    for text in ("the", "L", "5", "!!!"):
        found = json.loads(run_cli("query", text, "-k", "3", "--json", store=fake_store).stdout)
        assert len(found) == 3 and all(r["scores"]["text"] is not None for r in found), text
    blank = run_cli("query", "   ", store=fake_store, check=2)
    assert blank.stderr.startswith("error: empty query") and blank.stderr.count("\n") == 1
    queries = tmp_path / "queries.csv"  # one such row no longer aborts a whole eval
    queries.write_text("query_id,text\nq1,the\nq2,red coffee mug\n", encoding="utf-8")
    qrels = tmp_path / "qrels.csv"
    qrels.write_text("query_id,product_id,relevance\nq1,p001,1\nq2,p001,1\n", encoding="utf-8")
    report = json.loads(run_cli("eval", "--queries", str(queries), "--qrels", str(qrels), "--json", store=fake_store).stdout)
    assert report["queries"] == 2


def test_catalog_text_is_printed_as_data_not_markup_or_terminal_escapes():
    import io

    from rich.console import Console

    from mmsearch import render
    from mmsearch.search import Result

    title = "Mug [/] [red]bold[/red] [link=http://evil.example]x[/link] \x1b[31mred\x1b[0m \x1b]8;;http://evil.example\x07y"
    result = Result(1, "id[/]1", title, "Mugs [b]", "Brand", 5.0, 0.5, {"lexical": 1.0})
    out = io.StringIO()
    render.results(Console(file=out, width=400, force_terminal=True, color_system="truecolor"), [result])
    text = out.getvalue()
    plain = "".join(ch for ch in text if ch >= " " or ch == "\n")  # the table's own styling aside
    assert "id[/]1" in plain and "[red]bold[/red]" in plain and "[link=http://evil.example]x[/link]" in plain and "Mugs [b]" in plain
    assert "\x1b]8;;http://evil.example" not in text and "\x1b[31mred" not in text  # no OSC hyperlink, no raw colour


@pytest.mark.parametrize(
    "args, words",
    [
        (["--weight", "text=-5"], "a weight is a number"),
        (["--weight", "text=nan"], "a weight is a number"),
        (["--weight", "foo=1"], "unknown signal"),
        (["--where", "gender"], "expected NAME=VALUE"),
        (["--modality", "foo"], "unknown modality"),
    ],
)
def test_bad_query_arguments_are_usage_errors_with_one_line(tmp_path, args, words):
    """Each used to return nothing or be ignored with exit 0, or exit 1; all are command
    line errors (exit 2). An index is needed only to get past opening the store."""
    from mmsearch import Store, build_index, ingest

    store = tmp_path / "store"
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("id,title\np1,red mug\np2,blue lamp\n", encoding="utf-8")
    with Store(store).writer("test") as st:
        ingest(st, csv_path)
        build_index(st)  # BM25 only: no vectors, no model
    proc = run_cli("query", "mug", *args, store=store, check=2)
    assert words in one_error_line(proc)


def test_latency_bars_are_ceilings_and_malformed_bars_usage_errors():
    from mmsearch.errors import ExitCode, MMSearchError
    from mmsearch.evaluation import below_thresholds, parse_thresholds

    metrics = {"ndcg@10": 0.8, "latency_ms_p95": 20.0}
    assert below_thresholds(metrics, {"latency_ms_p95": 100000.0}) == []  # exited 4 before
    assert below_thresholds(metrics, {"latency_ms_p95": 10.0}) == ["latency_ms_p95 = 20.0000 is above 10.0"]
    assert below_thresholds(metrics, {"ndcg@10": 0.9}) == ["ndcg@10 = 0.8000 is below 0.9"]
    for bad in (lambda: parse_thresholds(["ndcg@10"]), lambda: below_thresholds(metrics, {"nosuch": 1.0})):
        with pytest.raises(MMSearchError) as exc:
            bad()
        assert exc.value.exit_code == ExitCode.USAGE
