"""The content generator's vector index: HNSW over the catalog vectors, one graph per model.

The content generator (:class:`~shoprank.candidates.content.ContentSimilarity`) finds each
query's nearest products by cosine. Scanning the 50,000 x 384 catalog costs ~5 ms a query
(memory bound); a qdrant-edge HNSW search with ``hnsw_ef`` 128 costs ~1.2 ms and finds
99.9% of the exact top 80 (``shoprank bench`` measures it: ``reports/bench_content_index.json``).

An HNSW build is not reproducible: two builds from the same vectors give slightly different
graphs, hence slightly different neighbours. So the graph is part of the model. Training and
evaluation search one shard, built once per set of vectors (folder
``<data>/index/content-<digest>``), and a saved model carries that shard's files
(:meth:`ContentIndex.__getstate__`): the service searches the very graph the evaluation
measured. Every process searches a private copy (a shard is opened by one process at a time).

Which products may be returned is the caller's boolean mask (launched and in stock at the
query's moment), passed to Qdrant as the ids it must not return; the filter is built once per
mask (a day for the service, a cutoff for the evaluation).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from shoprank.candidates.data import Catalog
from shoprank.embeddings.shards import COPY_PREFIX, own_copy

#: HNSW search breadth: 128 found 99.9% of the exact top 80 at 1.2 ms (seed scale).
DEFAULT_HNSW_EF = 128
HNSW_M = 16
EF_CONSTRUCT = 100
UPSERT_BATCH = 2_000
#: KB of vectors from which a segment gets an HNSW graph, and below which a filtered search
#: scans exactly (~6,500 vectors of 384 floats): small catalogs are searched exactly.
THRESHOLD_KB = 10_000
PAYLOAD = ("launched_at", "in_stock")
#: Filters kept (one per day or cutoff in use).
FILTERS_KEPT = 8


def vectors_digest(vectors: np.ndarray, launched: np.ndarray, in_stock: np.ndarray) -> str:
    """A short content hash of what the shard holds and how it is built."""
    digest = hashlib.blake2b(digest_size=10)
    digest.update(f"{vectors.shape}|{HNSW_M}|{EF_CONSTRUCT}|{THRESHOLD_KB}".encode())
    for array in (vectors.astype(np.float32), launched.astype(np.int64), in_stock.astype(bool)):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _config(dim: int) -> Any:
    import qdrant_edge as qe

    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Dot),
        hnsw_config=qe.HnswIndexConfig(
            m=HNSW_M, ef_construct=EF_CONSTRUCT, full_scan_threshold=THRESHOLD_KB
        ),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=THRESHOLD_KB),
        max_search_threads=1,
    )


def build_shard(
    path: Path, vectors: np.ndarray, launched: np.ndarray, in_stock: np.ndarray
) -> None:
    """Write an HNSW shard of every non-zero row of ``vectors`` (point id = row) at ``path``.

    Each point's payload is its launch time (``launched``, epoch microseconds) and whether
    it is in stock (0/1), both with payload indexes: the filters searches use.
    """
    import qdrant_edge as qe

    ids = np.flatnonzero(np.linalg.norm(vectors, axis=1) > 0)
    shard = qe.EdgeShard.create(str(path), _config(vectors.shape[1]))
    for field in PAYLOAD:
        shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Integer))
    for start in range(0, len(ids), UPSERT_BATCH):
        part = ids[start : start + UPSERT_BATCH]
        points = [
            qe.Point(int(i), v, {"launched_at": int(launched[i]), "in_stock": int(in_stock[i])})
            for i, v in zip(part, vectors[part].tolist(), strict=True)
        ]
        shard.update(qe.UpdateOperation.upsert_points(points))
    shard.optimize()
    shard.flush()
    shard.close()


def catalog_payload(catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """Per product id: launch time (epoch microseconds, int64 max if unknown) and stock."""
    launched = np.full(catalog.n_items + 1, np.iinfo(np.int64).max, dtype=np.int64)
    stamps = catalog.frame["launched_at"].to_numpy("datetime64[us]").astype(np.int64)
    launched[catalog.frame.index] = stamps
    stock = np.zeros(catalog.n_items + 1, dtype=bool)
    stock[catalog.frame.index] = catalog.frame["in_stock"].astype(bool).to_numpy()
    return launched, stock


class ContentIndex:
    """Nearest products by dot product (the vectors are unit length), among allowed ones.

    Args:
        source: A complete shard folder (built by :meth:`build`).
        launched: Per product id, the launch time in the shard's payload.
        in_stock: Per product id, the stock flag in the shard's payload.
        inside: Per product id, whether the shard holds it (it has a vector).
        dim: Vector size.
        digest: :func:`vectors_digest` of what it holds.
        hnsw_ef: Search breadth (raised to ``k``).
    """

    def __init__(
        self,
        source: Path,
        launched: np.ndarray,
        in_stock: np.ndarray,
        inside: np.ndarray,
        dim: int,
        digest: str,
        hnsw_ef: int = DEFAULT_HNSW_EF,
    ):
        self.launched, self.in_stock, self.inside = launched, in_stock, inside
        self.dim = dim
        self.digest = digest
        self.hnsw_ef = hnsw_ef
        self._source: Path | None = source
        self._files: dict[str, bytes] | None = None
        self._shard: Any = None
        self._filters: dict[bytes, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def build(
        cls, vectors: np.ndarray, catalog: Catalog, folder: Path, hnsw_ef: int = DEFAULT_HNSW_EF
    ) -> ContentIndex:
        """The index of ``vectors`` under ``folder`` (``content-<digest>``), built if missing."""
        launched, in_stock = catalog_payload(catalog)
        digest = vectors_digest(vectors, launched, in_stock)
        home = folder / f"content-{digest}"
        home.mkdir(parents=True, exist_ok=True)
        private = own_copy(home, lambda path: build_shard(path, vectors, launched, in_stock))
        inside = np.linalg.norm(vectors, axis=1) > 0
        index = cls(home / "shard", launched, in_stock, inside, vectors.shape[1], digest, hnsw_ef)
        index._open(private)
        return index

    # Pickling: a saved model carries the shard's files

    def __getstate__(self) -> dict[str, Any]:
        files = self._files
        if files is None:
            assert self._source is not None
            # preallocated WAL and payload pages are mostly zeros
            files = {
                str(p.relative_to(self._source)): zlib.compress(p.read_bytes(), 1)
                for p in sorted(self._source.rglob("*"))
                if p.is_file()
            }
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return {**state, "files": files}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._files = state.pop("files")
        self.__dict__.update(state)
        self._source = None
        self._shard, self._filters, self._lock = None, {}, threading.Lock()

    # Searching

    def _open(self, path: Path) -> None:
        import qdrant_edge as qe

        self._shard = qe.EdgeShard.load(str(path), _config(self.dim))

    def _ensure_open(self) -> Any:
        if self._shard is None:
            with self._lock:
                if self._shard is None:
                    # named as own_copy names copies: a killed process's copy is removed later
                    private = Path(tempfile.mkdtemp(prefix=f"{COPY_PREFIX}{os.getpid()}-"))
                    atexit.register(shutil.rmtree, private, True)
                    shard = private / "shard"
                    if self._files is not None:
                        for name, data in self._files.items():
                            target = shard / name
                            target.parent.mkdir(parents=True, exist_ok=True)
                            target.write_bytes(zlib.decompress(data))
                    else:
                        assert self._source is not None
                        shutil.copytree(self._source, shard)
                    self._open(shard)
        return self._shard

    def _filter(self, allowed: np.ndarray) -> Any:
        """Qdrant's filter for ``allowed``, a mask over product ids (built once per mask).

        The usual masks (launched by a moment, in stock or not) become payload conditions,
        which the HNSW search follows best; any other mask excludes the ids it leaves out.
        """
        import qdrant_edge as qe

        key = hashlib.blake2b(np.packbits(allowed).tobytes(), digest_size=16).digest()
        key += len(allowed).to_bytes(8, "little")
        found = self._filters.get(key)
        if found is None:
            found = self._payload_filter(allowed)
            if found is None:
                banned = {int(i) for i in np.flatnonzero(self.inside & ~allowed)}
                found = qe.Filter(must_not=[qe.HasIdCondition(banned)]) if banned else None
            kept = dict(list(self._filters.items())[-(FILTERS_KEPT - 1) :])
            self._filters = {**kept, key: found}
        return found

    def _payload_filter(self, allowed: np.ndarray) -> Any:
        """``allowed`` as payload conditions, if it is "launched by T" (and "in stock")."""
        import qdrant_edge as qe

        want = allowed & self.inside
        if not want.any():
            return None
        last = self.launched[want].max()
        launched = self.inside & (self.launched <= last)
        for stocked in (True, False):
            if np.array_equal(want, launched & self.in_stock if stocked else launched):
                must = [qe.FieldCondition("launched_at", range=qe.RangeFloat(lte=float(last)))]
                if stocked:
                    must.append(qe.FieldCondition("in_stock", match=qe.MatchAny([1])))
                return qe.Filter(must=must)
        return None

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> np.ndarray:
        """Product ids of each query's ``k`` nearest allowed products, best first (-1 padded).

        Args:
            queries: (n, dim) unit vectors.
            k: Neighbours per query.
            allowed: Boolean mask over product ids; products beyond it are never returned.
        """
        import qdrant_edge as qe

        shard = self._ensure_open()
        flt = self._filter(np.asarray(allowed, dtype=bool))
        params = qe.SearchParams(hnsw_ef=max(k, self.hnsw_ef))
        requests = [
            qe.QueryRequest(
                limit=k,
                query=qe.Query.Nearest(q),
                filter=flt,
                params=params,
                with_payload=False,
            )
            for q in np.asarray(queries, dtype=np.float32).tolist()
        ]
        out = np.full((len(requests), k), -1, dtype=np.int64)
        if not requests:
            return out
        if len(requests) == 1:
            results = [shard.query(requests[0])]
        else:
            results = shard.query_batch(qe.QueryBatchRequest(requests))
        for row, hits in enumerate(results):
            ids = [int(p.id) for p in hits]
            out[row, : len(ids)] = ids
        return out
