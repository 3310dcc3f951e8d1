"""Embedding: turn what the catalog holds into vectors, doing only what changed.

Vectors are keyed by (modality, content hash): a text or media file that was embedded
once with the current model is never embedded again, whichever product it belongs to.
Each batch is committed on its own, so an interrupted run loses at most one batch and
the next run resumes where it stopped. Media that fails to decode (or is missing) is
recorded in ``failures`` with its reason and skipped; it is retried once its file holds
again the content that ingest checked (restored after being deleted or damaged).

A rebuild (``--rebuild``, or a switch to another model) is recorded in the store
manifest under ``rebuilding`` until it completes, so that any later `embed` continues
it with the same model. A same-model rebuild replaces vectors in place and notes each
item it re-embedded in the ``rebuilt`` table: the old vectors stay searchable until
replaced, and a resumed rebuild re-embeds only what it has not done yet.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import language, sound
from .catalog import TEXT_FIELDS, iter_products, product_text
from .duplicates import image_facts
from .encoders import MODALITIES, Encoder, encoder_family, load_encoder
from .errors import ExitCode, MMSearchError
from .filters import attribute_columns, did_you_mean
from .media import FileHashes, MediaError, load_audio, load_image
from .store import Store

BATCH_SIZE = {"text": 256, "image": 64, "audio": 16}
#: ``--text-fields all``: the default, core text fields then every attribute column
ALL_FIELDS = "all"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def wanted_items(store: Store, modality: str, text_fields: Sequence[str] | None) -> dict[str, str]:
    """{content hash: source} for everything the catalog needs embedded in ``modality``.
    The source is the text itself, or the media file's path."""
    if modality == "text":
        texts = (product_text(row, text_fields) for row in iter_products(store))
        return {text_hash(t): t for t in texts if t}
    rows = store.db.execute("SELECT sha256, path FROM media WHERE kind = ? ORDER BY path", (modality,))
    return {digest: path for digest, path in rows}


def check_text_fields(store: Store, fields: Sequence[str]) -> list[str] | None:
    """The text fields to embed, None for ``all`` (the default). Every name must be a core
    text field or an attribute column some product has, and together they must give some
    product text: otherwise nothing would be embedded and `index` would have no text."""
    names = list(dict.fromkeys(f.strip() for f in fields if f.strip()))
    if names == [ALL_FIELDS]:
        return None
    available = [*TEXT_FIELDS, *attribute_columns(store)]
    option = f"--text-fields {','.join(fields)}"
    for name in names or [""]:
        if name not in available:
            what = f"no field {name!r}{did_you_mean(name, available)}" if name else "no field given"
            raise MMSearchError(f"{option}: {what}; fields are {', '.join(available)} (or {ALL_FIELDS} alone, the default)", ExitCode.USAGE)
    products = store.db.execute("SELECT count(*) FROM products").fetchone()[0]
    if products and not wanted_items(store, "text", names):
        raise MMSearchError(f"{option}: no product has a value in these fields; fields are {', '.join(available)}", ExitCode.USAGE)
    return names


@dataclass
class Failure:
    modality: str
    path: str
    reason: str


@dataclass
class ModalityReport:
    wanted: int = 0
    embedded: int = 0
    failed: int = 0
    seconds: float = 0.0
    #: the interrupted rebuild this run continued (its ``rebuilding`` manifest entry)
    continued: dict[str, Any] | None = None

    @property
    def per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0


@dataclass
class EmbedReport:
    modalities: dict[str, ModalityReport] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    #: the sound analysis step (sound.py), when audio was embedded
    sounds: sound.SoundReport | None = None
    #: advice for the user (language_note)
    notes: list[str] = field(default_factory=list)


def _decode(modality: str, source: str) -> Any:
    if modality == "text":
        return source
    return load_image(Path(source)) if modality == "image" else load_audio(Path(source))


