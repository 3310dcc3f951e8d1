"""Values of repeatable NAME=VALUE options (--map, --where, --weight, --fail-under),
parsed in one place so that every option reports a mistake the same way: one line
naming the option and the item, exit code 2."""

from __future__ import annotations

from collections.abc import Iterable

from .errors import ExitCode, MMSearchError


def parse_pairs(items: Iterable[str], option: str, example: str, shape: str = "NAME=VALUE") -> dict[str, str]:
    """{NAME: VALUE} from ``items`` (names and values stripped; a later NAME wins).
    ``shape`` (e.g. METRIC=VALUE) and ``example`` (a correct item) are shown in the error."""
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise MMSearchError(f"{option} {item!r}: expected {shape}, e.g. {option} {example}", ExitCode.USAGE)
        pairs[name.strip()] = value.strip()
    return pairs
