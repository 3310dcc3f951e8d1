"""Milvus backend: each vector part is a Milvus collection, on a server or cluster
(``http://host:19530``) or in a local milvus-lite file (``./vectors.db``).

One collection per part (text, image, audio, image_x, text_x) rather than one with
several vector fields, because the parts hold different items: a product has one text
but any number of images or clips, and the parts are built, synced and dropped
independently (a new image model rebuilds one collection, not all).

Each row is one item (a product's text or one of its media files):

    key         primary key, a hash of (product id, media path)
    product_id  the catalog id
    store_id    the store that wrote the row (see MilvusBackend._claim)
    row_hash    what the row was made from (vector's content hash, model, catalog row),
                compared on every `index` so that only changed rows are upserted
    vector      FLOAT_VECTOR, HNSW index with COSINE metric and the store's M / efConstruction
    category, brand, price, has_price, core (JSON: id, title, description),
    attributes (JSON)
                the filter fields, text folded as filters.fold does, so that filters
                run inside Milvus and select what SQLite selects

The catalog, the embeddings (catalog.db), BM25 and the bridge stay in the store: a
collection can be rebuilt from them at any time (`mmsearch index`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders import l2_normalize
from ..errors import MMSearchError
from ..filters import MILVUS_CORE_JSON, fold
from . import MILVUS_TOKEN_ENV, Item, Scope, Synced, best_per_product

# gRPC's C core prints transport notices (keepalive "too_many_pings" from milvus-lite)
# straight to stderr; failures still reach us as exceptions.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

CONNECT_TIMEOUT_S = 10.0
#: How long `index` waits for the server to finish building a collection's index.
INDEX_WAIT_S = float(os.environ.get("MMSEARCH_MILVUS_INDEX_WAIT", 1800))
#: How long a command waits for a collection to load, e.g. on a server that has just
#: restarted and is loading every collection again.
LOAD_WAIT_S = 300.0
WRITE_BATCH = 1000
QUERY_IN_BATCH = 1000
MAX_LIMIT = 16_384  # Milvus' cap on a search's topk
#: `index` itself reads with Strong consistency (it must see its own writes at once).
#: Queries do not: Strong makes the server wait for its next time tick, about 200 ms
#: per call. They pass the time of the part's last sync as a guarantee timestamp
#: instead, so they see every write of that sync and, once the server has caught up
#: with it (well before the next query arrives, usually), wait for nothing.
CONSISTENCY = "Strong"
#: Margin added to the sync time for clock skew between this machine and the server.
GUARANTEE_MARGIN_S = 1.0


DEFAULT_PREFIX = "mmsearch"


def check_prefix(prefix: str) -> str:
    """Milvus collection names: a letter or underscore, then letters, digits, underscores."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", prefix):
        raise MMSearchError(f"--collection-prefix {prefix!r}: use letters, digits and underscores, starting with a letter")
    return prefix


def is_local_file(uri: str) -> bool:
    return "://" not in uri


def normalize_uri(uri: str) -> str:
    """A server URI as given; a milvus-lite file made absolute (queries may run from
    another directory than `index`)."""
    if is_local_file(uri):
        if not uri.endswith(".db"):
            raise MMSearchError(f"--uri {uri}: a milvus-lite file must end in .db (or give http://HOST:19530 for a server)")
        return str(Path(uri).expanduser().resolve())
    return uri


def _message(exc: Exception) -> str:
    return str(getattr(exc, "message", "") or exc).strip() or type(exc).__name__


@contextmanager
def milvus_errors(uri: str, action: str) -> Iterator[None]:
    """Turn pymilvus/gRPC failures into one line naming the server and what to do."""
    from grpc import RpcError
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except (MilvusException, RpcError) as exc:
        raise MMSearchError(f"Milvus at {uri}: {action} failed ({_message(exc)}); the local store is unchanged") from None


_clients: dict[tuple[str, str], Any] = {}


def connect(uri: str, token: str | None = None) -> Any:
    """One client per URI and token in a process (milvus-lite opens its file once)."""
    token = token if token is not None else os.environ.get(MILVUS_TOKEN_ENV, "")
    if (uri, token) not in _clients:
        _clients[uri, token] = _connect(uri, token)
    return _clients[uri, token]


