"""Eval-set builders: turn the real data in ../shared/data into mmsearch catalogs,
queries and graded qrels. Pure functions over rows, so they are tested on tiny slices.

Only the ``train`` and ``dev`` splits are ever read: ``test`` is held out.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ALLOWED_SPLITS = ("train", "dev")
ATTRIBUTES = ("articleType", "baseColour", "gender", "usage")
GENDER_WORDS = {"Men": "men", "Women": "women", "Boys": "boys", "Girls": "girls", "Unisex": "unisex"}
CATALOG_COLUMNS = ["id", "title", "category", "brand", "image", "gender", "baseColour", "usage", "season", "masterCategory", "subCategory"]


@dataclass
class EvalSet:
    """queries.csv and qrels.csv rows for one protocol."""

    name: str
    queries: list[dict[str, str]]
    qrels: list[tuple[str, str, int]]


def only_allowed(rows: Iterable[dict[str, str]], splits: Iterable[str]) -> list[dict[str, str]]:
    splits = set(splits)
    if not splits <= set(ALLOWED_SPLITS):
        raise ValueError(f"splits {sorted(splits)}: only {ALLOWED_SPLITS} may be used; test is held out")
    return [r for r in rows if r["split"] in splits]


def myntra_catalog(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Catalog rows: category = articleType; brand = the title's first word (Myntra
    titles start with the brand; there is no brand column); the rest are attributes."""
    return [
        {
            "id": r["id"],
            "title": r["title"],
            "category": r["articleType"],
            "brand": r["title"].split()[0] if r["title"] else "",
            "image": r["image"],
            "gender": r["gender"],
            "baseColour": r["baseColour"],
            "usage": r["usage"],
            "season": r["season"],
            "masterCategory": r["masterCategory"],
            "subCategory": r["subCategory"],
        }
        for r in rows
    ]


def attribute_query(article: str, colour: str, gender: str, usage: str) -> str:
    """"casual black handbags for women": usage, colour, article type, gender."""
    words = [usage.lower() if usage else "", colour.lower(), article.lower()]
    text = " ".join(w for w in words if w)
    return f"{text} for {GENDER_WORDS[gender]}" if gender in GENDER_WORDS else text


def attribute_queries(
    rows: list[dict[str, str]], n: int, seed: int = 0, phrase: Callable[[str, str, str, str], str] = attribute_query
) -> EvalSet:
    """Text -> product. Queries are distinct (articleType, colour, gender, usage)
    combinations of catalog products, sampled with a seed, each worded by ``phrase``
    (another language's wording keeps the same sample and grades). A product is relevant
    only if its articleType matches; its grade is the number of the four attributes that
    match (1 = article type only ... 4 = all four)."""
    combos = sorted({tuple(r[a] for a in ATTRIBUTES) for r in rows if r["articleType"] and r["baseColour"]})
    random.Random(seed).shuffle(combos)
    queries, qrels = [], []
    by_article: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_article.setdefault(r["articleType"], []).append(r)
    for i, combo in enumerate(combos[:n]):
        qid = f"attr{i:04d}"
        queries.append({"query_id": qid, "text": phrase(*combo)})
        for r in by_article[combo[0]]:
            grade = sum(r[a] == v for a, v in zip(ATTRIBUTES, combo))
            qrels.append((qid, r["id"], grade))
    return EvalSet("attributes", queries, qrels)


def known_item_queries(rows: list[dict[str, str]]) -> EvalSet:
    """Text -> image known item: the title is the query, only that product is relevant."""
    queries = [{"query_id": f"ki{r['id']}", "text": r["title"]} for r in rows if r["title"]]
    return EvalSet("known_item", queries, [(q["query_id"], q["query_id"][2:], 1) for q in queries])


def photo_queries(rows: list[dict[str, str]], photo_root: Path) -> tuple[EvalSet, EvalSet]:
    """Image -> product: a product's 512-px photo against a store of 60x80 thumbnails.
    Exact: the product itself is relevant. Category: every other product of the same
    articleType is relevant (grade 1) and the product itself is listed with grade 0, so
    finding it neither helps nor hurts."""
    with_photo = [r for r in rows if r["photo"]]
    queries = [{"query_id": f"ph{r['id']}", "image": str(photo_root / r["photo"])} for r in with_photo]
    exact = [(f"ph{r['id']}", r["id"], 1) for r in with_photo]
    by_article: dict[str, list[str]] = {}
    for r in rows:
        by_article.setdefault(r["articleType"], []).append(r["id"])
    category = [
        (f"ph{r['id']}", other, 0 if other == r["id"] else 1) for r in with_photo for other in by_article[r["articleType"]]
    ]
    return EvalSet("photo_exact", queries, exact), EvalSet("photo_category", queries, category)


