"""How similar a query phrase and a catalog value must be to count as one another's
translation (mmsearch/crosslingual.py's MIN_SIMILARITY), chosen on the **train** split:
`python -m benchmarks.crosslingual_tuning [--queries N]`.

Catalogs and queries are built as benchmarks/chinese.py builds them for dev, here from
the train products whose values benchmarks/glossary_zh.py translates. For each floor,
the values the translator finds in Chinese queries (against the English catalog's
values) and in English queries (against the Chinese catalog's) are compared with the
values the query was made from (article type, colour, gender, usage): precision, recall
and F1. Writes benchmarks/results/crosslingual_tuning.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from pathlib import Path
from typing import Any

from mmsearch.crosslingual import MIN_SIMILARITY, Translator, translatable
from mmsearch.encoders import MULTILINGUAL_TEXT_MODEL, load_encoder
from mmsearch.understanding import Value, _stopwords

from . import datasets, glossary_zh
from .chinese import zh_catalog, zh_query
from .run import DEFAULT_DATA, RESULTS, machine

FLOORS = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
#: catalog column -> the attribute a query was made from
TRUTH = {"category": 0, "baseColour": 1, "gender": 2, "usage": 3}
COLUMNS = ("category", "gender", "baseColour", "usage", "season", "masterCategory", "subCategory")


def values_of(catalog: list[dict[str, str]]) -> list[Value]:
    counts: dict[tuple[str, str], int] = {}
    for row in catalog:
        for column in COLUMNS:
            if row[column]:
                counts[(column, row[column])] = counts.get((column, row[column]), 0) + 1
    return [Value(column, value, n) for (column, value), n in sorted(counts.items())]


def scores(found: list[list[tuple[str, str]]], truth: list[set[tuple[str, str]]]) -> dict[str, float]:
    correct = sum(len(set(f) & t) for f, t in zip(found, truth))
    named = sum(len(f) for f in found)
    wanted = sum(len(t) for t in truth)
    precision, recall = correct / max(named, 1), correct / max(wanted, 1)
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / max(precision + recall, 1e-9)}


def run(data: Path, n: int) -> dict[str, Any]:
    rows = list(csv.DictReader(open(data / "myntra" / "products.csv", encoding="utf-8")))
    train = [r for r in datasets.only_allowed(rows, ["train"]) if not glossary_zh.missing([r])]
    en = datasets.myntra_catalog(train)
    zh = zh_catalog(en)
    sets = {
        "zh→en": (datasets.attribute_queries(train, n=n, seed=1, phrase=zh_query), en),
        "en→zh": (datasets.attribute_queries(train, n=n, seed=1), zh),
    }
    combos = sorted({tuple(r[a] for a in datasets.ATTRIBUTES) for r in train if r["articleType"] and r["baseColour"]})
    random.Random(1).shuffle(combos)  # attribute_queries' sample: the values each query was made from
    encoder = load_encoder("text", MULTILINGUAL_TEXT_MODEL)
    out: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "products": len(train), "queries": n, "floors": {}}
    for name, (queries, catalog) in sets.items():
        values = values_of(catalog)
        translator = Translator(values, encoder.encode([v.value for v in translatable(values)]), encoder.id)
        translator.load_encoder = lambda: encoder
        truth = []
        for combo in combos[:n]:
            wanted = {(column, combo[i]) for column, i in TRUTH.items() if combo[i]}
            if catalog is zh:
                wanted = {(column, glossary_zh.COLUMNS[column][value]) for column, value in wanted}
            truth.append({pair for pair in wanted if pair[1]})
        for floor in FLOORS:
            found = [[(v.column, v.value) for _, v, _ in translator.find(q["text"], _stopwords(), floor)] for q in queries.queries]
            out["floors"].setdefault(str(floor), {})[name] = scores(found, truth)
    return out


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Cross-lingual value matching: the similarity floor (train split)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}. Started {results['started']}. "
        "Command: `python -m benchmarks.crosslingual_tuning`.",
        f"{results['queries']} attribute queries over {results['products']} train products, in Chinese against the English "
        "catalog's values and in English against the Chinese catalog's; a value counts as right when it is one the query was made from.",
        "",
        "| floor | zh→en precision | recall | F1 | en→zh precision | recall | F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for floor, by_set in results["floors"].items():
        cells = [f"{by_set[s]['precision']:.3f} | {by_set[s]['recall']:.3f} | {by_set[s]['f1']:.3f}" for s in ("zh→en", "en→zh")]
        lines.append(f"| {floor} | {' | '.join(cells)} |")
    lines += ["", f"mmsearch uses {MIN_SIMILARITY} (crosslingual.MIN_SIMILARITY): the best mean F1 of the two directions."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args(argv)
    results = run(args.data, args.queries)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "crosslingual_tuning.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    (RESULTS / "crosslingual_tuning.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
