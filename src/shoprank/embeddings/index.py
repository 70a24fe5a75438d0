"""Vector index over product embeddings: one interface, several backends.

* :class:`EdgeIndex` (default): qdrant-edge, in-process HNSW with payload indexes.
* :class:`LocalClientIndex`: qdrant-client local mode (``":memory:"`` or a folder), exact
  brute force in Python; handy for tests and small catalogs.
* :class:`ServerIndex`: qdrant-client against a Qdrant server (``QDRANT_URL``); same code
  as :class:`LocalClientIndex` apart from the connection, payload indexes and ``hnsw_ef``.
* :class:`NumpyIndex`: exact float32 matrix search, the reference for recall checks.

Vectors are expected L2-normalised; the score is the dot product (= cosine). Every backend
evaluates a :class:`SearchFilter` through the same list of conditions
(:func:`filter_conditions`), so they agree on its meaning.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

MISSING_ID = -1
"""Id used to pad batch results when a query has fewer than ``k`` hits (score ``-inf``)."""
KEYWORD_FIELDS = ("category_l1", "category_l2", "brand")
INTEGER_FIELDS = ("in_stock", "launched_at")
FLOAT_FIELDS = ("price",)
PAYLOAD_FIELDS = (*KEYWORD_FIELDS, "price", "in_stock", "launched_at")
DEFAULT_HNSW_EF = 256
COLLECTION = "products"
UPSERT_BATCH = 1000

IndexKind = Literal["edge", "local", "server", "numpy"]


@dataclass(frozen=True)
class SearchFilter:
    """Restrictions on the products a search may return (all given ones must hold).

    Attributes:
        category_l1: One category or a list (any of them).
        category_l2: One sub-category or a list.
        brand: One brand or a list.
        price_min: Inclusive lower price bound.
        price_max: Inclusive upper price bound.
        in_stock_only: Only products in stock.
        launched_before: Only products with ``launched_at < launched_before``.
        launched_after: Only products with ``launched_at >= launched_after``.
        exclude_ids: Product ids never to return (e.g. already seen or in the cart).

    Datetimes are compared at one-second resolution; naive datetimes are taken as UTC.
    """

    category_l1: str | Sequence[str] | None = None
    category_l2: str | Sequence[str] | None = None
    brand: str | Sequence[str] | None = None
    price_min: float | None = None
    price_max: float | None = None
    in_stock_only: bool = False
    launched_before: datetime | None = None
    launched_after: datetime | None = None
    exclude_ids: Iterable[int] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class Condition:
    """One backend-neutral condition: ``any`` (value in list), ``range`` or ``exclude_ids``."""

    kind: Literal["any", "range", "exclude_ids"]
    key: str
    values: tuple[Any, ...] = ()
    gte: float | None = None
    lte: float | None = None
    lt: float | None = None


def epoch_seconds(moment: datetime | pd.Timestamp) -> int:
    """Return whole seconds since the Unix epoch (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(np.floor(moment.timestamp()))


def _as_tuple(value: str | Sequence[str]) -> tuple[str, ...]:
    """Return a single string or a sequence of strings as a tuple."""
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


def filter_conditions(filters: SearchFilter | None) -> list[Condition]:
    """Translate a :class:`SearchFilter` into the conditions every backend applies.

    Args:
        filters: The filter, or None for no restriction.

    Returns:
        The conditions; all must hold (``exclude_ids`` is a must-not).
    """
    if filters is None:
        return []
    out: list[Condition] = []
    for key in KEYWORD_FIELDS:
        value = getattr(filters, key)
        if value is not None:
            out.append(Condition("any", key, _as_tuple(value)))
    if filters.price_min is not None or filters.price_max is not None:
        out.append(Condition("range", "price", gte=filters.price_min, lte=filters.price_max))
    if filters.in_stock_only:
        out.append(Condition("any", "in_stock", (1,)))
    if filters.launched_before is not None or filters.launched_after is not None:
        after, before = filters.launched_after, filters.launched_before
        out.append(
            Condition(
                "range",
                "launched_at",
                gte=None if after is None else epoch_seconds(after),
                lt=None if before is None else epoch_seconds(before),
            )
        )
    if filters.exclude_ids is not None:
        ids = tuple(int(i) for i in np.asarray(list(filters.exclude_ids)).ravel())
        if ids:
            out.append(Condition("exclude_ids", "id", ids))
    return out


def payload_records(payload: pd.DataFrame) -> list[dict[str, Any]]:
    """Return the stored payload per point from product rows.

    ``in_stock`` is stored as 0/1 (qdrant-edge 0.9.0 cannot filter a bool payload) and
    ``launched_at`` as integer epoch seconds.

    Args:
        payload: Rows aligned with the ids being upserted, with the columns of
            :data:`PAYLOAD_FIELDS`.

    Returns:
        One plain-Python dict per row.
    """
    frame = pd.DataFrame(
        {
            "category_l1": payload["category_l1"].astype(str).to_numpy(),
            "category_l2": payload["category_l2"].astype(str).to_numpy(),
            "brand": payload["brand"].astype(str).to_numpy(),
            "price": payload["price"].astype(float).to_numpy(),
            "in_stock": payload["in_stock"].astype(bool).astype(int).to_numpy(),
            "launched_at": _epoch_column(payload["launched_at"]),
        }
    )
    return frame.to_dict("records")


def _epoch_column(column: pd.Series) -> np.ndarray:
    """Return a timestamp (or already-integer) column as int64 epoch seconds."""
    if pd.api.types.is_integer_dtype(column):
        return column.to_numpy(dtype=np.int64)
    stamps = pd.to_datetime(column, utc=True)
    return (stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)


def _check_upsert(ids: Any, vectors: Any, payload: pd.DataFrame, dim: int) -> tuple[Any, Any]:
    """Validate and normalise the arguments of ``upsert``; return ``(ids, vectors)``."""
    ids = np.asarray(ids, dtype=np.int64).ravel()
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape != (len(ids), dim):
        raise ValueError(f"vectors must have shape ({len(ids)}, {dim}), got {vectors.shape}")
    if len(payload) != len(ids):
        raise ValueError("payload must have one row per id (row-aligned)")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("ids must be unique within one upsert")
    return ids, vectors


def _as_queries(query: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return queries as a float32 ``(n, d)`` matrix and whether a single ``(d,)`` was given."""
    queries = np.asarray(query, dtype=np.float32)
    if queries.ndim == 1:
        return queries[None, :], True
    if queries.ndim != 2:
        raise ValueError("query must have shape (d,) or (n, d)")
    return queries, False


def _pack(hits: list[list[tuple[int, float]]], single: bool) -> tuple[np.ndarray, np.ndarray]:
    """Turn per-query ``(id, score)`` lists into arrays (padded with MISSING_ID / -inf)."""
    width = max((len(h) for h in hits), default=0)
    ids = np.full((len(hits), width), MISSING_ID, dtype=np.int64)
    scores = np.full((len(hits), width), -np.inf, dtype=np.float32)
    for row, found in enumerate(hits):
        if found:
            ids[row, : len(found)] = [h[0] for h in found]
            scores[row, : len(found)] = [h[1] for h in found]
    if single:
        return ids[0], scores[0]
    return ids, scores


@runtime_checkable
class VectorIndex(Protocol):
    """What the recommender needs from a vector index.

    ``search`` takes one query ``(d,)`` and returns 1-D ``(ids, scores)`` of at most ``k``
    hits, best first; or ``(n, d)`` queries and returns ``(n, w)`` arrays, ``w <= k``,
    padded with :data:`MISSING_ID` and ``-inf`` where a query has fewer hits.
    """

    def upsert(self, ids: np.ndarray, vectors: np.ndarray, payload: pd.DataFrame) -> None:
        """Insert or replace points (payload rows aligned with ``ids``)."""
        ...

    def search(
        self, query: np.ndarray, k: int, filters: SearchFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the ``k`` best ``(ids, scores)`` by dot product that pass ``filters``."""
        ...

    def count(self) -> int:
        """Return the number of points."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


class NumpyIndex:
    """Exact search over an in-memory float32 matrix (the recall reference)."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.ids = np.empty(0, dtype=np.int64)
        self.vectors = np.empty((0, dim), dtype=np.float32)
        self.payload = pd.DataFrame({name: [] for name in PAYLOAD_FIELDS})

    def upsert(self, ids: np.ndarray, vectors: np.ndarray, payload: pd.DataFrame) -> None:
        """Insert or replace points: existing ids get the new vector and payload."""
        ids, vectors = _check_upsert(ids, vectors, payload, self.dim)
        keep = ~np.isin(self.ids, ids)
        records = pd.DataFrame(payload_records(payload), columns=list(PAYLOAD_FIELDS))
        self.ids = np.concatenate([self.ids[keep], ids])
        self.vectors = np.concatenate([self.vectors[keep], vectors])
        kept = self.payload[keep]
        self.payload = records if kept.empty else pd.concat([kept, records], ignore_index=True)

    def mask(self, filters: SearchFilter | None) -> np.ndarray:
        """Return the boolean mask of points passing ``filters``."""
        keep = np.ones(len(self.ids), dtype=bool)
        for cond in filter_conditions(filters):
            if cond.kind == "exclude_ids":
                keep &= ~np.isin(self.ids, np.asarray(cond.values, dtype=np.int64))
                continue
            column = self.payload[cond.key].to_numpy()
            if cond.kind == "any":
                keep &= np.isin(column, np.asarray(cond.values, dtype=column.dtype))
                continue
            if cond.gte is not None:
                keep &= column >= cond.gte
            if cond.lte is not None:
                keep &= column <= cond.lte
            if cond.lt is not None:
                keep &= column < cond.lt
        return keep

    def search(
        self, query: np.ndarray, k: int, filters: SearchFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the exact top-``k`` by dot product among points passing ``filters``."""
        queries, single = _as_queries(query)
        rows = np.flatnonzero(self.mask(filters))
        width = min(k, len(rows))
        if width == 0:
            return _pack([[] for _ in queries], single)
        matrix = self.vectors if len(rows) == len(self.ids) else self.vectors[rows]
        scores = queries @ matrix.T
        top = np.argpartition(-scores, width - 1, axis=1)[:, :width]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        ids = self.ids[rows][top]
        best = np.take_along_axis(top_scores, order, axis=1).astype(np.float32)
        return (ids[0], best[0]) if single else (ids, best)

    def count(self) -> int:
        """Return the number of points."""
        return len(self.ids)

    def close(self) -> None:
        """Nothing to release."""


class EdgeIndex:
    """qdrant-edge shard: in-process HNSW with payload indexes (the default backend).

    Points are written to an appendable segment; :meth:`optimize` (run by :meth:`upsert`
    unless ``optimize=False``) builds the HNSW graph once a segment is larger than
    ``indexing_threshold_kb``. Below it, search is exact brute force.
    """

    def __init__(
        self,
        path: Path | None = None,
        dim: int = 384,
        hnsw_ef: int = DEFAULT_HNSW_EF,
        m: int = 16,
        ef_construct: int = 100,
        indexing_threshold_kb: int = 10_000,
        full_scan_threshold_kb: int = 10_000,
    ) -> None:
        """Open the shard at ``path`` (created if new) or a temporary one if None.

        Args:
            path: Shard folder; None for a temporary folder removed by :meth:`close`.
            dim: Vector size.
            hnsw_ef: Default size of the HNSW candidate list per query (raised to ``k``).
            m: HNSW edges per node.
            ef_construct: HNSW candidate list size while building.
            indexing_threshold_kb: Segment size (KB of vectors) from which HNSW is built.
            full_scan_threshold_kb: Filtered searches whose candidates fit under this many
                KB of vectors are scored exactly from the payload index instead of HNSW.
        """
        import qdrant_edge as qe

        self._qe = qe
        self.dim = dim
        self.hnsw_ef = hnsw_ef
        self._tmp = None if path is not None else Path(tempfile.mkdtemp(prefix="edge-index-"))
        self.path = Path(path) if path is not None else self._tmp / "shard"
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Dot),
            hnsw_config=qe.HnswIndexConfig(
                m=m, ef_construct=ef_construct, full_scan_threshold=full_scan_threshold_kb
            ),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=indexing_threshold_kb),
        )
        if self.path.is_dir() and any(self.path.iterdir()):
            self.shard = qe.EdgeShard.load(str(self.path), config)
        else:
            self.shard = qe.EdgeShard.create(str(self.path), config)
            self._create_payload_indexes()

    def _create_payload_indexes(self) -> None:
        """Index every payload field used by :class:`SearchFilter`."""
        schema = self._qe.PayloadSchemaType
        kinds = {**dict.fromkeys(KEYWORD_FIELDS, schema.Keyword)}
        kinds.update(dict.fromkeys(INTEGER_FIELDS, schema.Integer))
        kinds.update(dict.fromkeys(FLOAT_FIELDS, schema.Float))
        for name, kind in kinds.items():
            self.shard.update(self._qe.UpdateOperation.create_field_index(name, kind))

    def upsert(
        self, ids: np.ndarray, vectors: np.ndarray, payload: pd.DataFrame, optimize: bool = True
    ) -> None:
        """Insert or replace points, then (by default) build the index with :meth:`optimize`."""
        ids, vectors = _check_upsert(ids, vectors, payload, self.dim)
        records = payload_records(payload)
        qe = self._qe
        for start in range(0, len(ids), UPSERT_BATCH):
            stop = start + UPSERT_BATCH
            points = [
                qe.Point(int(i), vec, rec)
                for i, vec, rec in zip(
                    ids[start:stop], vectors[start:stop].tolist(), records[start:stop], strict=True
                )
            ]
            self.shard.update(qe.UpdateOperation.upsert_points(points))
        if optimize:
            self.optimize()

    def optimize(self) -> bool:
        """Build HNSW / merge segments now (nothing is indexed until this runs)."""
        return self.shard.optimize()

    def search(
        self,
        query: np.ndarray,
        k: int,
        filters: SearchFilter | None = None,
        hnsw_ef: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` by dot product; ``hnsw_ef`` overrides the default per call."""
        qe = self._qe
        queries, single = _as_queries(query)
        ef = max(k, hnsw_ef if hnsw_ef is not None else self.hnsw_ef)
        flt = edge_filter(filter_conditions(filters))
        requests = [
            qe.QueryRequest(
                limit=k,
                query=qe.Query.Nearest(q.tolist()),
                filter=flt,
                params=qe.SearchParams(hnsw_ef=ef),
                with_payload=False,
            )
            for q in queries
        ]
        if len(requests) == 1:
            results = [self.shard.query(requests[0])]
        else:
            results = self.shard.query_batch(qe.QueryBatchRequest(requests))
        return _pack([[(int(p.id), p.score) for p in res] for res in results], single)

    def count(self) -> int:
        """Return the number of points."""
        return self.shard.count(self._qe.CountRequest(exact=True))

    def indexed_count(self) -> int:
        """Return how many vectors are in HNSW-indexed segments."""
        return self.shard.info().indexed_vectors_count

    def close(self) -> None:
        """Flush and close the shard; remove it if it was temporary."""
        self.shard.flush()
        self.shard.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


def edge_filter(conditions: list[Condition]) -> Any:
    """Build a qdrant-edge ``Filter`` from backend-neutral conditions (None if empty)."""
    import qdrant_edge as qe

    must: list[Any] = []
    must_not: list[Any] = []
    for cond in conditions:
        if cond.kind == "exclude_ids":
            must_not.append(qe.HasIdCondition(set(cond.values)))
        elif cond.kind == "any":
            must.append(qe.FieldCondition(cond.key, match=qe.MatchAny(list(cond.values))))
        else:
            bounds = qe.RangeFloat(gte=cond.gte, lte=cond.lte, lt=cond.lt)
            must.append(qe.FieldCondition(cond.key, range=bounds))
    if not must and not must_not:
        return None
    return qe.Filter(must=must or None, must_not=must_not or None)


def client_filter(conditions: list[Condition]) -> Any:
    """Build a qdrant-client ``models.Filter`` from backend-neutral conditions (None if empty)."""
    from qdrant_client import models

    must: list[Any] = []
    must_not: list[Any] = []
    for cond in conditions:
        if cond.kind == "exclude_ids":
            must_not.append(models.HasIdCondition(has_id=list(cond.values)))
        elif cond.kind == "any":
            must.append(
                models.FieldCondition(key=cond.key, match=models.MatchAny(any=list(cond.values)))
            )
        else:
            bounds = models.Range(gte=cond.gte, lte=cond.lte, lt=cond.lt)
            must.append(models.FieldCondition(key=cond.key, range=bounds))
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


class _ClientIndex:
    """Shared qdrant-client code of :class:`LocalClientIndex` and :class:`ServerIndex`.

    The client and the collection are created lazily, on first use, so building the object
    never connects anywhere.
    """

    def __init__(
        self,
        client_kwargs: dict[str, Any],
        local: bool,
        dim: int = 384,
        collection: str = COLLECTION,
        hnsw_ef: int = DEFAULT_HNSW_EF,
    ) -> None:
        self.client_kwargs = client_kwargs
        self.local = local
        self.dim = dim
        self.collection = collection
        self.hnsw_ef = hnsw_ef
        self._client: QdrantClient | None = None

    @property
    def client(self) -> QdrantClient:
        """The qdrant-client, created on first access; ensures the collection exists."""
        if self._client is None:
            from qdrant_client import QdrantClient

            self._client = QdrantClient(**self.client_kwargs)
            self._ensure_collection(self._client)
        return self._client

    def _ensure_collection(self, client: QdrantClient) -> None:
        """Create the collection (and, on a server, its payload indexes) if missing."""
        from qdrant_client import models

        if client.collection_exists(self.collection):
            return
        client.create_collection(
            self.collection,
            vectors_config=models.VectorParams(size=self.dim, distance=models.Distance.DOT),
        )
        if self.local:  # local mode ignores payload indexes (and warns about them)
            return
        schema = models.PayloadSchemaType
        kinds = {**dict.fromkeys(KEYWORD_FIELDS, schema.KEYWORD)}
        kinds.update(dict.fromkeys(INTEGER_FIELDS, schema.INTEGER))
        kinds.update(dict.fromkeys(FLOAT_FIELDS, schema.FLOAT))
        for name, kind in kinds.items():
            client.create_payload_index(self.collection, name, field_schema=kind)

    def upsert(self, ids: np.ndarray, vectors: np.ndarray, payload: pd.DataFrame) -> None:
        """Insert or replace points, in batches of :data:`UPSERT_BATCH`."""
        from qdrant_client import models

        ids, vectors = _check_upsert(ids, vectors, payload, self.dim)
        records = payload_records(payload)
        for start in range(0, len(ids), UPSERT_BATCH):
            stop = start + UPSERT_BATCH
            batch = models.Batch(
                ids=ids[start:stop].tolist(),
                vectors=vectors[start:stop].tolist(),
                payloads=records[start:stop],
            )
            self.client.upsert(self.collection, points=batch, wait=True)

    def search(
        self,
        query: np.ndarray,
        k: int,
        filters: SearchFilter | None = None,
        hnsw_ef: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by dot product (exact in local mode, HNSW with ``hnsw_ef`` on a server)."""
        from qdrant_client import models

        queries, single = _as_queries(query)
        flt = client_filter(filter_conditions(filters))
        ef = max(k, hnsw_ef if hnsw_ef is not None else self.hnsw_ef)
        params = None if self.local else models.SearchParams(hnsw_ef=ef)
        requests = [
            models.QueryRequest(query=q.tolist(), limit=k, filter=flt, params=params)
            for q in queries
        ]
        responses = self.client.query_batch_points(self.collection, requests=requests)
        hits = [[(int(p.id), p.score) for p in resp.points] for resp in responses]
        return _pack(hits, single)

    def count(self) -> int:
        """Return the number of points."""
        return self.client.count(self.collection, exact=True).count

    def close(self) -> None:
        """Close the client if it was opened."""
        if self._client is not None:
            self._client.close()
            self._client = None


class LocalClientIndex(_ClientIndex):
    """qdrant-client local mode: exact brute force in Python, in memory or in a folder."""

    def __init__(self, path: Path | str | None = None, dim: int = 384) -> None:
        """Open local mode at ``path`` (a folder), or in memory when None / ``":memory:"``."""
        location = None if path is None else str(path)
        kwargs = {"location": ":memory:"} if location in (None, ":memory:") else {"path": location}
        super().__init__(kwargs, local=True, dim=dim)


class ServerIndex(_ClientIndex):
    """qdrant-client against a Qdrant server (HNSW and payload indexes on the server)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        dim: int = 384,
        collection: str = COLLECTION,
        hnsw_ef: int = DEFAULT_HNSW_EF,
    ) -> None:
        """Point at ``url`` (e.g. ``QDRANT_URL``); nothing connects until first use."""
        super().__init__(
            {"url": url, "api_key": api_key},
            local=False,
            dim=dim,
            collection=collection,
            hnsw_ef=hnsw_ef,
        )
        self.url = url


def open_index(
    kind: IndexKind | None = None,
    url: str | None = None,
    path: Path | None = None,
    dim: int = 384,
    api_key: str | None = None,
) -> VectorIndex:
    """Open a vector index: a Qdrant server when ``url`` is given, else qdrant-edge.

    Args:
        kind: ``"edge"``, ``"local"``, ``"server"`` or ``"numpy"``; None picks
            ``"server"`` if ``url`` is set, else ``"edge"``.
        url: Qdrant server URL (the caller passes ``QDRANT_URL`` from settings/env).
        path: Storage folder for ``edge`` / ``local`` (None: temporary / in memory).
        dim: Vector size.
        api_key: Qdrant API key for ``server``.

    Returns:
        The index.

    Raises:
        ValueError: On an unknown kind, or ``"server"`` without a URL.
    """
    kind = kind or ("server" if url else "edge")
    if kind == "server":
        if not url:
            raise ValueError("kind='server' needs a url (QDRANT_URL)")
        return ServerIndex(url, api_key=api_key, dim=dim)
    if kind == "edge":
        return EdgeIndex(path, dim=dim)
    if kind == "local":
        return LocalClientIndex(path, dim=dim)
    if kind == "numpy":
        return NumpyIndex(dim=dim)
    raise ValueError(f"unknown index kind {kind!r}: use edge, local, server or numpy")
