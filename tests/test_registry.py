"""The encoder and backend registries, and the deterministic fake encoder that tests of
plumbing run on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mmsearch import Query, Searcher, Store, configure_backend
from mmsearch.backends import BACKENDS, backend_class, make_backend
from mmsearch.encoders import ENCODERS, EncoderFamily, encoder_family, load_encoder
from mmsearch.errors import MMSearchError

from .conftest import REPO


# -- encoders ---------------------------------------------------------------------------
def test_every_model_spec_maps_to_a_family_that_says_what_it_can_do():
    cases = {
        ("text", None): ("sentence-transformers", False, False),
        ("text", "/models/my-sentence-model"): ("sentence-transformers", False, False),
        ("text", "open_clip:ViT-B-32:x"): ("sentence-transformers", False, False),  # not a text model family
        ("image", None): ("efficientnet", False, True),
        ("image", "efficientnet_lite0"): ("efficientnet", False, True),
        ("image", "open_clip:ViT-B-32:laion2b_s34b_b79k"): ("open_clip", True, False),
        ("audio", None): ("librosa", False, False),
    }
    cases |= {(m, "fake:8"): ("fake", True, False) for m in ("text", "image", "audio")}
    for (modality, spec), expected in cases.items():
        family = encoder_family(modality, spec)
        assert (family.name, family.text_tower, family.classifier) == expected, (modality, spec)
        assert modality in family.modalities
    with pytest.raises(MMSearchError, match="no encoder for modality 'smell'"):
        encoder_family("smell")


def test_a_registered_family_is_loaded_like_the_built_in_ones(monkeypatch):
    made = []

    def factory(modality, spec):
        made.append((modality, spec))
        return load_encoder(modality, "fake:4")

    monkeypatch.setitem(ENCODERS, "demo", EncoderFamily("demo", ("audio",), factory, prefix="demo:"))
    encoder = load_encoder("audio", "demo:tiny")
    assert made == [("audio", "demo:tiny")] and encoder.dim == 4
    assert encoder_family("image", "demo:tiny").name == "efficientnet"  # only for the modalities it declares


def test_fake_vectors_are_unit_vectors_from_the_content_alone():
    text = load_encoder("text", "fake:64")
    a, b, c, again = text.encode(["red mug", "Red MUG, large", "blue lamp", "red mug"])
    assert np.allclose([np.linalg.norm(v) for v in (a, b, c)], 1.0, atol=1e-6)
    assert np.array_equal(a, again) and a.shape == (64,) and a.dtype == np.float32
    assert a @ b > 0.6 > abs(a @ c)  # shared words, near; none shared, unrelated
    assert text.encode([]).shape == (0, 64)
    assert text.id == "fake:64:v1" and text.name == "fake:64"

    image = load_encoder("image", "fake:64")
    red, red_again, blue = (Image.new("RGB", (8, 8), colour) for colour in ("red", "red", "blue"))
    vectors = image.encode([red, red_again, blue])
    assert np.array_equal(vectors[0], vectors[1]) and not np.allclose(vectors[0], vectors[2])
    assert np.array_equal(image.encode_text(["red mug"])[0], a)  # its text tower is the text encoder

    audio = load_encoder("audio", "fake:64")
    tone = np.sin(np.linspace(0, 100, 16_000)).astype(np.float32)
    assert np.array_equal(audio.encode([tone])[0], audio.encode([tone.copy()])[0])
    assert not np.allclose(audio.encode([tone])[0], audio.encode([tone[::-1]])[0])


PROBE = """
import json, sys
from mmsearch.encoders import load_encoder
vector = load_encoder("text", "fake:16").encode(["red coffee mug"])[0]
print(json.dumps({"vector": vector.tolist(), "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def test_fake_vectors_are_the_same_in_every_process_and_load_no_model():
    """Hashes of the content, not Python's per-process string hash; and no model stack."""
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    assert np.array_equal(np.float32(result["vector"]), load_encoder("text", "fake:16").encode(["red coffee mug"])[0])
    assert not {"torch", "onnxruntime", "transformers", "timm", "librosa"} & set(result["modules"])


@pytest.mark.parametrize("spec", ["fake:0", "fake:-3", "fake:x", "fake:", "fake:4097", "fake:1.5", "fake:١٢"])
def test_a_bad_fake_spec_names_the_form_expected(spec):
    with pytest.raises(MMSearchError, match=r"expected fake:DIM") as exc:
        load_encoder("image", spec)
    assert repr(spec) in str(exc.value)


def test_an_image_model_with_a_text_tower_is_its_own_bridge(fake_store_template):
    """Indexing asks the registry, not the model's name: the fake image model has a text
    tower, so text reaches images through it (no ImageNet classifier needed)."""
    store = Store(fake_store_template)
    generation = fake_store_template / "indexes" / (fake_store_template / "indexes" / "CURRENT").read_text().strip()
    assert json.loads((generation / "manifest.json").read_text())["parts"]["bridge"]["kind"] == "open_clip"
    found = Searcher(store).search(Query(text="red coffee mug"), k=3, modalities=["image"])
    assert len(found) == 3 and all(set(r.scores) == {"image"} for r in found)


def test_align_skips_the_zero_shot_baseline_without_a_classifier(fake_store_template, tmp_path):
    from mmsearch.align import AlignConfig, train

    shutil.copytree(fake_store_template, tmp_path / "store")
    _, report = train(Store(tmp_path / "store"), AlignConfig(epochs=1, val_fraction=0.3))
    assert report.zeroshot_val == {} and 0 <= report.val["recall@10"] <= 1


# -- backends ---------------------------------------------------------------------------
def test_every_registered_backend_is_a_class_named_as_registered():
    for name in BACKENDS:
        cls = backend_class(name)
        assert cls.name == name  # the name written into manifests finds the class again
        assert callable(cls.from_config) and callable(cls.open_part)
    assert type(make_backend({}, "")).name == "hnswlib"  # a store that never chose one


def test_an_unknown_backend_is_refused_by_name(tmp_path):
    with pytest.raises(MMSearchError, match="unknown index backend 'faiss': use one of hnswlib, milvus"):
        make_backend({"backend": "faiss"}, "")
    store = Store(tmp_path / "store")
    store.root.mkdir()
    with pytest.raises(MMSearchError, match="use one of hnswlib, milvus"):
        configure_backend(store, "faiss")
