"""mmsearch: local multimodal product search.

The library API mirrors the CLI (catalog -> embeddings -> index -> search -> results)::

    from mmsearch import Store, ingest, embed, build_index, Searcher, Query
    store = Store("mmsearch-store")
    with store.writer("script"):
        ingest(store, Path("products.csv"))
        embed(store)
        build_index(store)          # or: configure_backend(store, "milvus", "http://host:19530") first
    Searcher(store).search(Query(text="red mug"), k=5)

Names are imported on first use (PEP 562), so that `import mmsearch` and every command
that does not need a model or an index stay fast: one process per command pays for
what it uses only.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "ExitCode": "errors",
    "MMSearchError": "errors",
    "Filters": "filters",
    "Query": "search",
    "Searcher": "search",
    "Store": "store",
    "build_index": "indexing",
    "configure_backend": "indexing",
    "embed": "embedding",
    "evaluate": "evaluation",
    "ingest": "catalog",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mmsearch' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and editors see; at run time, __getattr__
    from .catalog import ingest as ingest
    from .embedding import embed as embed
    from .errors import ExitCode as ExitCode
    from .errors import MMSearchError as MMSearchError
    from .evaluation import evaluate as evaluate
    from .filters import Filters as Filters
    from .indexing import build_index as build_index
    from .indexing import configure_backend as configure_backend
    from .search import Query as Query
    from .search import Searcher as Searcher
    from .store import Store as Store
