"""Audio encoder: a fixed-length summary of librosa features, no learned weights.

Per clip (16 kHz mono, leading/trailing silence trimmed):
- log-mel spectrum (64 bands), loudness-normalised: mean and std over time (timbre);
- MFCC 1-19 (c0, the loudness, dropped): mean and std, and the std of their deltas;
- MFCC 1-19 averaged over each third of the clip (coarse temporal shape, which is what
  tells one spoken word from another).
Each block is L2-normalised before concatenation so that no block dominates by scale,
then the whole vector is L2-normalised for cosine search.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import MMSearchError
from ..media import AUDIO_SAMPLE_RATE
from . import l2_normalize

DEFAULT_AUDIO_MODEL = "librosa-mfcc"
N_MELS = 64
N_FFT = 512
N_MFCC = 20
SEGMENTS = 3


def _block(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.linalg.norm(x)), 1e-12)


def audio_features(y: np.ndarray, sr: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    import librosa

    trimmed, _ = librosa.effects.trim(y, top_db=30)
    if trimmed.size >= sr // 10:
        y = trimmed
    y = np.pad(y, (0, max(0, N_FFT * SEGMENTS - y.size)))  # very short clips: enough frames
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=N_FFT, hop_length=N_FFT // 4, n_mels=N_MELS)
    logmel = librosa.power_to_db(mel + 1e-10)
    logmel -= logmel.mean()
    mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=N_MFCC)[1:]
    delta = librosa.feature.delta(mfcc, width=9, mode="nearest")
    segments = [seg.mean(axis=1) for seg in np.array_split(mfcc, SEGMENTS, axis=1)]
    blocks = [
        logmel.mean(axis=1),
        logmel.std(axis=1),
        mfcc.mean(axis=1),
        mfcc.std(axis=1),
        delta.std(axis=1),
        np.concatenate(segments),
    ]
    return np.concatenate([_block(b) for b in blocks]).astype(np.float32)


class LibrosaAudioEncoder:
    modality = "audio"
    name = DEFAULT_AUDIO_MODEL
    id = f"{DEFAULT_AUDIO_MODEL}:v1"
    dim = 2 * N_MELS + 3 * (N_MFCC - 1) + SEGMENTS * (N_MFCC - 1)

    def __init__(self, spec: str | None = None):
        if spec not in (None, DEFAULT_AUDIO_MODEL):
            raise MMSearchError(f"unknown audio model {spec!r}: use {DEFAULT_AUDIO_MODEL}")

    def encode(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        if not clips:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalize(np.stack([audio_features(y) for y in clips]))
