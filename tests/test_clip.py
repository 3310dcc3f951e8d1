"""open_clip as the image model, with a tiny CLIP whose checkpoint the test writes and
mmsearch loads from disk (no package carries real CLIP weights)."""

import json
import time

import numpy as np
import pytest
import torch

from .conftest import SAMPLE, run_cli, run_json

pytestmark = pytest.mark.slow

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("clip")
    config = folder / "tiny-clip.json"
    config.write_text(json.dumps(TINY))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip")
    checkpoint = folder / "tiny-clip.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    return f"open_clip:{config}:{checkpoint}", model.eval()


def test_encoder_loads_the_checkpoint_from_disk(tiny_clip):
    from PIL import Image

    from mmsearch.encoders import load_encoder

    spec, reference = tiny_clip
    encoder = load_encoder("image", spec)
    image = Image.open(SAMPLE / "images/p001.png").convert("RGB")
    ours = encoder.encode([image])
    _, preprocess, _ = encoder._loaded
    with torch.no_grad():
        theirs = reference.encode_image(preprocess(image)[None]).numpy()
    theirs /= np.linalg.norm(theirs)
    assert np.allclose(ours, theirs, atol=1e-5)  # the saved weights, not a random init
    assert encoder.encode_text(["a red mug"]).shape == (1, 32)
    assert encoder.id.startswith("open_clip:tiny-clip:sha256-")


def test_store_with_open_clip_images_searches_across_modalities(tiny_clip, tmp_path):
    spec, _ = tiny_clip
    store = tmp_path / "store"
    run_cli("ingest", str(SAMPLE / "products.csv"), "-q", store=store)
    report = run_json("embed", "--image-model", spec, store=store)["modalities"]
    assert report["image"]["embedded"] == 34
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["models"]["image"]["dim"] == 32
    index = run_json("index", store=store)
    assert {"bridge", "image_x", "text_x"} <= set(index["built"])
    gen = (store / "indexes" / (store / "indexes/CURRENT").read_text())
    assert json.loads((gen / "manifest.json").read_text())["parts"]["bridge"]["kind"] == "open_clip"
    # CLIP's own text tower takes a text query to the images
    by_image = run_json("query", "red coffee mug", "--modality", "image", "-k", "3", store=store)
    assert len(by_image) == 3 and set(by_image[0]["scores"]) == {"image"}
    assert run_json("query", "--image", str(SAMPLE / "queries/q_p001.png"), "--modality", "text", "-k", "2", store=store)
    # align tunes heads on top of the CLIP features
    aligned = run_json("align", "--epochs", "2", "--val-fraction", "0.3", store=store)
    assert aligned["pairs_train"] > 0
    rebuilt = run_json("index", store=store)
    assert "image_x" in rebuilt["built"]


def test_missing_clip_weights_fail_at_once_with_what_to_pass(tmp_path):
    store = tmp_path / "store"
    run_cli("ingest", str(SAMPLE / "products.csv"), "-q", store=store)
    started = time.monotonic()
    failed = run_cli("embed", "--image-model", "open_clip:ViT-B-32:laion2b_s34b_b79k", "--modality", "image", store=store, check=1)
    assert time.monotonic() - started < 120  # no waiting on a network that is not there
    assert "pass a local checkpoint" in failed.stderr
    assert "open_clip:ViT-B-32:/path/to/" in failed.stderr
    missing = run_cli("embed", "--image-model", "open_clip:ViT-B-32:/nope/model.safetensors", store=store, check=1)
    assert "not found" in missing.stderr
