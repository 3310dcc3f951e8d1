"""Product filters (--category, --brand, --min-price, --max-price, --where), written
once and translated for each place that evaluates them: SQLite for the embedded
backend and the lexical signal, a boolean expression for Milvus.

Both translations must select the same products. Text equality is case-insensitive
for ASCII letters only, as SQLite's NOCASE collation is, so Milvus receives values
folded by ``fold`` (and stores them folded the same way, see backends/milvus.py).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import sound
from .errors import ExitCode, MMSearchError
from .options import parse_pairs

if TYPE_CHECKING:
    from .store import Store

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

    def __post_init__(self) -> None:
        """Bounds that no price can meet are a mistake, not an empty result."""
        for option, bound in (("--min-price", self.min_price), ("--max-price", self.max_price)):
            if bound is not None and not math.isfinite(bound):
                raise MMSearchError(f"{option} {bound}: a price bound is a finite number", ExitCode.USAGE)
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise MMSearchError(
                f"--min-price {self.min_price:g} is above --max-price {self.max_price:g}: no price can be both", ExitCode.USAGE
            )

    @classmethod
    def from_options(
        cls,
        category: str | None = None,
        brand: str | None = None,
        min_price: float | None = None,
        max_price: float | None = None,
        where: Iterable[str] = (),
    ) -> "Filters":
        """Filters from the options of `query` and of the server (``where``: COLUMN=VALUE items)."""
        return cls(category, brand, min_price, max_price, parse_pairs(where, "--where", "gender=Women"))

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
            elif column == sound.COLUMN:  # the clips' tags (or a `sound` attribute)
                values, values_params = sound.values_sql()
                clauses.append(f"id IN (SELECT pid FROM ({values}) WHERE v = ? COLLATE NOCASE)")
                params += values_params
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
            elif column == sound.COLUMN:
                raise MMSearchError(
                    f"--where {column}={value}: sound tags are not in Milvus; filter them with the hnswlib backend "
                    "(`mmsearch index --backend hnswlib`)",
                    ExitCode.USAGE,
                )
            else:
                clauses.append(f"attributes[{_literal(column)}] == {_literal(fold(value))}")
        if self.min_price is not None:
            clauses.append(_price_compare(">=", self.min_price))
        if self.max_price is not None:
            clauses.append(_price_compare("<=", self.max_price))
        return " and ".join(clauses)


def _price_compare(op: str, value: float) -> str:
    """``value`` is finite: bounds are checked when a Filters is made, equality by the caller."""
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


# -- what can be filtered, and why a filter matched nothing ------------------------------
#: values compared when looking for a close one (the most frequent first)
_CLOSE_VALUE_POOL = 5000


def attribute_columns(store: Store) -> list[str]:
    """The attribute columns (CSV columns beyond the core fields) some product has a value in."""
    rows = store.db.execute("SELECT DISTINCT j.key FROM products, json_each(products.attributes) AS j ORDER BY j.key")
    return [key for (key,) in rows]


def filterable_columns(store: Store) -> list[str]:
    """The core fields, the attribute columns, and ``sound`` once some clip is tagged."""
    columns = [*CORE_COLUMNS, *attribute_columns(store)]
    return columns + [sound.COLUMN] if sound.COLUMN not in columns and sound.has_tags(store.db) else columns


def did_you_mean(name: str, names: list[str]) -> str:
    """" (did you mean 'x'?)" for a name that differs from a known one by case or a typo."""
    same_case = [n for n in names if n.lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _values(column: str) -> tuple[str, list[Any]]:
    """SQL of (pid, v) rows: each product's value of ``column`` as ``Filters.sql``
    compares it (a product has several sound tags)."""
    if column in CORE_COLUMNS:
        return f"SELECT id AS pid, {column} AS v FROM products", []
    if column == sound.COLUMN:
        return sound.values_sql()
    return "SELECT id AS pid, json_extract(attributes, ?) AS v FROM products", [f'$."{column}"']


def common_values(store: Store, column: str, limit: int) -> list[tuple[Any, int]]:
    """The ``limit`` most frequent non-empty values of ``column`` (case folded as NOCASE
    compares them) with their product counts."""
    values, params = _values(column)
    sql = (
        f"SELECT v, count(*) AS n FROM ({values}) WHERE v IS NOT NULL AND v != '' "
        "GROUP BY v COLLATE NOCASE ORDER BY n DESC, v LIMIT ?"
    )
    return [(v, n) for v, n in store.db.execute(sql, [*params, limit])]


def column_summary(store: Store, examples: int = 3) -> dict[str, dict[str, Any]]:
    """Per filterable column: how many distinct values it has and the most frequent few
    (value, products); price also gets its range. Shown by `mmsearch status`."""
    out: dict[str, dict[str, Any]] = {}
    for column in filterable_columns(store):
        values, params = _values(column)
        distinct = store.db.execute(f"SELECT count(DISTINCT v COLLATE NOCASE) FROM ({values}) WHERE v != ''", params).fetchone()[0]
        out[column] = {"distinct": distinct, "examples": [list(pair) for pair in common_values(store, column, examples)]}
    low, high = store.db.execute("SELECT min(price), max(price) FROM products").fetchone()
    out["price"] |= {"min": low, "max": high}
    return out


def _count(store: Store, filters: Filters) -> int:
    if filters.is_empty():
        return store.db.execute("SELECT count(*) FROM products").fetchone()[0]
    clause, params = filters.sql()
    return store.db.execute(f"SELECT count(*) FROM products WHERE {clause}", params).fetchone()[0]


def _option(column: str, value: str) -> str:
    return f"--{column} {value!r}" if column in ("category", "brand") else f"--where {column}={value}"


def check_filters(store: Store, filters: Filters) -> None:
    """Raise a usage error for a filter that can never match: a column no product has
    (a wrong-case name included) or a value no product has in that column. Called once
    the filters have selected nothing, so a query that finds products pays nothing.

    `mmsearch query` calls it; the library's search just returns no results, as it does
    for any filter that matches nothing."""
    columns = filterable_columns(store)
    for column, value in filters._equalities():
        if column not in columns:
            raise MMSearchError(
                f"--where {column}={value}: unknown column {column!r}{did_you_mean(column, columns)}; "
                f"filterable columns: {', '.join(columns)}",
                ExitCode.USAGE,
            )
        if column == "price":
            try:
                float(value)
            except ValueError:
                raise MMSearchError(f"--where price={value}: {value!r} is not a number", ExitCode.USAGE) from None
        if _count(store, Filters(where={column: value})):
            continue
        pool = [str(v) for v, _ in common_values(store, column, _CLOSE_VALUE_POOL)]
        by_fold = {fold(v): v for v in pool}
        close = [by_fold[v] for v in difflib.get_close_matches(fold(value), list(by_fold), n=3, cutoff=0.6)]
        hint = f"did you mean {', '.join(close)}?" if close else f"values include {', '.join(pool[:5])}"
        raise MMSearchError(
            f"{_option(column, value)}: no product has {column} {value!r}; {hint} (see `mmsearch status`)",
            ExitCode.USAGE,
        )


def no_match_hint(store: Store, filters: Filters) -> str:
    """Why a filtered query came back empty although every filter value exists: how many
    products each filter selects alone, or that the query reaches none of those selected."""
    together = _count(store, filters)
    if together:
        return f"{together} products pass the filters, but the query reaches none of them (try another query or --modality)"
    alone = [f"{column}={value}: {_count(store, Filters(where={column: value}))}" for column, value in filters._equalities()]
    if filters.min_price is not None or filters.max_price is not None:
        low, high = filters.min_price, filters.max_price
        label = f"price >= {low:g}" if high is None else f"price <= {high:g}" if low is None else f"price {low:g} to {high:g}"
        alone.append(f"{label}: {_count(store, Filters(min_price=low, max_price=high))}")
    return f"no product matches the filters together (products per filter: {'; '.join(alone)})"
