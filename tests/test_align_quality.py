"""Alignment quality: colour features of the image files, title-trained heads, and heads
files from before colour features (they still load)."""

import csv
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mmsearch import Query, Searcher, Store, build_index, embed, ingest
from mmsearch.align import AlignConfig, ProjectionHead, install, train
from mmsearch.bridge import AlignedBridge
from mmsearch.colour import DIM, colour_features, colour_matrix
from mmsearch.errors import MMSearchError

from .conftest import PICKLE, SHARED, myntra_rows, run_cli

MYNTRA = SHARED / "myntra"


def _garment(colour: tuple[int, int, int], size: tuple[int, int] = (60, 80), shift: int = 0) -> Image.Image:
    """A coloured garment-like shape on a white background, as catalog thumbnails are."""
    image = Image.new("RGB", size, "white")
    w, h = size
    ImageDraw.Draw(image).rectangle([w // 5 + shift, h // 6, 4 * w // 5 + shift, 5 * h // 6], fill=colour)
    return image


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_colour_features_are_deterministic_and_sized():
    red = _garment((200, 20, 30))
    first, again = colour_features(red), colour_features(red.copy())
    assert first.shape == (DIM,) and first.dtype == np.float32
    assert np.array_equal(first, again)
    # any image size gives the same number of features
    assert colour_features(_garment((200, 20, 30), size=(512, 640))).shape == (DIM,)
    assert np.isfinite(colour_features(Image.new("RGB", (60, 80), "white"))).all()  # no foreground at all


def test_colour_features_separate_a_red_from_a_blue_garment():
    red, other_red = colour_features(_garment((200, 20, 30))), colour_features(_garment((220, 40, 50), shift=3))
    blue = colour_features(_garment((20, 40, 200)))
    def distance(a, b):
        return float(np.linalg.norm(a - b))

    assert distance(red, blue) > 3 * distance(red, other_red)
    histogram = slice(0, 64)  # the colour histogram alone: red and blue share no bin
    assert _cosine(red[histogram], blue[histogram]) < 0.1 < 0.9 < _cosine(red[histogram], other_red[histogram])


def test_colour_matrix_reads_files_and_gives_zeros_for_an_unreadable_one(tmp_path):
    good, bad = tmp_path / "red.png", tmp_path / "broken.jpg"
    _garment((200, 20, 30)).save(good)
    bad.write_bytes(b"not a jpeg")
    rows = colour_matrix([good, bad, tmp_path / "missing.jpg"])
    assert rows.shape == (3, DIM)
    assert np.allclose(rows[0], colour_features(_garment((200, 20, 30))), atol=1e-6)
    assert not rows[1:].any()


def _bridge(extra: bool) -> tuple[dict[str, ProjectionHead], AlignedBridge]:
    import torch

    torch.manual_seed(0)
    heads = {"image": ProjectionHead(1280, 64, 32, DIM if extra else 0), "text": ProjectionHead(384, 64, 32)}
    if extra:
        heads["image"].extra_mean.copy_(torch.rand(DIM))
    meta = {"image_dim": "1280", "text_dim": "384", "hidden": "64", "dim": "32", **({"image_extra": "colour:1"} if extra else {})}
    return heads, AlignedBridge({side: head.arrays() for side, head in heads.items()}, meta, "aligned:test")


def test_colour_heads_project_in_numpy_as_in_torch(tmp_path):
    import torch

    heads, bridge = _bridge(extra=True)
    path = bridge.save(tmp_path)[0]
    assert not PICKLE.match(path.read_bytes())
    reloaded = AlignedBridge.from_file(path)
    images = [_garment((200, 20, 30)), _garment((20, 40, 200))]
    x = np.random.default_rng(0).normal(size=(2, 1280)).astype(np.float32)
    with torch.inference_mode():
        expected = heads["image"](torch.from_numpy(x), torch.from_numpy(colour_matrix(images))).numpy()
    assert np.abs(reloaded.image_items(x, images) - expected).max() < 1e-5
    with pytest.raises(ValueError, match="one image per vector"):
        reloaded.image_items(x)


def test_a_heads_file_from_before_colour_features_still_loads(tmp_path):
    import torch

    heads, bridge = _bridge(extra=False)
    reloaded = AlignedBridge.from_file(bridge.save(tmp_path)[0])
    x = np.random.default_rng(1).normal(size=(3, 1280)).astype(np.float32)
    with torch.inference_mode():
        expected = heads["image"](torch.from_numpy(x)).numpy()
    assert np.abs(reloaded.image_items(x) - expected).max() < 1e-5  # no images needed


def test_a_heads_file_for_other_colour_features_asks_to_align_again(sample_store, tmp_path):
    _, bridge = _bridge(extra=True)
    bridge.metadata.update({"image_extra": "colour:0", "image_model": "x", "text_model": "y"})
    path = bridge.save(tmp_path)[0]
    proc = run_cli("align", "--load", str(path), store=sample_store, check=1)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "run `mmsearch align` again" in lines[0], proc.stderr


# -- a real slice --------------------------------------------------------------------
@pytest.fixture(scope="module")
def myntra_store(tmp_path_factory):
    """1,000 real train-split products, embedded with the real models."""
    rows = myntra_rows("train", 1000)
    root = tmp_path_factory.mktemp("myntra")
    catalog = root / "catalog.csv"
    with open(catalog, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "title", "category", "image", "gender", "baseColour", "usage"])
        for r in rows:
            writer.writerow([r["id"], r["title"], r["articleType"], r["image"], r["gender"], r["baseColour"], r["usage"]])
    store = Store(root / "store")
    ingest(store, catalog, media_dir=MYNTRA)
    embed(store)
    return store, rows


@pytest.mark.slow
def test_title_and_colour_training_beats_chance_zero_shot_and_product_text_training(myntra_store):
    """Held-out title -> image recall@10 on real products: the default heads (titles
    and colour) beat chance, the zero-shot bridge, and heads trained as before (product
    text only, no colour) on the same held-out pairs."""
    store, _ = myntra_store
    cfg = dict(epochs=30, val_fraction=0.2, seed=0)
    _, report = train(store, AlignConfig(**cfg))
    _, before = train(store, AlignConfig(**cfg, title_share=0.0, colour=False))
    assert report.pairs_val == before.pairs_val
    chance = 10 / report.pairs_val
    assert report.val["recall@10"] > 3 * chance
    assert report.val["recall@10"] > report.zeroshot_val["recall@10"]
    assert report.val["recall@10"] > before.val["recall@10"] + 0.05, (report.val, before.val)


@pytest.mark.slow
def test_colour_heads_index_and_answer_text_and_image_queries(myntra_store, tmp_path):
    store, rows = myntra_store
    bridge, _ = train(store, AlignConfig(epochs=5, val_fraction=0.2))
    assert bridge.metadata["image_extra"] == "colour:1"
    install(store, bridge)
    build_index(store)
    searcher = Searcher(store)
    top = searcher.search(Query(text=rows[0]["title"]), k=10, modalities=["image"])
    assert len(top) == 10 and set(top[0].scores) == {"image"}
    # an image query reaches product text through the image head, colour features included
    by_text = searcher.search(Query(image=MYNTRA / rows[0]["image"]), k=5, modalities=["text"])
    assert len(by_text) == 5 and set(by_text[0].scores) == {"text"}
    manifest = json.loads((store.root / "manifest.json").read_text())
    assert manifest["alignment"]["file"] == "alignment.safetensors"
    with pytest.raises(MMSearchError):  # a missing heads file is still refused
        from mmsearch.align import load

        load(store, tmp_path / "nothing.safetensors")
