"""Vector index backends. A backend builds an index from vectors whose labels are
0..n-1, saves and loads it, and answers k-nearest-neighbour queries by cosine
similarity, optionally restricted to a set of allowed labels."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class VectorIndex(Protocol):
    backend: str

    def save(self, path: Path) -> None: ...

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(labels, cosine similarities) of the k labels nearest to one query vector,
        best first; ``allowed`` restricts the labels considered."""
        ...

    def vectors(self, labels: np.ndarray) -> np.ndarray:
        """The stored (normalised) vectors of ``labels``."""
        ...