def _batches(items: list[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


Decoded = tuple[list[Any], list[str], list[tuple[str, str, str]], list[tuple[str, int, int, bytes]]]


def _decode_batch(modality: str, batch: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], Decoded]:
    """(batch, (decoded items, their hashes, (hash, source, reason) of those that failed,
    (hash, width, height, perceptual hashes) of the images)): an image's facts are taken
    here, while it is decoded anyway."""
    decoded, keys, bad, facts = [], [], [], []
    for digest, source in batch:
        try:
            item = _decode(modality, source)
        except (MediaError, OSError) as exc:
            bad.append((digest, source, str(exc)))
            continue
        decoded.append(item)
        keys.append(digest)
        if modality == "image":
            facts.append((digest, *image_facts(item)))
    return batch, (decoded, keys, bad, facts)


def _record_facts(tx: sqlite3.Connection, facts: list[tuple[str, int, int, bytes]]) -> None:
    tx.executemany("INSERT OR REPLACE INTO image_info (content_hash, width, height, phash) VALUES (?, ?, ?, ?)", facts)


def record_missing_facts(store: Store, wanted: dict[str, str]) -> int:
    """Record the size and hashes of the embedded images that have none (a store embedded
    before they were recorded); returns how many were recorded."""
    have = {h for (h,) in store.db.execute("SELECT content_hash FROM image_info")}
    embedded = {h for (h,) in store.db.execute("SELECT content_hash FROM vectors WHERE modality='image'")}
    todo = [(h, src) for h, src in wanted.items() if h in embedded and h not in have]
    for batch in _batches(todo, BATCH_SIZE["image"]):
        _, (_, _, _, facts) = _decode_batch("image", batch)
        with store.transaction() as tx:
            _record_facts(tx, facts)
    return len(todo)


def embed_modality(
    store: Store,
    encoder: Encoder,
    wanted: dict[str, str],
    progress: Any = None,
    batch_size: int | None = None,
    rebuilding: bool = False,
) -> tuple[ModalityReport, list[Failure]]:
    """Embed whatever in ``wanted`` has no vector from ``encoder`` yet, batch by batch;
    while ``rebuilding``, whatever this rebuild has not re-embedded yet.

    ``progress`` is a rich Progress (or None for silence)."""
    modality, db = encoder.modality, store.db
    if rebuilding:
        done = rebuilt_items(store, modality)
    else:
        done = {h for (h,) in db.execute("SELECT content_hash FROM vectors WHERE modality=? AND model=?", (modality, encoder.id))}
    failed_before = {
        h for (h,) in db.execute("SELECT content_hash FROM failures WHERE modality=? AND model=?", (modality, encoder.id))
    } & wanted.keys()
    failed_before -= _restored(store, failed_before, wanted)
    todo = [(h, src) for h, src in wanted.items() if h not in done and h not in failed_before]
    report = ModalityReport(wanted=len(wanted), failed=len(failed_before))
    failures: list[Failure] = []
    if progress is not None:
        task = progress.add_task(f"embed {modality}", total=len(wanted), completed=len(wanted) - len(todo))
    started = time.perf_counter()
    # the next batch is decoded on a second thread while the model runs on this one
    # (Pillow and the model release the GIL), so decoding costs no wall time
    with ThreadPoolExecutor(max_workers=1) as decoder:
        batches = _batches(todo, batch_size or BATCH_SIZE[modality])
        pending = decoder.submit(_decode_batch, modality, next(batches, []))
        while True:
            batch, (decoded, keys, bad, facts) = pending.result()
            if not batch:
                break
            pending = decoder.submit(_decode_batch, modality, next(batches, []))
            vectors = encoder.encode(decoded) if decoded else np.zeros((0, 0), np.float32)
            with store.transaction() as tx:
                tx.executemany(
                    "INSERT OR REPLACE INTO vectors (modality, content_hash, model, vector) VALUES (?, ?, ?, ?)",
                    [(modality, k, encoder.id, v.astype("<f4").tobytes()) for k, v in zip(keys, vectors)],
                )
                tx.executemany(
                    "INSERT OR REPLACE INTO failures (modality, content_hash, model, path, reason) VALUES (?, ?, ?, ?, ?)",
                    [(modality, d, encoder.id, s, r) for d, s, r in bad],
                )
                tx.executemany("DELETE FROM failures WHERE modality=? AND content_hash=?", [(modality, k) for k in keys])
                _record_facts(tx, facts)
                if rebuilding:
                    tx.executemany("INSERT OR IGNORE INTO rebuilt (modality, content_hash) VALUES (?, ?)", [(modality, k) for k in keys])
            failures += [Failure(modality, s, r) for _, s, r in bad]
            report.embedded += len(keys)
            report.failed += len(bad)
            if progress is not None:
                progress.advance(task, len(batch))
    report.seconds = time.perf_counter() - started
    if modality == "image":
        record_missing_facts(store, wanted)
    _collect_garbage(store, modality, encoder.id, set(wanted))
    return report, failures


def _restored(store: Store, failed: set[str], wanted: dict[str, str]) -> set[str]:
    """The failed media whose file holds again the content that ingest hashed and
    checked: put back after it was deleted or damaged. They are retried. A file still
    missing, or holding other content (which the next ingest records), waits."""
    if not failed:
        return set()
    hashes = FileHashes(store, (wanted[h] for h in failed))
    restored = set()
    for digest in failed:
        try:
            if hashes.sha256(Path(wanted[digest]))[0] == digest:
                restored.add(digest)
        except OSError:  # still missing or unreadable
            pass
    with store.transaction() as tx:
        hashes.save(tx)
    return restored


def _collect_garbage(store: Store, modality: str, model: str, keep: set[str]) -> None:
    """Drop vectors and failures nobody needs any more: other models', removed products'."""
    with store.transaction() as tx:
        for table in ("vectors", "failures"):
            stale = [
                (modality, h)
                for h, m in tx.execute(f"SELECT content_hash, model FROM {table} WHERE modality=?", (modality,))
                if m != model or h not in keep
            ]
            tx.executemany(f"DELETE FROM {table} WHERE modality=? AND content_hash=?", stale)
        if modality == "image":
            stale_facts = [(h,) for (h,) in tx.execute("SELECT content_hash FROM image_info") if h not in keep]
            tx.executemany("DELETE FROM image_info WHERE content_hash=?", stale_facts)


def rebuilt_items(store: Store, modality: str) -> set[str]:
    """What the rebuild of ``modality`` in progress has re-embedded so far."""
    return {h for (h,) in store.db.execute("SELECT content_hash FROM rebuilt WHERE modality=?", (modality,))}


def resolve_models(store: Store, requested: dict[str, str | None]) -> dict[str, str | None]:
    """The model spec per modality: what the user asked for now, else the model of an
    interrupted rebuild (which a plain `embed` continues), else what the store already
    uses (so a plain `embed` never switches models by accident), else the default: for
    text, the multilingual model when the catalog has Chinese, Japanese or Korean text
    (language.py), else the built-in default (None)."""
    manifest = store.manifest()
    current, rebuilding = manifest.get("models", {}), manifest.get("rebuilding", {})
    specs = {m: requested.get(m) or rebuilding.get(m, {}).get("name") or current.get(m, {}).get("name") for m in MODALITIES}
    if specs["text"] is None:
        specs["text"] = language.default_text_model(store)
    return specs


def language_note(store: Store, requested: str | None) -> str | None:
    """One line for a store whose catalog has come to hold CJK text while its text
    vectors stay those of the English-only default model: `embed` never switches a
    store's model by itself (every text would be embedded again, silently), so it says
    how to. None when there is nothing to say."""
    from .encoders.text import DEFAULT_TEXT_MODEL

    manifest = store.manifest()
    if requested or manifest.get("rebuilding", {}).get("text") or manifest.get("models", {}).get("text", {}).get("name") != DEFAULT_TEXT_MODEL:
        return None
    found = language.recorded(store)
    if not language.has_cjk(found):
        return None
    rows = {lang: n for lang, n in language.by_share(found).items() if lang in language.CJK_LANGUAGES}
    held = ", ".join(f"{lang} {n}" for lang, n in rows.items())
    return (
        f"the catalog now has CJK text ({held} of {found['products']} products) but the store's text model "
        f"{DEFAULT_TEXT_MODEL} reads English only: `mmsearch embed --text-model {language.MULTILINGUAL_TEXT_MODEL}` "
        "embeds every text again with the multilingual model (then `mmsearch index`)"
    )


def embed(
    store: Store,
    models: dict[str, str | None] | None = None,
    text_fields: Sequence[str] | None = None,
    modalities: Sequence[str] = MODALITIES,
    progress: Any = None,
    rebuild: bool = False,
    batch_size: int | None = None,
) -> EmbedReport:
    """Bring every modality's vectors up to date with the catalog and the chosen models,
    then (when audio is embedded) the clips' sound analysis (sound.py).

    ``text_fields`` None keeps the store's; ``["all"]`` is the default (see
    ``check_text_fields``). ``rebuild`` embeds ``modalities`` again from scratch,
    continuing a rebuild that was interrupted rather than starting over."""
    manifest = store.manifest()
    text_fields = manifest.get("text_fields") if text_fields is None else check_text_fields(store, text_fields)
    specs = resolve_models(store, models or {})
    report = EmbedReport()
    if "text" in modalities and (note := language_note(store, (models or {}).get("text"))):
        report.notes.append(note)
    for modality in modalities:
        wanted = wanted_items(store, modality, text_fields)
        if not wanted:
            continue
        encoder = load_encoder(modality, specs[modality])
        spec = specs[modality] or encoder.name
        marker, continued = _start_rebuild(store, manifest, modality, encoder, spec, rebuild)
        mod_report, failures = embed_modality(store, encoder, wanted, progress, batch_size, bool(marker and marker["rebuild"]))
        mod_report.continued = continued
        report.modalities[modality] = mod_report
        report.failures += failures
        manifest.setdefault("models", {})[modality] = {"name": spec, "id": encoder.id, "dim": _stored_dim(store, modality)}
        manifest["text_fields"] = list(text_fields) if text_fields is not None else None
        if marker:
            _finish_rebuild(store, manifest, modality, marker)
        else:
            store.write_manifest(manifest)
    if "audio" in modalities and encoder_family("audio", specs["audio"]).name != "fake":  # test stores load no model
        report.sounds = sound.analyse(store, wanted_items(store, "audio", text_fields), progress)
    return report


def _start_rebuild(
    store: Store, manifest: dict[str, Any], modality: str, encoder: Encoder, spec: str, rebuild: bool
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the ``rebuilding`` entry this run works under, or None; the interrupted one it
    continues, or None). A rebuild or a model switch is recorded before any vector
    changes, so an interrupted one is finished by the next `embed`, with its model."""
    entries = manifest.setdefault("rebuilding", {})
    marker = entries.get(modality)
    if marker and marker["id"] == encoder.id and (marker["rebuild"] or not rebuild):
        return marker, marker
    current = manifest.get("models", {}).get(modality)
    if not rebuild and (not current or current["id"] == encoder.id):
        entries.pop(modality, None)  # an interrupted rebuild with another model is abandoned
        if not entries:
            manifest.pop("rebuilding")
        return None, None
    marker = entries[modality] = {
        "name": spec,
        "id": encoder.id,
        "rebuild": rebuild,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with store.transaction() as tx:
        tx.execute("DELETE FROM rebuilt WHERE modality=?", (modality,))
        if rebuild:  # failed items are tried again
            tx.execute("DELETE FROM failures WHERE modality=?", (modality,))
    store.write_manifest(manifest)
    return marker, None


def _finish_rebuild(store: Store, manifest: dict[str, Any], modality: str, marker: dict[str, Any]) -> None:
    """Strike a completed rebuild from the manifest (and write it). A rebuild keeps only
    the vectors it made: an item that failed this time loses its old vector, as in a
    rebuild from scratch. Each step can be interrupted: the next `embed` redoes it."""
    if marker["rebuild"]:
        with store.transaction() as tx:
            tx.execute(
                "DELETE FROM vectors WHERE modality=? AND content_hash NOT IN (SELECT content_hash FROM rebuilt WHERE modality=?)",
                (modality, modality),
            )
    del manifest["rebuilding"][modality]
    if not manifest["rebuilding"]:
        del manifest["rebuilding"]
    store.write_manifest(manifest)
    with store.transaction() as tx:
        tx.execute("DELETE FROM rebuilt WHERE modality=?", (modality,))


def _stored_dim(store: Store, modality: str) -> int | None:
    """The vectors' dimension, read off a stored vector so no model needs loading."""
    row = store.db.execute("SELECT length(vector) FROM vectors WHERE modality=? LIMIT 1", (modality,)).fetchone()
    return row[0] // 4 if row else None


def vector_matrix(store: Store, modality: str, model: str, hashes: Sequence[str]) -> tuple[np.ndarray, int]:
    """(matrix, rows found): row i holds the stored vector of ``hashes[i]`` (zeros where
    there is none). Rows are copied in as they stream from SQLite, so a million vectors
    cost their 1.5 GB once, not again as a million Python objects first."""
    rows_of: dict[str, list[int]] = {}
    for i, digest in enumerate(hashes):
        rows_of.setdefault(digest, []).append(i)
    out: np.ndarray | None = None
    found = 0
    for digest, blob in store.select_in(
        "SELECT content_hash, vector FROM vectors WHERE modality=? AND model=? AND content_hash IN ({marks})", list(rows_of), (modality, model)
    ):
        vector = np.frombuffer(blob, dtype="<f4")
        if out is None:
            out = np.zeros((len(hashes), len(vector)), dtype=np.float32)
        out[rows_of[digest]] = vector
        found += len(rows_of[digest])
    return (out if out is not None else np.zeros((len(hashes), 0), dtype=np.float32)), found
