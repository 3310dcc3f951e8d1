"""The live index of a long-lived process (`mmsearch serve`): one Searcher, loaded once,
that follows the store to each new index generation without a restart.

Threads. Every use of the store and the searcher runs on one thread of its own
(``LiveIndex.call`` from plain code, ``await LiveIndex.run`` from the server's event
loop). A SQLite connection may only be used by the thread that opened it
(check_same_thread), and a Searcher is not safe to share between threads: it loads
index parts and models lazily, and keeps the last query image. Searching on more
threads would not answer sooner either: the models already use every core
(``--threads``). The price is that a quick look-up (a product, a media file) waits for
the search in front of it, tens of milliseconds.

Generations. Before each use, the thread reads ``indexes/CURRENT`` and the store
manifest's mtime (a few microseconds). When either changed (`mmsearch index` published
a new generation, `mmsearch tune --save` saved new fusion settings), it opens a
Searcher on the live generation and hands it the encoders whose model is unchanged, so
a switch loads no model. Requests run one at a time on that thread, so a request that
took the old Searcher finishes on it before the next one switches; the old
generation's files stay on disk for generations.PRUNE_GRACE_SECONDS after it is
superseded, so parts it loads lazily are still there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from . import generations
from .media import AUDIO_SAMPLE_RATE
from .search import DENSE, Searcher
from .store import Store

T = TypeVar("T")
#: samples the warm-up encodes once, so that the first query does not load a model
WARM_TEXT = "warm up"
WARM_AUDIO_SECONDS = 1.0


class LiveIndex:
    """The store at ``root`` and a Searcher of its live generation, on one thread."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmsearch-live")
        self._store: Store | None = None
        self._searcher: Searcher | None = None
        self._key: tuple[str | None, int] | None = None
        try:
            self.call(self.searcher)  # a store without an index fails here, as `query` does
        except BaseException:
            self.close()
            raise

    # -- running on the live thread ---------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the live thread; waits for it."""
        return self._thread.submit(fn, *args).result()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the live thread, awaited (the event loop goes on meanwhile)."""
        return await asyncio.wrap_future(self._thread.submit(fn, *args))

    def close(self) -> None:
        """Close the catalog connection (on its thread) and stop the thread."""
        if self._store is not None:
            self._thread.submit(self._store.close).result()
        self._thread.shutdown(wait=True)

    # -- on the live thread only -------------------------------------------------
    def store(self) -> Store:
        """The store, opened read-only (the server never writes it)."""
        if self._store is None:
            self._store = Store(self.root, read_only=True).require()
        return self._store

    def searcher(self) -> Searcher:
        """The Searcher of the live generation; a new one when the generation or the
        store's settings changed since the last call."""
        store = self.store()
        generation, settings = self._state(store)
        if self._searcher is None or (generation, settings) != self._key:
            searcher = Searcher(store)
            if self._searcher is not None:
                searcher.adopt_encoders(self._searcher)
            self._searcher, self._key = searcher, (searcher.folder.name, settings)
        return self._searcher

    @staticmethod
    def _state(store: Store) -> tuple[str | None, int]:
        """(the live generation's name, the store manifest's mtime)."""
        folder = generations.current(store)
        try:
            mtime = store.manifest_path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = 0
        return (folder.name if folder else None, mtime)

    def warm(self) -> None:
        """Load every index part and model of the live generation now, so that the first
        query of each kind is as quick as the next one."""
        import numpy as np
        from PIL import Image

        searcher = self.searcher()
        for name in searcher.manifest["parts"]:
            searcher.part(name)
        samples = {
            "text": WARM_TEXT,
            "image": Image.new("RGB", (64, 64), "white"),
            "audio": 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(AUDIO_SAMPLE_RATE * WARM_AUDIO_SECONDS)) / AUDIO_SAMPLE_RATE).astype(np.float32),
        }
        for modality in DENSE:
            if modality in searcher.manifest["parts"]:
                searcher.encoder(modality).encode([samples[modality]])
