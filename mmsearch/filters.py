"""Product filters (--category, --brand, --min-price, --max-price, --where), written
once and translated for each place that evaluates them: SQLite for the embedded
backend and the lexical signal, a boolean expression for Milvus.

Both translations must select the same products. Text equality is case-insensitive
for ASCII letters only, as SQLite's NOCASE collation is, so Milvus receives values
folded by ``fold`` (and stores them folded the same way, see backends/milvus.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import MMSearchError

CORE_COLUMNS = ("id", "title", "description", "category", "brand", "price")
#: Core text columns Milvus keeps in the JSON field ``core`` (category and brand are
#: scalar fields of their own; price is a number).
MILVUS_CORE_JSON = ("id", "title", "description")

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(value: str) -> str:
    """Lower-case ASCII letters only: SQLite's NOCASE, so both backends agree."""
    return value.translate(_ASCII_LOWER)


def _literal(value: str) -> str:
    """A Milvus expression string literal (JSON escaping is what Milvus parses)."""
    return json.dumps(value, ensure_ascii=False)


@dataclass
class Filters:
    category: str | None = None
    brand: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    where: dict[str, str] = field(default_factory=dict)

    def _equalities(self) -> list[tuple[str, str]]:
        return [(c, v) for c, v in (("category", self.category), ("brand", self.brand), *self.where.items()) if v is not None]

    def is_empty(self) -> bool:
        return not self._equalities() and self.min_price is None and self.max_price is None

    def sql(self) -> tuple[str, list[Any]]:
        """A WHERE clause over ``products`` (case-insensitive equality for text)."""
        clauses, params = [], []
        for column, value in self._equalities():
            if column in CORE_COLUMNS:
                clauses.append(f"{column} = ? COLLATE NOCASE")
            else:
                clauses.append("json_extract(attributes, ?) = ? COLLATE NOCASE")
                params.append(f'$."{column}"')
            params.append(value)
        if self.min_price is not None:
            clauses.append("price >= ?")
            params.append(self.min_price)
        if self.max_price is not None:
            clauses.append("price <= ?")
            params.append(self.max_price)
        return " AND ".join(clauses), params

    def milvus(self) -> str:
        """The same filter as a Milvus boolean expression over the fields that
        backends/milvus.py writes (category, brand, price, has_price, core, attributes)."""
        clauses = []
        for column, value in self._equalities():
            if column in ("category", "brand"):
                clauses.append(f"{column} == {_literal(fold(value))}")
            elif column == "price":
                clauses.append(_price_equals(value))
            elif column in MILVUS_CORE_JSON:
                clauses.append(f"core[{_literal(column)}] == {_literal(fold(value))}")
            else:
                clauses.append(f"attributes[{_literal(column)}] == {_literal(fold(value))}")
        if self.min_price is not None:
            clauses.append(_price_compare(">=", self.min_price))
        if self.max_price is not None:
            clauses.append(_price_compare("<=", self.max_price))
        return " and ".join(clauses)


def _price_compare(op: str, value: float) -> str:
    if not math.isfinite(value):
        raise MMSearchError(f"price bound {value} is not a finite number")
    return f"(has_price == true and price {op} {float(value)!r})"


def _price_equals(value: str) -> str:
    """``--where price=10``: SQLite compares the text as a number; a non-number matches nothing."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        return "(has_price == true and has_price == false)"
    return _price_compare("==", number)
