"""A read-only view of what the store holds to index: per modality its items (product
id, media path, content hash), which of them have a vector from the current model, and
those vectors as one matrix. Planning an index, training an alignment and reporting
status all read the store through it."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from .backends import Item
from .catalog import iter_products, product_text
from .embedding import text_hash, vector_matrix
from .errors import MMSearchError
from .store import Store


class StoreItems:
    """Cheap to create: the catalog is read on first use and vectors only when asked."""

    def __init__(self, store: Store):
        self.store = store
        self.manifest = store.manifest()
        self.models: dict[str, dict[str, Any]] = self.manifest.get("models", {})
        self.text_fields = self.manifest.get("text_fields")

    @cached_property
    def catalog(self) -> dict[str, dict[str, Any]]:
        return {row["id"]: row for row in iter_products(self.store)}

    @cached_property
    def texts(self) -> dict[str, str]:
        """Each product's embedded text (its configured text fields)."""
        return {pid: product_text(row, self.text_fields) for pid, row in self.catalog.items()}

    def items(self, modality: str) -> list[Item]:
        if modality == "text":
            return [(pid, "", text_hash(text)) for pid, text in self.texts.items() if text]
        rows = self.store.db.execute(
            "SELECT product_id, path, sha256 FROM media WHERE kind=? ORDER BY product_id, position", (modality,)
        )
        return [tuple(r) for r in rows]

    def kept_items(self, modality: str) -> tuple[list[Item], int]:
        """The items of ``modality`` that have a vector from the current model, and how
        many still lack one."""
        model = self.models[modality]
        items = self.items(modality)
        have = {
            h
            for (h,) in self.store.db.execute(
                "SELECT content_hash FROM vectors WHERE modality=? AND model=?", (modality, model["id"])
            )
        }
        kept = [item for item in items if item[2] in have]
        return kept, len(items) - len(kept)

    def vectors(self, modality: str, items: list[Item]) -> np.ndarray:
        """The vectors of ``items``, one row each, in order."""
        # A vector of the wrong length (a damaged catalog.db) must stop the caller with the
        # repair, not with a numpy traceback from np.frombuffer / np.stack.
        model = self.models[modality]
        if model.get("dim"):
            bad = self.store.db.execute(
                "SELECT count(*) FROM vectors WHERE modality=? AND model=? AND length(vector) != ?",
                (modality, model["id"], 4 * model["dim"]),
            ).fetchone()[0]
            if bad:
                raise MMSearchError(
                    f"{bad} {modality} vectors in catalog.db have the wrong length: "
                    f"run `mmsearch embed --modality {modality} --rebuild`, then `mmsearch index`"
                )
        matrix, found = vector_matrix(self.store, modality, model["id"], [h for _, _, h in items])
        if found != len(items):  # the items were chosen as those with a vector: one went missing since
            raise MMSearchError(f"{len(items) - found} {modality} vectors disappeared from catalog.db: run the command again")
        return matrix
