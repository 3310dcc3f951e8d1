"""Query understanding: what a text query says beyond its words.

- Catalog values named in the query ("grey", "sports shoes", "Puma", "女士") are values of
  the store's filterable columns (category, brand, attribute columns). Each becomes
  evidence for the products carrying it: the ``attributes`` signal scores a product by
  the share of the understood values it carries, weighted by how rare each value is.
- Values named in another language ("灰色领带" on an English catalog: Grey, Ties) are
  found by meaning (crosslingual.py); their words also join the BM25 query.
- Price phrases ("under 50", "below $20", "between 10 and 30", "10-30 dollars",
  "50元以下") become price bounds, and the phrase is removed from the text the other
  signals see. They are only understood in a catalog that has prices.

The vocabulary (every value with its product count) is computed at index time and kept
with the BM25 part (``lexical/vocabulary.json``): reading it from SQLite costs about
250 ms per query on a 26k-product catalog.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .crosslingual import Translator
    from .store import Store

VOCABULARY = "vocabulary.json"
_CORE = ("category", "brand")  # the core columns values are read from
#: a value longer than this many words is free text, not a value a shopper names
MAX_VALUE_WORDS = 4
#: a column with more distinct values than this share of its products is an identifier
MAX_DISTINCT_SHARE = 0.5

_WORD = re.compile(r"[^\W_]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


# -- vocabulary ---------------------------------------------------------------------
def catalog_vocabulary(store: Store) -> dict[str, Any]:
    """{"products": N, "values": [[column, value, products], ...]}: the values of the
    category, brand and attribute columns (case folded as filters compare them), without
    numbers, free text or identifier-like columns. One SQL statement."""
    sql = (
        "SELECT 'category', category, count(*) FROM products WHERE category != '' GROUP BY category COLLATE NOCASE "
        "UNION ALL SELECT 'brand', brand, count(*) FROM products WHERE brand != '' GROUP BY brand COLLATE NOCASE "
        "UNION ALL SELECT j.key, j.value, count(*) FROM products, json_each(products.attributes) AS j "
        "WHERE j.type = 'text' AND j.value != '' GROUP BY j.key, j.value COLLATE NOCASE"
    )
    rows = [(c, v, n) for c, v, n in store.db.execute(sql) if v is not None]
    products = store.db.execute("SELECT count(*) FROM products").fetchone()[0]
    per_column: dict[str, list[tuple[str, int]]] = {}
    for column, value, count in rows:
        per_column.setdefault(column, []).append((value, count))
    values = []
    for column, found in per_column.items():
        if len(found) > 20 and len(found) > MAX_DISTINCT_SHARE * sum(n for _, n in found):
            continue  # an id, a SKU or free text: not a value to name
        values += [[column, v, n] for v, n in found if _nameable(v)]
    return {"products": products, "values": sorted(values, key=lambda r: (r[0], r[1]))}


def _nameable(value: str) -> bool:
    words = _WORD.findall(value)
    return bool(words) and len(words) <= MAX_VALUE_WORDS and not all(w.isdigit() for w in words)


@cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@cache
def _stem(word: str) -> str:
    from .lexical import _stemmer

    return _stemmer().stemWord(word)


def _terms(text: str) -> list[tuple[str, int, int]]:
    """(stemmed word, start, end) of every non-stop word. Unlike BM25, one-letter words
    are kept: "T-Shirts" is not "Shirts"."""
    return [(_stem(m.group().lower()), m.start(), m.end()) for m in _WORD.finditer(text) if m.group().lower() not in _stopwords()]


@dataclass
class Value:
    column: str
    value: str
    products: int


class Vocabulary:
    """Catalog values by their stemmed words, ready to be found in queries."""

    def __init__(self, data: dict[str, Any]):
        self.products: int = max(int(data.get("products", 0)), 1)
        self.values = [Value(column, value, count) for column, value, count in data.get("values", [])]
        self.by_terms: dict[tuple[str, ...], Value] = {}
        self.cjk: dict[str, Value] = {}
        #: finds values named in another language; set by the index part that saved their vectors
        self.translator: Translator | None = None
        for found in self.values:
            if _CJK.search(found.value):
                key = found.value.lower()
                if key not in self.cjk or found.products > self.cjk[key].products:
                    self.cjk[key] = found
                continue
            terms = tuple(t for t, _, _ in _terms(found.value))
            if len("".join(terms)) < 2:
                continue  # brand "W": not a word a query names
            # a word naming values in several columns means the most common one ("red":
            # the colour of 2,000 products, not the brand of 40)
            if terms and (terms not in self.by_terms or found.products > self.by_terms[terms].products):
                self.by_terms[terms] = found
        self.longest = max((len(t) for t in self.by_terms), default=0)

    def find(self, text: str) -> list[tuple[str, Value]]:
        """(phrase as written, value) for each value the text names; the longest match
        wins ("sports shoes" is the category, not usage "sports" plus "shoes")."""
        terms = _terms(text)
        found, i = [], 0
        while i < len(terms):
            for size in range(min(self.longest, len(terms) - i), 0, -1):
                value = self.by_terms.get(tuple(t for t, _, _ in terms[i : i + size]))
                if value is not None:
                    found.append((text[terms[i][1] : terms[i + size - 1][2]], value))
                    i += size
                    break
            else:
                i += 1
        lowered = text.lower()
        found += [(key, value) for key, value in self.cjk.items() if key in lowered]
        return found

    def translate(self, text: str) -> list[tuple[str, Value, float]]:
        """(phrase, value, similarity) for each value the text names in another language."""
        return self.translator.find(text, _stopwords()) if self.translator else []

    def weight(self, value: Value) -> float:
        """Rarer values are stronger evidence: log(1 + products / products carrying it)."""
        return math.log1p(self.products / max(value.products, 1))


# -- price phrases ------------------------------------------------------------------
_NUM = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"  # 1,000.50 or 1000.5
_CUR = r"(?:[$€£¥]|usd|eur|rs\.?|inr|rmb)"
_UNIT = r"(?:\s*(?:dollars?|bucks|usd|euros?|eur|pounds?|rupees?|rs|inr|yuan|rmb|元|块))"
_AMOUNT = rf"{_CUR}?\s*{_NUM}{_UNIT}?"
_PRICE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\bbetween\s+{_AMOUNT}\s+(?:and|to|-)\s+{_AMOUNT}", re.I), "range"),
    (re.compile(rf"\bfrom\s+{_AMOUNT}\s+to\s+{_AMOUNT}", re.I), "range"),
    (re.compile(rf"(?<![\w.]){_CUR}\s*{_NUM}\s*(?:-|–|to)\s*{_CUR}?\s*{_NUM}{_UNIT}?", re.I), "range"),
    (re.compile(rf"(?<![\w.]){_NUM}\s*(?:-|–|to)\s*{_NUM}{_UNIT}", re.I), "range"),
    (re.compile(rf"(?:\b(?:under|below|less\s+than|cheaper\s+than|up\s*to|at\s+most|max(?:imum)?|within)|<=?)\s*{_AMOUNT}", re.I), "max"),
    (re.compile(rf"(?:\b(?:over|above|more\s+than|at\s+least|min(?:imum)?)|>=?)\s*{_AMOUNT}", re.I), "min"),
    (re.compile(rf"[$¥]?\s*{_NUM}\s*(?:元|块|美元|dollars?)?\s*(?:以下|以内|之内)"), "max"),
    (re.compile(rf"(?:低于|少于|不超过|小于){_NUM}\s*(?:元|块)?"), "max"),
    (re.compile(rf"[$¥]?\s*{_NUM}\s*(?:元|块|美元|dollars?)?\s*以上"), "min"),
    (re.compile(rf"(?:高于|超过|大于){_NUM}\s*(?:元|块)?"), "min"),
    (re.compile(rf"[$¥]?\s*{_NUM}\s*(?:-|–|到|至)\s*{_NUM}\s*(?:元|块)"), "range"),
]


@dataclass
class PriceFilter:
    phrase: str
    min: float | None = None
    max: float | None = None
    applied: bool = True  # False when --min-price/--max-price were given: they win


def find_price(text: str) -> tuple[PriceFilter | None, str]:
    """The first price phrase in ``text`` and the text without it."""
    for pattern, kind in _PRICE_PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        numbers = [float(g.replace(",", "")) for g in match.groups() if g is not None]
        if not all(math.isfinite(n) for n in numbers):
            continue  # 400 digits: not a price anyone means
        if kind == "range":
            low, high = sorted(numbers[:2])
            found = PriceFilter(match.group().strip(), low, high)
        else:
            found = PriceFilter(match.group().strip(), **{kind: numbers[0]})
        rest = " ".join((text[: match.start()] + " " + text[match.end() :]).split())
        return found, rest
    return None, text


# -- the whole understanding of one query -------------------------------------------
@dataclass
class Understanding:
    text: str  # as the user wrote it
    rest: str  # what the other signals are given (the price phrase removed)
    #: phrase, column, value, products, weight; and similarity, for a value named in another language
    values: list[dict[str, Any]] = field(default_factory=list)
    price: PriceFilter | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "price": asdict(self.price) if self.price else None}

    @property
    def translation(self) -> str:
        """The values named in another language, as the catalog writes them: words the
        BM25 query also searches for."""
        return " ".join(v["value"] for v in self.values if "similarity" in v)

    def score(self, row: Any) -> float:
        """The share (by weight) of the understood columns whose value the catalog row
        carries. Values of one column are alternatives, as a product has one colour:
        "grey 灰色" on a bilingual catalog is one column, carried by Grey or by 灰色."""
        wanted: dict[str, tuple[float, set[str]]] = {}
        for v in self.values:
            weight, accepted = wanted.get(v["column"], (0.0, set()))
            wanted[v["column"]] = (max(weight, v["weight"]), accepted | {v["value"].lower()})
        total = sum(weight for weight, _ in wanted.values())
        if not total:
            return 0.0
        attributes = json.loads(row["attributes"] or "{}") if any(column not in _CORE for column in wanted) else {}
        carried = sum(
            weight for column, (weight, accepted) in wanted.items() if str((row[column] if column in _CORE else attributes.get(column)) or "").lower() in accepted
        )
        return carried / total


def understand(text: str, vocabulary: Vocabulary | None, has_prices: Callable[[], bool]) -> Understanding:
    """Find catalog values (when given a ``vocabulary``) and a price phrase in ``text``;
    a price phrase is left as words in a catalog without prices. A query that is nothing
    but a price phrase keeps its text for the other signals."""
    price, rest = find_price(text)
    if price is not None and not has_prices():
        price, rest = None, text
    if price is not None and not _terms(rest):
        rest = text
    if vocabulary is None:
        return Understanding(text, rest, [], price)
    values = [{"phrase": phrase, **asdict(v), "weight": round(vocabulary.weight(v), 4)} for phrase, v in vocabulary.find(rest)]
    values += [
        {"phrase": phrase, **asdict(v), "weight": round(vocabulary.weight(v), 4), "similarity": similarity}
        for phrase, v, similarity in vocabulary.translate(rest)
    ]
    return Understanding(text, rest, values, price)
