"""The default encoders run on ONNX Runtime: their vectors must be the ones torch gives
(stores embedded before the switch stay valid), the export must happen once per set of
weights, and a query must not import torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsearch.encoders import l2_normalize, load_encoder
from mmsearch.encoders.onnx import CACHE_ENV, exported

from .conftest import SAMPLE, cli_imports

TEXTS = [
    "red dress",
    "Puma Men Black Running Shoes, casual summer sport wear",
    "红色连衣裙 女装 夏季",
    "Chinese 中文 and English side by side",
    "long " * 400,  # beyond the model's 256-token limit: truncated as sentence-transformers does
    "",
    "a",
] + [f"item {i} " * (i % 40) for i in range(100)]


@pytest.mark.slow
def test_text_vectors_equal_the_torch_model():
    from mmsearch.encoders.text import OnnxSentenceEncoder, SentenceTransformerEncoder

    onnx = load_encoder("text")
    assert isinstance(onnx, OnnxSentenceEncoder)
    torch_vectors = SentenceTransformerEncoder().encode(TEXTS)
    onnx_vectors = onnx.encode(TEXTS)
    assert onnx_vectors.shape == torch_vectors.shape == (len(TEXTS), 384)
    assert np.min(np.sum(onnx_vectors * torch_vectors, axis=1)) >= 0.9999
    # batch composition must not matter: one text alone gives the vector it gets in a batch
    assert np.dot(onnx.encode([TEXTS[1]])[0], onnx_vectors[1]) >= 0.99999


def _shapes() -> list[Image.Image]:
    """Sample photos at the sizes catalogs hold: thumbnails, wide banners, tiny icons,
    exactly the model's input, large photos."""
    photos = [Image.open(p).convert("RGB") for p in sorted((SAMPLE / "images").glob("*.png"))[:4]]
    sizes = [(60, 80), (300, 100), (20, 30), (224, 224), (512, 700), (225, 400)]
    return [photo.resize(size) for photo in photos for size in sizes]


@pytest.mark.slow
def test_image_vectors_equal_the_torch_model_and_torchvision_transforms():
    import torch
    from torchvision import transforms as T

    from mmsearch.encoders.image import INPUT_SIZE, MEAN, STD

    encoder = load_encoder("image")
    images = _shapes()
    transform = T.Compose([T.Resize(INPUT_SIZE), T.CenterCrop(INPUT_SIZE), T.ToTensor(), T.Normalize(MEAN, STD)])
    with torch.inference_mode():
        batch = torch.stack([transform(img) for img in images])
        reference = encoder.net.forward_head(encoder.net.forward_features(batch), pre_logits=True).numpy()
    vectors = encoder.encode(images)
    assert np.min(np.sum(l2_normalize(vectors) * l2_normalize(reference), axis=1)) >= 0.9999
    # raw features, not only their direction: the ImageNet head is applied to them
    assert np.allclose(vectors, reference, atol=1e-3)


def test_a_model_is_exported_once_per_set_of_weights(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"first weights")
    calls: list[Path] = []

    def export(path: Path) -> None:
        calls.append(path)
        path.write_bytes(b"model from " + weights.read_bytes())

    first = exported("demo:model", [weights], export)
    assert exported("demo:model", [weights], export) == first and len(calls) == 1
    weights.write_bytes(b"other weights")  # new weights: a new export under a new name
    second = exported("demo:model", [weights], export)
    assert second != first and len(calls) == 2 and second.read_bytes() == b"model from other weights"
    assert first.read_bytes() == b"model from first weights"
    assert not list(second.parent.glob("*.partial"))


def test_a_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"weights")

    def broken(path: Path) -> None:
        path.write_bytes(b"half a model")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError):
        exported("demo:model", [weights], broken)
    assert not list((tmp_path / "cache" / "onnx").glob("*.onnx*partial")) and not list((tmp_path / "cache" / "onnx").glob("*.onnx"))


@pytest.mark.slow
def test_queries_import_no_torch(sample_store, tmp_path):
    """Text and image queries run on onnxruntime alone (the models were exported when the
    store was embedded)."""
    for args in (["red coffee mug"], ["--image", str(SAMPLE / "queries" / "q_p007.png")], ["mug", "--modality", "lexical"]):
        modules = cli_imports(tmp_path, "query", *args, "--json", store=sample_store)
        assert not modules & {"torch", "torchvision", "transformers", "sentence_transformers", "timm"}, args
        assert ("onnxruntime" in modules) == (args[-1] != "lexical"), args
