"""Search: encode a query, ask every index it can reach, fuse the per-product scores.

Signals: ``lexical`` (BM25 over product text), ``text`` (dense text), ``image`` and
``audio`` (dense, one vector per media file; a product scores its best file). Each
signal nominates candidates among the products that pass the filters; every candidate
is then scored exactly by every signal, so the fused ranking and the per-signal scores
shown to the user are complete, not just the ones that made a signal's top list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import generations
from .backends import Scope, open_part
from .bridge import load_bridge
from .catalog import product_text
from .embedding import text_hash
from .encoders import Encoder, l2_normalize, load_encoder
from .errors import ExitCode, MMSearchError
from .filters import Filters
from .fusion import fuse
from .generations import BRIDGE, BRIDGED, LEXICAL
from .lexical import LexicalIndex
from .media import MediaError, load_audio, load_image
from .store import Store

SIGNALS = (LEXICAL, "text", "image", "audio")
DENSE = SIGNALS[1:]
# Default fusion weight of a signal reached through the bridge (a text query scoring
# images, a photo scoring product text). A translated query is weaker evidence than one
# in the product's own modality: on the Myntra dev attribute queries, weight 1 made the
# fused ndcg@10 drop from 0.851 (no image signal) to 0.789/0.803 (zero-shot/aligned),
# weight 0.5 to 0.832/0.837 (benchmarks/README.md). `--weight image=1` restores it.
BRIDGED_WEIGHT = 0.5


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
class Result:
    rank: int
    id: str
    title: str
    category: str
    brand: str
    price: float | None
    score: float
    scores: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LexicalPart:
    def __init__(self, folder: Path, entry: dict[str, Any]):
        self.index = LexicalIndex.load(folder / LEXICAL)
        self.ids: list[str] = json.loads((folder / LEXICAL / "ids.json").read_text(encoding="utf-8"))
        self.position = {pid: i for i, pid in enumerate(self.ids)}

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

    def part(self, name: str) -> Any:
        if name not in self.parts:
            entry = self.manifest["parts"].get(name)
            if entry is not None:
                generations.verify_part(self.folder, entry)
            if entry is None:
                self.parts[name] = None
            elif name == LEXICAL:
                self.parts[name] = LexicalPart(self.folder, entry)
            elif name == BRIDGE:
                image_encoder = self.encoder("image") if entry["kind"] == "open_clip" else None
                self.parts[name] = load_bridge(self.folder, entry, image_encoder)
            else:
                self.parts[name] = open_part(self.folder, name, entry)
        return self.parts[name]

    def encoder(self, modality: str) -> Encoder:
        """The encoder that made this generation's ``modality`` vectors."""
        if modality not in self._encoders:
            self._encoders[modality] = load_encoder(modality, self.manifest["parts"][modality]["model"]["name"])
        return self._encoders[modality]

    # -- query vectors ---------------------------------------------------------
    def query_vectors(self, query: Query, signals: Sequence[str] = SIGNALS) -> dict[str, tuple[str, np.ndarray]]:
        """{signal: (index part, (n, dim) query vectors)} for every dense signal in
        ``signals`` the query reaches. A product modality is reached by the query's own
        modality when the query has it, else through the bridge (text -> images, image ->
        product text). Only what a wanted signal needs is encoded: `--modality lexical`
        loads no model."""
        out: dict[str, tuple[str, np.ndarray]] = {}
        bridge = self.part(BRIDGE) if {"text", "image"} & set(signals) else None
        needs_text = "text" in signals or ("image" in signals and bridge is not None and not query.image)
        needs_image = "image" in signals or ("text" in signals and bridge is not None and not query.text)
        text_vector = image_vector = None
        if query.text and needs_text and self.part("text"):
            text_vector = self.encoder("text").encode([query.text])
        if query.image and needs_image and self.part("image"):
            query_image = _load_query_media(load_image, query.image)
            image_vector = self.encoder("image").encode([query_image])
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
                out["text"] = ("text_x", bridge.image_items(image_vector, [query_image]))
        if query.like:
            for name, vectors in self._like_vectors(query.like, signals).items():
                out.setdefault(name, (name, vectors))
        return {signal: (part, l2_normalize(v)) for signal, (part, v) in out.items()}

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
        fusion: str = "rrf",
        weights: dict[str, float] | None = None,
    ) -> list[Result]:
        if query.is_empty():
            raise MMSearchError("empty query: give TEXT, --image, --audio or --like", ExitCode.USAGE)
        wanted = list(modalities or SIGNALS)
        for name in wanted:
            if name not in SIGNALS:
                raise MMSearchError(f"unknown modality {name!r}: use a comma list of {','.join(SIGNALS)}", ExitCode.USAGE)
        vectors = self.query_vectors(query, wanted)
        use_lexical = LEXICAL in wanted and bool(query.text) and self.part(LEXICAL) is not None
        if not vectors and not use_lexical:
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
        if use_lexical:
            found, lexical_scores = self.part(LEXICAL).candidates_and_scores(query.text, n, allowed)
            candidates |= found
        scope = Scope(filters if allowed is not None else None, allowed)
        for part_name, q in vectors.values():
            candidates |= self.part(part_name).candidates(q, n + (1 if query.like else 0), scope)
        candidates.discard(query.like)
        rows = self._rows(candidates)  # a product removed since the index was built is dropped here
        candidates = set(rows)
        signal_scores: dict[str, dict[str, float]] = {}
        if lexical_scores is not None:
            lex = self.part(LEXICAL)
            signal_scores[LEXICAL] = {p: float(lexical_scores[lex.position[p]]) for p in candidates if p in lex.position}
        for signal, (part_name, q) in vectors.items():
            signal_scores[signal] = self.part(part_name).score(q, candidates)
        bridged = {signal: BRIDGED_WEIGHT for signal, (part_name, _) in vectors.items() if part_name in BRIDGED}
        fused = fuse(signal_scores, fusion, {**bridged, **(weights or {})})
        top = sorted(fused, key=lambda p: (-fused[p], p))[:k]
        return [
            Result(
                rank=rank,
                id=pid,
                title=rows[pid]["title"],
                category=rows[pid]["category"],
                brand=rows[pid]["brand"],
                price=rows[pid]["price"],
                score=round(fused[pid], 6),
                scores={s: (round(v[pid], 6) if pid in v else None) for s, v in signal_scores.items()},
            )
            for rank, pid in enumerate(top, start=1)
        ]

    def _rows(self, ids: set[str]) -> dict[str, Any]:
        """The catalog rows of ``ids`` that still exist."""
        return {row["id"]: row for row in self.store.select_in("SELECT * FROM products WHERE id IN ({marks})", ids)}


def _load_query_media(loader: Any, path: Path) -> Any:
    try:
        return loader(Path(path))
    except FileNotFoundError:
        raise MMSearchError(f"query file {path} not found") from None
    except (MediaError, OSError) as exc:
        raise MMSearchError(f"query file {path}: {exc}") from None
