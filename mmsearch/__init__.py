"""mmsearch: local multimodal product search.

The library API mirrors the CLI (catalog -> embeddings -> index -> search -> results)::

    from mmsearch import Store, ingest, embed, build_index, Searcher, Query
    store = Store("mmsearch-store")
    with store.writer("script"):
        ingest(store, Path("products.csv"))
        embed(store)
        build_index(store)          # or: configure_backend(store, "milvus", "http://host:19530") first
    Searcher(store).search(Query(text="red mug"), k=5)
"""

from .catalog import ingest
from .embed import embed
from .errors import ExitCode, MMSearchError
from .evaluate import evaluate
from .filters import Filters
from .indexing import build_index, configure_backend
from .search import Query, Searcher
from .store import Store

__version__ = "0.1.0"
__all__ = ["ExitCode", "Filters", "MMSearchError", "Query", "Searcher", "Store", "build_index", "configure_backend", "embed", "evaluate", "ingest"]
