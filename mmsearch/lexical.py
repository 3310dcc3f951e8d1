"""Lexical search: BM25 over each product's text (bm25s, English stop words, Snowball
stemming so that "mugs" finds "mug")."""

from __future__ import annotations

from pathlib import Path

import bm25s
import numpy as np
import Stemmer

_STEMMER = Stemmer.Stemmer("english")


class LexicalIndex:
    def __init__(self, retriever: bm25s.BM25):
        self.retriever = retriever

    @classmethod
    def build(cls, texts: list[str]) -> "LexicalIndex":
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, show_progress=False)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        self.retriever.save(str(folder))

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex":
        return cls(bm25s.BM25.load(str(folder), allow_pickle=False))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document, in index order (0 where no term matches)."""
        tokens = bm25s.tokenize(
            [query], stopwords="en", stemmer=_STEMMER, show_progress=False, return_ids=False
        )[0]
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)
