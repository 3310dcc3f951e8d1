"""Audio encoder: a fixed-length summary of librosa features, no learned weights.

Per clip (16 kHz mono, leading/trailing silence trimmed), the default ``librosa-mfcc``
(id ``librosa-mfcc:v2``) keeps the speech band (log-mel up to 4 kHz, where vowels and
consonants differ; the band above carries mostly the speaker and the microphone) and
normalises each MFCC over the recording (CMVN: mean 0, std 1 per coefficient), which
removes a speaker's and a microphone's constant colouring:
- log-mel spectrum (40 bands to 4 kHz), loudness-normalised: mean and std over time;
- the std of the MFCC 1-19 deltas (how fast the sound changes);
- MFCC 1-19 averaged over each eighth of the clip (the temporal shape, which is what
  tells one spoken word from another).
Each block is L2-normalised before concatenation so that no block dominates by scale,
then the whole vector is L2-normalised for cosine search.

``librosa-mfcc-v1`` (id ``librosa-mfcc:v1``) is the previous summary (64 bands to 8 kHz,
no CMVN, MFCC mean/std, thirds), kept so that stores embedded with it still load.

``mfcc_frames`` is the frame sequence that audio_rerank.py aligns by dynamic time warping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import MMSearchError
from ..media import AUDIO_SAMPLE_RATE
from . import l2_normalize

DEFAULT_AUDIO_MODEL = "librosa-mfcc"
N_FFT = 512
N_MFCC = 20
#: MFCCs 1-12 per frame for alignment: more coefficients describe the speaker more than
#: the word (train split: 13 coefficients p@10 0.831, 20: 0.791)
N_FRAME_MFCC = 13


@dataclass(frozen=True)
class Summary:
    """One version of the summary vector's recipe."""

    id: str
    n_mels: int
    fmax: float | None  # None: half the sample rate
    top_db: float  # trim threshold
    segments: int
    cmvn: bool  # per-recording MFCC normalisation (then MFCC mean/std blocks are constant)

    @property
    def dim(self) -> int:
        per_mfcc = (N_MFCC - 1) * (self.segments + 1 + (0 if self.cmvn else 2))
        return 2 * self.n_mels + per_mfcc


SUMMARIES = {
    DEFAULT_AUDIO_MODEL: Summary(f"{DEFAULT_AUDIO_MODEL}:v2", n_mels=40, fmax=4000.0, top_db=15, segments=8, cmvn=True),
    f"{DEFAULT_AUDIO_MODEL}-v1": Summary(f"{DEFAULT_AUDIO_MODEL}:v1", n_mels=64, fmax=None, top_db=30, segments=3, cmvn=False),
}


def _block(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.linalg.norm(x)), 1e-12)


def _cmvn(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-6)


def _logmel_mfcc(y: np.ndarray, recipe: Summary, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Loudness-normalised log-mel (bands x frames) and its MFCCs 1-19 of the trimmed clip."""
    import librosa

    trimmed, _ = librosa.effects.trim(y, top_db=recipe.top_db)
    if trimmed.size >= sr // 10:
        y = trimmed
    y = np.pad(y, (0, max(0, N_FFT * recipe.segments - y.size)))  # very short clips: enough frames
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=N_FFT, hop_length=N_FFT // 4, n_mels=recipe.n_mels, fmax=recipe.fmax
    )
    logmel = librosa.power_to_db(mel + 1e-10)
    logmel -= logmel.mean()
    mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=N_MFCC)[1:]
    return logmel, (_cmvn(mfcc) if recipe.cmvn else mfcc)


def audio_features(y: np.ndarray, sr: int = AUDIO_SAMPLE_RATE, recipe: Summary = SUMMARIES[DEFAULT_AUDIO_MODEL]) -> np.ndarray:
    import librosa

    logmel, mfcc = _logmel_mfcc(y, recipe, sr)
    delta = librosa.feature.delta(mfcc, width=9, mode="nearest")
    segments = [seg.mean(axis=1) for seg in np.array_split(mfcc, recipe.segments, axis=1)]
    blocks = [logmel.mean(axis=1), logmel.std(axis=1)]
    if not recipe.cmvn:
        blocks += [mfcc.mean(axis=1), mfcc.std(axis=1)]
    blocks += [delta.std(axis=1), np.concatenate(segments)]
    return np.concatenate([_block(b) for b in blocks]).astype(np.float32)


def mfcc_frames(y: np.ndarray, sr: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """(frames, 12) float32: MFCC 1-12 of the default recipe (speech band, CMVN) per 8 ms
    frame, each frame L2-normalised so that frames compare by cosine."""
    logmel, _ = _logmel_mfcc(y, SUMMARIES[DEFAULT_AUDIO_MODEL], sr)
    import librosa

    frames = _cmvn(librosa.feature.mfcc(S=logmel, n_mfcc=N_FRAME_MFCC)[1:]).T
    return (frames / np.maximum(np.linalg.norm(frames, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class LibrosaAudioEncoder:
    modality = "audio"

    def __init__(self, spec: str | None = None):
        by_id = {recipe.id: name for name, recipe in SUMMARIES.items()}
        if spec not in (None, *SUMMARIES, *by_id):
            raise MMSearchError(f"unknown audio model {spec!r}: use {' or '.join(SUMMARIES)}")
        self.name = by_id.get(spec or "", spec or DEFAULT_AUDIO_MODEL)  # an id loads its model (older indexes)
        self.recipe = SUMMARIES[self.name]
        self.id = self.recipe.id
        self.dim = self.recipe.dim

    def encode(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        if not clips:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalize(np.stack([audio_features(y, recipe=self.recipe) for y in clips]))