def disconnect(uri: str) -> None:
    """Close this process's clients of ``uri``: a milvus-lite file is then free for
    other processes."""
    for key in [key for key in _clients if key[0] == uri]:
        _clients.pop(key).close()
    if is_local_file(uri):  # milvus-lite serves the file from a thread until released
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)


def _connect(uri: str, token: str) -> Any:
    try:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException
    except ImportError:
        raise MMSearchError("the Milvus backend needs pymilvus and milvus-lite: pip install 'mmsearch[milvus]'") from None

    # Errors reach the user once, as milvus_errors' one line: pymilvus and milvus-lite
    # log failures with tracebacks, and milvus-lite answers some calls (timestamps for query
    # iterators) through a fallback that gRPC logs as an error although it succeeds.
    for logger in ("pymilvus", "grpc._server", "milvus_lite"):
        logging.getLogger(logger).setLevel(logging.CRITICAL)
    try:
        return MilvusClient(uri=uri, token=token, timeout=CONNECT_TIMEOUT_S)
    except MilvusException as exc:
        if is_local_file(uri):
            raise MMSearchError(
                f"cannot open the milvus-lite file {uri} ({_message(exc)}): its folder must exist, and milvus-lite "
                "serves one process at a time, so close any other mmsearch using it (or use a Milvus server)"
            ) from None
        raise MMSearchError(
            f"cannot connect to Milvus at {uri} ({_message(exc)}): check that the server is up and the URI "
            f"and ${MILVUS_TOKEN_ENV} are right; the local store is unchanged"
        ) from None


def _key(pid: str, media: str) -> str:
    return hashlib.sha256(f"{pid}\x00{media}".encode()).hexdigest()[:32]


def _json_literal_list(values: list[str]) -> str:
    return json.dumps(values, ensure_ascii=False)