def _fsdd_row(c: dict[str, str]) -> dict[str, str]:
    return {"id": c["file"].rsplit("/", 1)[-1].removesuffix(".wav"), "title": f"recording by {c['speaker']}", "audio": c["file"], "speaker": c["speaker"], "digit": c["digit"]}


def _fsdd_queries(clips: list[dict[str, str]], speaker: str, takes_per_digit: int) -> list[dict[str, str]]:
    """The speaker's first ``takes_per_digit`` takes of each digit."""
    mine = sorted((c for c in clips if c["speaker"] == speaker), key=lambda c: (int(c["digit"]), int(c["take"])))
    per_digit: dict[str, list[dict[str, str]]] = {}
    for c in mine:
        per_digit.setdefault(c["digit"], []).append(c)
    return [c for _, takes in sorted(per_digit.items()) for c in takes[:takes_per_digit]]


def _fsdd_set(name: str, asked: list[dict[str, str]], catalog: list[dict[str, str]], root: Path) -> EvalSet:
    queries, qrels = [], []
    for c in asked:
        qid = f"{c['speaker']}-{c['digit']}-{c['take']}"
        queries.append({"query_id": qid, "audio": str(root / c["file"]), "modality": "audio"})
        qrels += [(qid, p["id"], 1) for p in catalog if p["digit"] == c["digit"]]
    return EvalSet(name, queries, qrels)


def fsdd_speaker_split(
    clips: list[dict[str, str]], speaker: str, root: Path, takes_per_digit: int = 10
) -> tuple[list[dict[str, str]], EvalSet]:
    """Audio -> audio for one query speaker: the catalog is every other speaker's clips;
    the queries are ``takes_per_digit`` of this speaker's clips per digit; relevant =
    catalog clips of the same digit. The title carries no digit, so only audio can match."""
    catalog = [_fsdd_row(c) for c in clips if c["speaker"] != speaker]
    return catalog, _fsdd_set(f"fsdd_{speaker}", _fsdd_queries(clips, speaker, takes_per_digit), catalog, root)


def fsdd_same_speaker_split(
    clips: list[dict[str, str]], speaker: str, root: Path, takes_per_digit: int = 10
) -> tuple[list[dict[str, str]], EvalSet]:
    """Audio -> audio within one speaker: the same queries as ``fsdd_speaker_split``; the
    catalog is this speaker's other takes; relevant = the catalog takes of the same digit."""
    asked = _fsdd_queries(clips, speaker, takes_per_digit)
    files = {c["file"] for c in asked}
    catalog = [_fsdd_row(c) for c in clips if c["speaker"] == speaker and c["file"] not in files]
    return catalog, _fsdd_set(f"fsdd_same_{speaker}", asked, catalog, root)


# -- free shopper phrasing -----------------------------------------------------------
#: what a shopper types for an article type, beside its catalog name (synonyms, singular)
ARTICLE_WORDS = {
    "Tshirts": ["t-shirt", "tee", "tshirt"], "Shirts": ["shirt"], "Casual Shoes": ["sneakers", "casual shoe"],
    "Watches": ["watch", "wrist watch"], "Sports Shoes": ["running shoes", "trainers", "sport shoe"],
    "Kurtas": ["kurta"], "Tops": ["top"], "Handbags": ["handbag", "purse", "hand bag"], "Heels": ["high heels", "heel"],
    "Sunglasses": ["shades", "sunglass"], "Flip Flops": ["flipflops", "slippers", "flip flop"],
    "Sandals": ["sandal"], "Wallets": ["wallet"], "Briefs": ["underwear", "brief"], "Belts": ["belt"],
    "Backpacks": ["backpack", "rucksack"], "Formal Shoes": ["formal shoe", "office shoes"], "Socks": ["sock"],
    "Perfume and Body Mist": ["perfume", "fragrance", "body mist"], "Trousers": ["pants", "trouser"],
    "Earrings": ["earring", "ear rings"], "Flats": ["flat shoes", "ballerinas"], "Shorts": ["short pants"],
    "Jeans": ["denim jeans", "denims"], "Dresses": ["dress", "frock"], "Jackets": ["jacket"],
    "Track Pants": ["joggers", "trackpants", "track pant"], "Sweatshirts": ["sweatshirt"], "Caps": ["cap", "hat"],
    "Clutches": ["clutch"], "Sweaters": ["sweater", "pullover"], "Ties": ["tie", "necktie"],
}
COLOUR_WORDS = {"Grey": ["gray"], "Navy Blue": ["navy", "dark blue"], "Multi": ["multicolor", "multicoloured"],
                "Off White": ["offwhite", "ivory"], "Grey Melange": ["grey marl"], "Silver": ["silver"]}
