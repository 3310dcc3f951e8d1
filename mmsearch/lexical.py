"""Lexical search: BM25 over each product's text (bm25s, English stop words, Snowball
stemming so that "mugs" finds "mug")."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import bm25s


#: the one term of a catalog that has none (no tokenized query contains a NUL)
NO_TERMS = "\x00"


@cache
def _bm25s() -> Any:
    """bm25s, imported when a lexical index is built or loaded: it pulls in scipy and
    numba, which commands that never touch BM25 should not pay for."""
    import bm25s

    return bm25s


@cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


class LexicalIndex:
    def __init__(self, retriever: bm25s.BM25):
        self.retriever = retriever

    @classmethod
    def build(cls, texts: list[str]) -> "LexicalIndex":
        bm25s = _bm25s()
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), show_progress=False)
        if texts and not tokens.vocab:
            # Not one term in the whole catalog (ids only, titles of stop words): bm25s
            # cannot index that, so the first text gets a term no query can contain.
            tokens = [[NO_TERMS], *([] for _ in texts[1:])]
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        self.retriever.save(str(folder))

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex":
        return cls(_bm25s().BM25.load(str(folder), allow_pickle=False))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document, in index order (0 where no term matches). A query
        with no terms (stop words, one character, punctuation) scores 0 everywhere, and the
        other signals answer it: bm25s itself raises IndexError on an empty query."""
        tokens = _bm25s().tokenize([query], stopwords="en", stemmer=_stemmer(), show_progress=False, return_ids=False)[0]
        if not tokens:
            return np.zeros(int(self.retriever.scores["num_docs"]), dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)
