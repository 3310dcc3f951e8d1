"""Ingest hardening: guarded --prune and --dry-run, a hint for a wrong --media-dir, reading
on past a broken quote, --ignore, remembered --map/--ignore, and change detection of media
files (hashes trusted by the racy-clean rule; embed failures retried once a file is back).

Real SQLite stores and real files in tmp_path; the CLI through typer's CliRunner.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from typer.testing import CliRunner

from mmsearch import Store, embed, ingest
from mmsearch.catalog import product_text
from mmsearch.errors import MMSearchError

PRODUCTS = "id,title,price\np1,Mug,5\np2,Lamp,9\np3,Chair,40\np4,Desk,120\n"


def cli(store: Path, *args: str, check: int):
    """Run `mmsearch ARGS --store STORE` in process; assert the exit code."""
    from mmsearch.cli import app

    result = CliRunner().invoke(app, [*args, "--store", str(store)], env={"COLUMNS": "200"})
    assert result.exit_code == check, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{result.exception!r}"
    return result


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def products(store: Path) -> dict[str, dict]:
    db = sqlite3.connect(store / "catalog.db")
    db.row_factory = sqlite3.Row
    try:
        return {r["id"]: dict(r) for r in db.execute("SELECT * FROM products")}
    finally:
        db.close()


def new_store(tmp_path: Path, text: str = PRODUCTS) -> Path:
    root = tmp_path / "store"
    store = Store(root)
    assert not ingest(store, write(tmp_path / "first.csv", text)).rejects
    store.close()
    return root


# -- --prune guard and --dry-run -----------------------------------------------------
def test_prune_refuses_to_remove_most_of_the_store_unless_forced(tmp_path):
    store = new_store(tmp_path)
    before = products(store)
    other = write(tmp_path / "other.csv", "id,title,price\nx1,Vase,12\n")
    message = error_line(cli(store, "ingest", str(other), "--prune", check=1))
    assert "4 of the 4" in message and "--force" in message
    assert products(store) == before  # nothing added, nothing removed

    # Half is not "most": removing 2 of 4 goes through without --force.
    half = write(tmp_path / "half.csv", "id,title,price\np1,Mug,5\np2,Lamp,9\n")
    assert json.loads(cli(store, "ingest", str(half), "--prune", "--json", check=0).stdout)["removed_ids"] == ["p3", "p4"]

    report = json.loads(cli(store, "ingest", str(other), "--prune", "--force", "--json", check=0).stdout)
    assert (report["added"], report["removed"], report["removed_ids"]) == (1, 2, ["p1", "p2"])
    assert set(products(store)) == {"x1"}


def test_dry_run_reports_what_would_change_and_writes_nothing(tmp_path):
    store = new_store(tmp_path)
    before = products(store)
    manifest = (store / "manifest.json").read_bytes() if (store / "manifest.json").exists() else None
    changed = write(tmp_path / "changed.csv", "id,title,price,colour\np1,Mug,5,\np2,Lamp,11,\nn1,Clock,30,black\n")

    plain = json.loads(cli(store, "ingest", str(changed), "--dry-run", "--json", check=0).stdout)
    assert plain["dry_run"] is True
    assert {k: plain[k] for k in ("added", "updated", "unchanged", "removed")} == {"added": 1, "updated": 1, "unchanged": 1, "removed": 0}

    pruned = json.loads(cli(store, "ingest", str(changed), "--dry-run", "--prune", "--json", check=0).stdout)
    assert pruned["removed_ids"] == ["p3", "p4"] and pruned["removed"] == 2
    assert products(store) == before
    assert ((store / "manifest.json").read_bytes() if (store / "manifest.json").exists() else None) == manifest

    # A dry run of a prune the real run would refuse says so, and still lists the ids.
    other = write(tmp_path / "other.csv", "id,title\nx1,Vase\n")
    refused = cli(store, "ingest", str(other), "--dry-run", "--prune", "--json", check=0)
    report = json.loads(refused.stdout)
    assert report["removed_ids"] == ["p1", "p2", "p3", "p4"]
    assert any("--force" in hint for hint in report["hints"])
    assert products(store) == before

    table = cli(store, "ingest", str(changed), "--dry-run", check=0)
    assert "dry run" in table.stdout and "nothing was written" in table.stdout

    # A dry run into a store that does not exist yet reports every product as added and
    # creates nothing (it used to create an empty store).
    fresh = tmp_path / "not-yet"
    report = json.loads(cli(fresh, "ingest", str(changed), "--dry-run", "--prune", "--json", check=0).stdout)
    assert {k: report[k] for k in ("added", "updated", "removed")} == {"added": 3, "updated": 0, "removed": 0}
    assert not fresh.exists()


# -- a wrong --media-dir ---------------------------------------------------------------
def _image_catalog(tmp_path: Path, n: int) -> Path:
    (tmp_path / "shop" / "img").mkdir(parents=True)
    rows = ["id,title,image"]
    for i in range(n):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / "shop" / "img" / f"{i}.png")
        rows.append(f"m{i},Item {i},img/{i}.png")
    return write(tmp_path / "shop" / "catalog.csv", "\n".join(rows) + "\n")


def test_a_wrong_media_dir_gets_one_hint_naming_the_folder(tmp_path):
    catalog = _image_catalog(tmp_path, 6)
    wrong = tmp_path / "elsewhere"
    wrong.mkdir()
    result = cli(tmp_path / "store", "ingest", str(catalog), "--media-dir", str(wrong), "--json", check=3)
    report = json.loads(result.stdout)
    assert report["rejected"] == 6 and all("not found" in r["reason"] for r in report["rejects"])  # rows still listed
    hints = [line for line in result.stderr.splitlines() if line.startswith("hint:")]
    assert len(hints) == 1, result.stderr
    assert str(wrong.resolve()) in hints[0] and "--media-dir" in hints[0] and "6 of 6" in hints[0]
    assert report["hints"] == [hints[0].removeprefix("hint: ")]
    assert report["media_dir"] == str(wrong.resolve())

    # The right folder: stored, no hint. One missing file of six: a reject, no hint.
    ok = cli(tmp_path / "store", "ingest", str(catalog), "--json", check=0)
    assert json.loads(ok.stdout)["added"] == 6 and "hint:" not in ok.stderr
    (tmp_path / "shop" / "img" / "0.png").unlink()
    one = cli(tmp_path / "store2", "ingest", str(catalog), "--json", check=3)
    assert json.loads(one.stdout)["hints"] == [] and "hint:" not in one.stderr


# -- a broken quote --------------------------------------------------------------------
def test_an_unclosed_quote_rejects_its_line_and_the_rows_after_it_are_stored(tmp_path):
    store = new_store(tmp_path, "id,title,price\nq1,Old,1\n")
    catalog = write(tmp_path / "c.csv", 'id,title,price\nq0,"Cup, blue",2\nq1,"never closed,5\nq2,Lamp,6\nq3,Mug,7\n')
    report = ingest(Store(store), catalog, prune=True)
    assert [(r.line, r.product_id) for r in report.rejects] == [(3, "q1")]
    assert "line 3" in report.rejects[0].reason and "never closed" in report.rejects[0].reason
    got = products(store)
    assert {pid: got[pid]["title"] for pid in got} == {"q0": "Cup, blue", "q1": "Old", "q2": "Lamp", "q3": "Mug"}
    assert got["q3"]["price"] == 7  # --prune kept q1, whose row was rejected


def test_a_stray_quote_that_swallows_rows_is_reported_and_the_rows_recovered(tmp_path):
    store = Store(tmp_path / "store")
    catalog = write(
        tmp_path / "c.csv",
        'id,title,price\na,"Mug,5\nb,Lamp,6\nc,"Chair",7\nd,"27 inch" monitor,8\ne,Desk,9\n',
    )
    report = ingest(store, catalog)
    rejects = {r.line: r for r in report.rejects}
    assert sorted(rejects) == [2, 5] and rejects[2].product_id == "a" and rejects[5].product_id == "d"
    assert all('"' in r.reason for r in report.rejects)
    got = products(store.root)
    assert {pid: (got[pid]["title"], got[pid]["price"]) for pid in got} == {"b": ("Lamp", 6), "c": ("Chair", 7), "e": ("Desk", 9)}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('a2,Lamp,"first line\nsecond, with a "quote"\nthird",4\n', id="stray-quotes-in-a-multiline-field"),
        pytest.param('a2,"27 inch" lamp,"first line\nsecond line",4\n', id="stray-quote-before-a-multiline-field"),
    ],
)
def test_a_quote_that_cannot_be_resynchronised_fails_naming_its_line(tmp_path, text):
    """Reading on after line 3 would store the inside of its multi-line field as rows."""
    store = new_store(tmp_path)
    before = products(store)
    catalog = write(tmp_path / "c.csv", "id,title,description,price\na1,Mug,x,3\n" + text + "z,Z,z,1\n")
    message = error_line(cli(store, "ingest", str(catalog), check=1))
    assert str(catalog) in message and "line 3" in message
    assert products(store) == before


# -- --ignore and remembered column settings --------------------------------------------
def test_ignored_columns_are_neither_stored_nor_embedded(tmp_path):
    store = Store(tmp_path / "store")
    catalog = write(tmp_path / "c.csv", "id,title,colour,internal_notes,supplier_sku\n1,Mug,red,call Bob,SUP-9\n")
    report = ingest(store, catalog, ignore=["internal_notes", "supplier_sku"])
    assert report.added == ["1"]
    row = products(store.root)["1"]
    assert json.loads(row["attributes"]) == {"colour": "red"}
    assert product_text(row) == "Mug. colour: red"
    with pytest.raises(MMSearchError, match="--ignore nope: the catalog has no column 'nope'"):
        ingest(store, catalog, ignore=["nope"])
    with pytest.raises(MMSearchError, match="id column"):
        ingest(store, catalog, ignore=["id"])


def test_map_and_ignore_are_remembered_until_replaced(tmp_path):
    store = tmp_path / "store"
    catalog = write(tmp_path / "c.csv", "sku,name,notes,colour\nA1,Black bag,fragile,black\nA2,Red mug,,red\n")
    first = json.loads(cli(store, "ingest", str(catalog), "--map", "id=sku", "--map", "title=name", "--ignore", "notes", "--json", check=0).stdout)
    assert first["added"] == 2 and first["remembered"] == []

    again = cli(store, "ingest", str(catalog), "--json", check=0)
    report = json.loads(again.stdout)
    assert (report["added"], report["updated"], report["unchanged"]) == (0, 0, 2)
    assert report["map"] == {"id": "sku", "title": "name"} and report["ignore"] == ["notes"]
    assert report["remembered"] == ["map", "ignore"]
    assert "remembered" in cli(store, "ingest", str(catalog), check=0).stdout  # the table says so too

    # Passing --map again replaces the remembered mapping (and is remembered in turn).
    replaced = json.loads(cli(store, "ingest", str(catalog), "--map", "id=sku", "--json", check=0).stdout)
    assert replaced["updated"] == 2 and replaced["remembered"] == ["ignore"]
    assert products(store)["A1"]["title"] == "" and json.loads(products(store)["A1"]["attributes"]) == {"colour": "black", "name": "Black bag"}
    assert json.loads(cli(store, "ingest", str(catalog), "--json", check=0).stdout)["updated"] == 0
    # ... and `--ignore ''` forgets the ignored columns.
    cleared = json.loads(cli(store, "ingest", str(catalog), "--ignore", "", "--json", check=0).stdout)
    assert cleared["ignore"] == [] and cleared["updated"] == 1  # A1 has notes, A2's are empty


def test_a_remembered_map_column_that_is_gone_names_where_the_mapping_came_from(tmp_path):
    store = tmp_path / "store"
    cli(store, "ingest", str(write(tmp_path / "a.csv", "sku,title\nA1,Mug\n")), "--map", "id=sku", check=0)
    message = error_line(cli(store, "ingest", str(write(tmp_path / "b.csv", "code,title\nA1,Mug\n")), check=1))
    assert "id=sku" in message and "remembered" in message and "--map" in message


# -- change detection of media files ---------------------------------------------------------
def test_a_media_file_rewritten_with_the_same_size_and_mtime_is_seen_as_changed(tmp_path):
    store = Store(tmp_path / "store")
    (tmp_path / "img").mkdir()
    image = tmp_path / "img" / "a.bmp"
    Image.new("RGB", (8, 8), "red").save(image)
    # Fresh when hashed: a little ahead, so that the test does not depend on how fast ingest starts.
    soon = time.time_ns() + 10 * 10**9
    os.utime(image, ns=(soon, soon))
    catalog = write(tmp_path / "c.csv", "id,title,image\n1,Mug,img/a.bmp\n")
    assert ingest(store, catalog).added == ["1"]
    stat = image.stat()
    Image.new("RGB", (8, 8), "blue").save(image)  # BMP: same size; then the same mtime
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert image.stat().st_size == stat.st_size and image.stat().st_mtime_ns == stat.st_mtime_ns
    assert ingest(store, catalog).updated == ["1"]


def test_a_media_file_older_than_its_recorded_hash_is_not_read_again(tmp_path):
    store = Store(tmp_path / "store")
    (tmp_path / "img").mkdir()
    image = tmp_path / "img" / "a.png"
    Image.new("RGB", (8, 8), "red").save(image)
    hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(image, ns=(hour_ago, hour_ago))
    catalog = write(tmp_path / "c.csv", "id,title,image\n1,Mug,img/a.png\n")
    ingest(store, catalog)
    recorded = store.db.execute("SELECT hashed_ns FROM file_hashes").fetchall()
    assert len(recorded) == 1
    assert ingest(store, catalog).unchanged == 1
    assert store.db.execute("SELECT hashed_ns FROM file_hashes").fetchall() == recorded  # trusted, not re-hashed


def _tone(path: Path, hz: float) -> None:
    t = np.arange(16_000) / 16_000
    sf.write(path, (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 16_000, subtype="PCM_16")


def test_embed_retries_a_failed_media_file_once_it_is_back(tmp_path):
    store = Store(tmp_path / "store")
    (tmp_path / "audio").mkdir()
    clip = tmp_path / "audio" / "a.wav"
    _tone(clip, 440)
    _tone(tmp_path / "audio" / "b.wav", 880)
    original = clip.read_bytes()
    ingest(store, write(tmp_path / "c.csv", "id,title,audio\n1,Bell,audio/a.wav\n2,Horn,audio/b.wav\n"))
    assert embed(store, modalities=["audio"]).modalities["audio"].embedded == 2
    digest = store.db.execute("SELECT sha256 FROM media WHERE product_id='1'").fetchone()[0]

    def has_vector() -> bool:
        return store.db.execute("SELECT count(*) FROM vectors WHERE content_hash=?", (digest,)).fetchone()[0] == 1

    # Deleted, then restored with the same content.
    store.db.execute("DELETE FROM vectors WHERE content_hash=?", (digest,))
    clip.unlink()
    assert len(embed(store, modalities=["audio"]).failures) == 1
    still = embed(store, modalities=["audio"])
    assert (still.failures, still.modalities["audio"].failed) == ([], 1)  # still missing: waits
    clip.write_bytes(original)
    back = embed(store, modalities=["audio"])
    assert (back.modalities["audio"].embedded, back.modalities["audio"].failed, back.failures) == (1, 0, [])
    assert has_vector()
    assert store.db.execute("SELECT count(*) FROM failures").fetchone()[0] == 0

    # Damaged (same size), then restored with the same content.
    store.db.execute("DELETE FROM vectors WHERE content_hash=?", (digest,))
    clip.write_bytes(b"\0" * len(original))
    assert len(embed(store, modalities=["audio"]).failures) == 1
    assert embed(store, modalities=["audio"]).modalities["audio"].failed == 1  # unchanged: not retried
    clip.write_bytes(original)
    back = embed(store, modalities=["audio"])
    assert (back.modalities["audio"].embedded, back.failures) == (1, [])
    assert has_vector()