class MilvusBackend:
    """Writes parts into Milvus collections named ``<prefix>_<part>``."""

    name = "milvus"

    def __init__(self, uri: str, prefix: str, store_id: str, token: str | None = None):
        self.uri, self.prefix, self.store_id, self.token = normalize_uri(uri), prefix, store_id, token
        self._client: Any = None
        self._claimed = False

    @classmethod
    def from_config(cls, config: dict[str, Any], store_id: str, token: str | None = None) -> "MilvusBackend":
        return cls(config["uri"], config["collection_prefix"], store_id, token)

    @staticmethod
    def open_part(folder: Path, name: str, entry: dict[str, Any]) -> "MilvusPart":
        return MilvusPart(name, entry)  # the vectors are in Milvus, not in the folder

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.uri, self.token)
        return self._client

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "uri": self.uri, "collection_prefix": self.prefix}

    def close(self) -> None:
        if self._client is not None:
            disconnect(self.uri)
            self._client = None

    def collection(self, part: str) -> str:
        return f"{self.prefix}_{part}"

    def row_hashes(self, items: list[Item], model_id: str, products: Mapping[str, Any]) -> list[str]:
        return [
            hashlib.sha256(f"{model_id}\x00{h}\x00{products[pid]['content_hash']}".encode()).hexdigest()[:32]
            for pid, _, h in items
        ]

    def fingerprint(self, items: list[Item], model_id: str, products: Mapping[str, Any]) -> list[Any]:
        return [self.settings(), self.store_id, self.row_hashes(items, model_id, products)]

    def is_intact(self, entry: dict[str, Any]) -> bool:
        """Does the live part's collection still hold what the manifest says?"""
        name = entry["collection"]
        with milvus_errors(self.uri, f"checking collection {name}"):
            if not self.client.has_collection(name):
                return False
            _load(self.client, name)
            return _count(self.client, name) == entry["count"]

    # -- sync ------------------------------------------------------------------
    def write(
        self,
        folder: Path,
        part: str,
        items: list[Item],
        vectors: Callable[[list[Item]], np.ndarray],
        model: dict[str, Any],
        params: dict[str, Any],
        products: Mapping[str, Any],
    ) -> tuple[dict[str, Any], Synced]:
        """Bring the collection in line with ``items``: upsert new and changed rows,
        delete rows of items that are gone, then wait for the index and check the count."""
        name = self.collection(part)
        hashes = self.row_hashes(items, model["id"], products)
        with milvus_errors(self.uri, f"syncing collection {name}"):
            existing = self._prepare(name, params)
            wanted = {_key(pid, media): (i, h) for i, ((pid, media, _), h) in enumerate(zip(items, hashes))}
            changed = [i for key, (i, h) in wanted.items() if existing.get(key) != h]
            gone = [key for key in existing if key not in wanted]
            dim = self._upsert(name, params, [items[i] for i in changed], [hashes[i] for i in changed], vectors, products)
            for start in range(0, len(gone), QUERY_IN_BATCH):
                self.client.delete(name, ids=gone[start : start + QUERY_IN_BATCH])
            if changed or gone:
                self.client.flush(name)  # seals the new rows, so that the server indexes them
                self._wait_for_index(name)
            _load(self.client, name)
            count = _count(self.client, name)
            dim = dim or _dim(self.client, name)
        if count != len(items):
            raise MMSearchError(f"Milvus collection {name} holds {count} rows after sync, expected {len(items)}: run `mmsearch index` again")
        entry = {
            **self.settings(),
            "collection": name,
            "space": "cosine",
            "dim": dim,
            "count": len(items),
            "max_per_product": max(Counter(pid for pid, _, _ in items).values()),
            "model": model,
            "files": [],
            "synced_at": time.time(),
            **params,
        }
        return entry, {"upserted": len(changed), "deleted": len(gone)}

    def _prepare(self, name: str, params: dict[str, Any]) -> dict[str, str]:
        """Existing rows (key -> row_hash). A collection of another store is refused; one
        with other index parameters is dropped, since its rows must all be rewritten."""
        client = self.client
        if not self._claimed:
            self._claim()
            self._claimed = True
        if client.has_collection(name):
            _load(client, name)  # milvus-lite reopens collections released
            index = client.describe_index(name, "vector")
            # milvus-lite does not report M/efConstruction: only a server's can differ here
            reported = {"M": index.get("M", params["M"]), "ef_construction": index.get("efConstruction", params["ef_construction"])}
            same_index = index.get("index_type") == "HNSW" and {k: int(v) for k, v in reported.items()} == params
            # rows written before rows named their store are rewritten once, with it
            if same_index and _has_field(client, name, "store_id"):
                return {
                    row["key"]: row["row_hash"]
                    for batch in _iterate(client, name, ["key", "row_hash"])
                    for row in batch
                }
            client.drop_collection(name)
        return {}

    def _claim(self) -> None:
        """Mark the prefix as this store's, or refuse one that another store uses: two
        stores syncing into the same collections would delete each other's rows.

        The claim is a row in a one-row collection (milvus-lite keeps no collection
        description), flushed so that it survives a server restart, and read with Strong
        consistency. A prefix with no owner row (never claimed, or the row was lost) is
        this store's if its part collections hold no other store's rows."""
        from pymilvus import DataType, MilvusClient

        name, client = f"{self.prefix}_owner", self.client
        if not client.has_collection(name):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("store_id", DataType.VARCHAR, is_primary=True, max_length=64)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
            index = client.prepare_index_params()
            index.add_index("vector", index_type="FLAT", metric_type="L2")
            client.create_collection(name, schema=schema, index_params=index, consistency_level=CONSISTENCY)
        _load(client, name)
        owners = {row["store_id"] for row in client.query(name, filter='store_id != ""', output_fields=["store_id"], consistency_level="Strong")}
        others = owners - {self.store_id} if owners else self._other_row_owners()
        if others:
            raise MMSearchError(
                f"Milvus collections {self.prefix}_* at {self.uri} belong to another mmsearch store "
                f"({', '.join(sorted(others))}; this store is {self.store_id}): pick another --collection-prefix"
            )
        if not owners:
            client.upsert(name, [{"store_id": self.store_id, "vector": [0.0, 0.0]}])
            client.flush(name)

    def _part_collections(self) -> list[str]:
        """This prefix's part collections. A longer prefix's collections (``shop_eu_text``
        beside ``shop_text``) are left out when that prefix has an owner collection."""
        mine = [n for n in self.client.list_collections() if n.startswith(f"{self.prefix}_")]
        longer = [n.removesuffix("_owner") for n in mine if n.endswith("_owner") and n != f"{self.prefix}_owner"]
        return [n for n in mine if not n.endswith("_owner") and not any(n.startswith(f"{p}_") for p in longer)]

    def _other_row_owners(self) -> set[str]:
        """Other stores' ids found in the prefix's part collections (a few rows each
        suffice: one such row means the prefix is someone else's)."""
        found: set[str] = set()
        for name in self._part_collections():
            _load(self.client, name)
            if not _has_field(self.client, name, "store_id"):
                if _count(self.client, name):
                    raise MMSearchError(
                        f"Milvus collection {name} at {self.uri} has rows but no owner (an older mmsearch wrote it): "
                        f"if it is this store's, drop it (MilvusClient({self.uri!r}).drop_collection({name!r})) "
                        "and run `mmsearch index`; otherwise pick another --collection-prefix"
                    )
                continue
            rows = self.client.query(
                name,
                filter=f"store_id != {json.dumps(self.store_id)}",
                output_fields=["store_id"],
                limit=16,
                consistency_level="Strong",
            )
            found.update(row["store_id"] for row in rows)
        return found

    def _create(self, name: str, dim: int, params: dict[str, Any]) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("product_id", DataType.VARCHAR, max_length=8192)
        schema.add_field("store_id", DataType.VARCHAR, max_length=64)
        schema.add_field("row_hash", DataType.VARCHAR, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("category", DataType.VARCHAR, max_length=65535)
        schema.add_field("brand", DataType.VARCHAR, max_length=65535)
        schema.add_field("price", DataType.DOUBLE)
        schema.add_field("has_price", DataType.BOOL)
        schema.add_field("core", DataType.JSON)
        schema.add_field("attributes", DataType.JSON)
        index = self.client.prepare_index_params()
        index.add_index(
            "vector", index_type="HNSW", metric_type="COSINE", params={"M": params["M"], "efConstruction": params["ef_construction"]}
        )
        self.client.create_collection(name, schema=schema, index_params=index, consistency_level=CONSISTENCY)

    def _upsert(
        self,
        name: str,
        params: dict[str, Any],
        items: list[Item],
        hashes: list[str],
        vectors: Callable[[list[Item]], np.ndarray],
        products: Mapping[str, Any],
    ) -> int | None:
        dim = None
        for start in range(0, len(items), WRITE_BATCH):
            batch = items[start : start + WRITE_BATCH]
            matrix = l2_normalize(np.asarray(vectors(batch), dtype=np.float32))
            dim = matrix.shape[1]
            if not self.client.has_collection(name):
                self._create(name, dim, params)
            elif _dim(self.client, name) != dim:  # the model changed: the old rows are all stale
                self.client.drop_collection(name)
                self._create(name, dim, params)
            rows = [_row(item, h, vector, products[item[0]], self.store_id) for item, h, vector in zip(batch, hashes[start:], matrix)]
            self.client.upsert(name, rows)
        return dim

    def _wait_for_index(self, name: str) -> None:
        deadline = time.monotonic() + INDEX_WAIT_S
        while True:
            info = self.client.describe_index(name, "vector")
            if info.get("state") == "Finished" and not info.get("pending_index_rows"):
                return
            if info.get("state") == "Failed":
                raise MMSearchError(f"Milvus failed to build the index of {name}: {info.get('index_state_fail_reason', '')}")
            if time.monotonic() > deadline:
                raise MMSearchError(
                    f"Milvus has not finished the index of {name} after {INDEX_WAIT_S:.0f} s "
                    "(set MMSEARCH_MILVUS_INDEX_WAIT to wait longer); run `mmsearch index` again later"
                )
            time.sleep(0.5)


def _row(item: Item, row_hash: str, vector: np.ndarray, product: Mapping[str, Any], store_id: str) -> dict[str, Any]:
    pid, media, _ = item
    attributes = product["attributes"]
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    price = product["price"]
    return {
        "key": _key(pid, media),
        "product_id": pid,
        "store_id": store_id,
        "row_hash": row_hash,
        "vector": vector.tolist(),
        "category": fold(product["category"] or ""),
        "brand": fold(product["brand"] or ""),
        "price": float(price) if price is not None else 0.0,
        "has_price": price is not None,
        "core": {c: fold(str(product[c] or "")) for c in MILVUS_CORE_JSON},
        "attributes": {k: fold(str(v)) for k, v in attributes.items()},
    }


def _read_after(synced_at: float) -> dict[str, Any]:
    """Read options that see everything written up to ``synced_at`` (seconds since the
    epoch): a Milvus hybrid timestamp is milliseconds shifted left by 18 logical bits."""
    physical_ms = int((synced_at + GUARANTEE_MARGIN_S) * 1000)
    return {"consistency_level": "Customized", "guarantee_timestamp": physical_ms << 18}


def _load(client: Any, name: str) -> None:
    """Load a collection for search unless it is loaded (a load call waits about a
    second even then); wait up to LOAD_WAIT_S for one still loading, as every collection
    is on a server that has just restarted."""
    from pymilvus.client.types import LoadState

    if client.get_load_state(name).get("state") != LoadState.Loaded:
        client.load_collection(name, timeout=LOAD_WAIT_S)


def _count(client: Any, name: str) -> int:
    """Rows in the collection, read with Strong consistency: every write so far counts."""
    return int(client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"])


def _field(client: Any, name: str, field: str) -> dict[str, Any] | None:
    return next((f for f in client.describe_collection(name)["fields"] if f["name"] == field), None)


def _has_field(client: Any, name: str, field: str) -> bool:
    return _field(client, name, field) is not None


def _dim(client: Any, name: str) -> int:
    vector = _field(client, name, "vector")
    if vector is None:
        raise MMSearchError(f"Milvus collection {name} has no vector field: drop it and run `mmsearch index`")
    return int(vector["params"]["dim"])


def _iterate(client: Any, name: str, fields: list[str], filter: str = "") -> Iterator[list[dict[str, Any]]]:
    iterator = client.query_iterator(name, batch_size=5000, filter=filter, output_fields=fields)
    try:
        while batch := iterator.next():
            yield batch
    finally:
        iterator.close()


class MilvusPart:
    """A part whose vectors live in a Milvus collection; filters run inside Milvus."""

    def __init__(self, name: str, entry: dict[str, Any], ef_search: int = 100):
        self.name, self.entry, self.ef_search = name, entry, ef_search
        self.uri, self.collection = entry["uri"], entry["collection"]
        self.client = connect(self.uri)
        self.max_per_product = entry.get("max_per_product", 1)
        self.reads = _read_after(entry.get("synced_at", 0.0))
        with milvus_errors(self.uri, f"opening collection {self.collection}"):
            if not self.client.has_collection(self.collection):
                raise MMSearchError(f"Milvus at {self.uri} has no collection {self.collection}: run `mmsearch index`")
            _load(self.client, self.collection)

    @property
    def count(self) -> int:
        with milvus_errors(self.uri, "counting rows"):
            return _count(self.client, self.collection)

    def products(self) -> set[str]:
        with milvus_errors(self.uri, "listing products"):
            return {row["product_id"] for batch in _iterate(self.client, self.collection, ["product_id"]) for row in batch}

    def product_vectors(self, pid: str) -> np.ndarray:
        rows = self._rows_of([pid])
        return np.array([r["vector"] for r in rows], dtype=np.float32).reshape(len(rows), self.entry["dim"])

    def candidates(self, queries: np.ndarray, n: int, scope: Scope) -> set[str]:
        """Up to ``n`` products nearest to any query vector, filtered by Milvus."""
        limit = min(n * self.max_per_product, MAX_LIMIT)
        expr = scope.filters.milvus() if scope.filters else ""
        with milvus_errors(self.uri, f"searching {self.collection}"):
            hits = self.client.search(
                self.collection,
                data=[q.tolist() for q in queries],
                filter=expr,
                limit=limit,
                output_fields=["product_id"],
                search_params={"metric_type": "COSINE", "params": {"ef": max(self.ef_search, limit)}},
                **self.reads,
            )
        found: set[str] = set()
        for per_query in hits:
            ranked = dict.fromkeys(hit["entity"]["product_id"] for hit in per_query)
            found.update(list(ranked)[:n])
        return found

    def score(self, queries: np.ndarray, products: set[str]) -> dict[str, float]:
        """Exact cosine of each product's best item against the best query vector."""
        rows = self._rows_of(sorted(products))
        vectors = np.array([r["vector"] for r in rows], dtype=np.float32).reshape(len(rows), self.entry["dim"])
        return best_per_product([r["product_id"] for r in rows], vectors, queries)

    def _rows_of(self, pids: list[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        with milvus_errors(self.uri, f"reading vectors from {self.collection}"):
            for start in range(0, len(pids), QUERY_IN_BATCH):
                chunk = pids[start : start + QUERY_IN_BATCH]
                rows += self.client.query(
                    self.collection,
                    filter=f"product_id in {_json_literal_list(chunk)}",
                    output_fields=["product_id", "vector"],
                    **self.reads,
                )
        return rows
