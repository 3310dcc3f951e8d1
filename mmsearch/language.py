"""The languages a catalog is written in, told apart by script, and the defaults that
follow from them.

`ingest` counts, for each language, the products whose text (title, description,
category, brand and attribute values, not the column names) has at least two words of
it: Chinese (``zh``: two Han characters and no kana), Japanese (``ja``: kana), Korean
(``ko``: Hangul), and ``en`` for Latin-script words (two letters or more; a French
catalog counts as ``en`` too: script cannot tell them apart, and nothing here treats
them differently). A product may count for several (a bilingual title, a Chinese title
naming a Western brand). The counts are kept in the store manifest under ``languages``.

A language is the catalog's when at least ``MIN_SHARE`` of its products (and at least
one) have it. A catalog with a CJK language gets, when no flag says otherwise, the
multilingual text model at `embed` and the ``cjk`` analyzer at `index`; a Latin-only
catalog keeps all-MiniLM-L6-v2 and the ``standard`` analyzer, as before.
"""

from __future__ import annotations

import re
from typing import Any

from .encoders import MULTILINGUAL_TEXT_MODEL
from .store import Store

MANIFEST_KEY = "languages"
CJK_LANGUAGES = ("zh", "ja", "ko")
#: a language held by fewer of the products than this is a stray word, not the catalog's
MIN_SHARE = 0.01
#: characters (CJK) or words (Latin) a product's text needs to count for a language
MIN_UNITS = 2

_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_KANA = re.compile("[\u3040-\u30ff\u31f0-\u31ff]")
_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_LATIN_WORD = re.compile("[A-Za-z\u00c0-\u024f\uff21-\uff3a\uff41-\uff5a]{2,}")

#: each product's text: its core text fields and its attribute values (SQLite's JSON1)
_TEXTS = (
    "SELECT coalesce(title, '') || ' ' || coalesce(description, '') || ' ' || coalesce(category, '') || ' ' "
    "|| coalesce(brand, '') || ' ' || coalesce((SELECT group_concat(value, ' ') FROM json_each(products.attributes) "
    "WHERE type = 'text'), '') FROM products"
)


def text_languages(text: str) -> set[str]:
    """The languages one product's text has at least ``MIN_UNITS`` words of."""
    found = set()
    kana = len(_KANA.findall(text))
    if len(_HANGUL.findall(text)) >= MIN_UNITS:
        found.add("ko")
    if kana and kana + len(_HAN.findall(text)) >= MIN_UNITS:
        found.add("ja")
    elif not kana and len(_HAN.findall(text)) >= MIN_UNITS:
        found.add("zh")
    if len(_LATIN_WORD.findall(text)) >= MIN_UNITS:
        found.add("en")
    return found


def detect(store: Store) -> dict[str, Any]:
    """{"products": N, "rows": {language: products}} over the whole stored catalog.
    One pass over the text, in SQL."""
    counts: dict[str, int] = {}
    products = 0
    for (text,) in store.db.execute(_TEXTS):
        products += 1
        for language in text_languages(text):
            counts[language] = counts.get(language, 0) + 1
    return {"products": products, "rows": counts}


def record(store: Store, changed: bool = True) -> dict[str, Any]:
    """Detect the catalog's languages and keep them in the manifest (ingest does, when
    the catalog ``changed`` or nothing is recorded yet)."""
    manifest = store.manifest()
    if not changed and manifest.get(MANIFEST_KEY):
        return manifest[MANIFEST_KEY]
    found = detect(store)
    if manifest.get(MANIFEST_KEY) != found:
        manifest[MANIFEST_KEY] = found
        store.write_manifest(manifest)
    return found


def recorded(store: Store) -> dict[str, Any]:
    """The languages ingest recorded; for a store ingested before they were, detected
    now (and not written: readers never write)."""
    return store.manifest().get(MANIFEST_KEY) or detect(store)


def by_share(found: dict[str, Any]) -> dict[str, int]:
    """{language: products}, most common first (the manifest keeps them sorted by name)."""
    return dict(sorted(found.get("rows", {}).items(), key=lambda kv: (-kv[1], kv[0])))


def catalog_languages(found: dict[str, Any]) -> list[str]:
    """The languages at least ``MIN_SHARE`` of the products have, most common first."""
    products = found.get("products", 0)
    return [lang for lang, n in by_share(found).items() if n and n >= MIN_SHARE * products]


def has_cjk(found: dict[str, Any]) -> bool:
    """Is Chinese, Japanese or Korean one of the catalog's languages?"""
    return any(lang in CJK_LANGUAGES for lang in catalog_languages(found))


def default_text_model(store: Store) -> str | None:
    """The text model a store gets when neither a flag nor the store names one: the
    multilingual model for a catalog with CJK text, else None (the built-in default)."""
    return MULTILINGUAL_TEXT_MODEL if has_cjk(recorded(store)) else None