GENDER_PHRASES = {"Men": ["men's", "mens", "for men", "for him", "male"], "Women": ["women's", "ladies", "for women", "for her", "womens"],
                  "Boys": ["boys", "for boys", "kids"], "Girls": ["girls", "for girls", "kids"], "Unisex": ["unisex"]}


def misspell(word: str, rng: random.Random) -> str:
    """One typo: two neighbouring letters swapped, or one letter dropped or doubled."""
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("swap", "drop", "double"))
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + word[i + 1:] if kind == "drop" else word[:i] + word[i] + word[i:]


def natural_query(row: dict[str, str], rng: random.Random) -> tuple[str, set[str]]:
    """A shopper's phrasing of a product's type with some of its colour, gender and
    brand: a synonym or singular for the type half the time, the brand a third of the
    time, a free word order, and a typo in one word in four queries. Returns the text
    and the attributes it names (besides the article type, always named)."""
    article = row["articleType"]
    named = set()
    parts = [rng.choice([article.lower(), *ARTICLE_WORDS.get(article, [])]) if rng.random() < 0.5 or article not in ARTICLE_WORDS else rng.choice(ARTICLE_WORDS[article])]
    if row["baseColour"] and rng.random() < 0.7:
        parts.insert(0, rng.choice([row["baseColour"].lower(), *COLOUR_WORDS.get(row["baseColour"], [])]))
        named.add("baseColour")
    if row["title"] and rng.random() < 0.35:
        parts.insert(0, row["title"].split()[0].lower())
        named.add("brand")
    gender = GENDER_PHRASES.get(row["gender"])
    if gender and rng.random() < 0.6:
        phrase = rng.choice(gender)
        parts.append(phrase) if phrase.startswith("for ") or rng.random() < 0.5 else parts.insert(0, phrase)
        named.add("gender")
    words = " ".join(parts).split()
    if len(words) > 2 and rng.random() < 0.2:  # another word order
        rng.shuffle(words)
    if rng.random() < 0.25:
        i = rng.randrange(len(words))
        words[i] = misspell(words[i], rng)
    return " ".join(words), named


def natural_queries(rows: list[dict[str, str]], n: int, seed: int = 0) -> EvalSet:
    """Text -> product in free shopper phrasing (see natural_query), one query per
    sampled product. Relevance as for attribute queries: a product is relevant only if
    its articleType matches; its grade is 1 plus the number of the other attributes the
    query names (colour, gender, brand) that it matches."""
    rng = random.Random(seed)
    pool = [r for r in rows if r["articleType"] and r["baseColour"]]
    by_article: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_article.setdefault(r["articleType"], []).append(r)
    queries, qrels, seen = [], [], set()
    for r in rng.sample(pool, min(len(pool), 2 * n)):
        text, named = natural_query(r, rng)
        if text in seen:
            continue
        seen.add(text)
        qid = f"nat{len(queries):04d}"
        queries.append({"query_id": qid, "text": text})
        for other in by_article[r["articleType"]]:
            grade = 1 + sum(_same(other, r, a) for a in named)
            qrels.append((qid, other["id"], grade))
        if len(queries) == n:
            break
    return EvalSet("natural", queries, qrels)


def _same(a: dict[str, str], b: dict[str, str], attribute: str) -> bool:
    if attribute == "brand":
        return bool(a["title"]) and a["title"].split()[0] == b["title"].split()[0]
    return a[attribute] == b[attribute]
