"""Latency and recall benchmark of the vector index backends.

Run: ``python -m shoprank.embeddings.bench [n]``. Per-query latency (one query per call, as
the recommender issues them) of unfiltered and filtered (``category_l1`` + ``in_stock``)
top-``k`` searches on :class:`EdgeIndex` at a few ``hnsw_ef`` values,
:class:`LocalClientIndex` and :class:`NumpyIndex`, with recall@k against
:class:`NumpyIndex` (exact). Queries are catalog vectors plus noise (cosine ~0.7 to their
seed product), the filter is the seed product's category and in stock.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprank.embeddings.encoder import EmbeddingStore
from shoprank.embeddings.index import (
    DEFAULT_HNSW_EF,
    MISSING_ID,
    EdgeIndex,
    LocalClientIndex,
    NumpyIndex,
    SearchFilter,
    VectorIndex,
)

CATEGORY_SHARES = (0.13, 0.13, 0.12, 0.11, 0.10, 0.09, 0.09, 0.09, 0.07, 0.07)


@dataclass(frozen=True)
class BenchRow:
    """One measured configuration."""

    backend: str
    hnsw_ef: int | None
    filtered: bool
    queries: int
    median_ms: float
    p95_ms: float
    recall_at_k: float


def synthetic_catalog(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Random unit vectors with a payload shaped like the generated shop.

    10 top categories (skewed shares), 60 sub-categories, 500 brands, ~92% in stock,
    log-normal prices (median ~34) and launches over 2022-2025.

    Args:
        n: Number of products.
        d: Vector size.
        seed: Random seed.

    Returns:
        ``(ids, vectors, payload)`` aligned row by row.
    """
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, d)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    shares = np.asarray(CATEGORY_SHARES) / sum(CATEGORY_SHARES)
    cat = rng.choice(len(shares), size=n, p=shares)
    sub = cat * 6 + rng.integers(0, 6, size=n)
    start = pd.Timestamp("2022-01-01", tz="UTC")
    payload = pd.DataFrame(
        {
            "category_l1": [f"cat{c}" for c in cat],
            "category_l2": [f"sub{s}" for s in sub],
            "brand": [f"brand{b}" for b in rng.integers(0, 500, size=n)],
            "price": np.round(rng.lognormal(np.log(34.0), 1.1, size=n), 2),
            "in_stock": rng.random(n) < 0.92,
            "launched_at": start + pd.to_timedelta(rng.integers(0, 4 * 365 * 86_400, n), "s"),
        }
    )
    return np.arange(1, n + 1, dtype=np.int64), vectors, payload


def cached_catalog(
    cache_path: Path, products_path: Path, n: int
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Real embeddings from an :class:`EmbeddingStore` joined to the catalog's payload."""
    ids, _, vectors = EmbeddingStore(cache_path).read()
    if n:
        ids, vectors = ids[:n], vectors[:n]
    products = pd.read_parquet(products_path).set_index("product_id")
    keep = np.isin(ids, products.index)
    ids, vectors = ids[keep], vectors[keep]
    return ids, vectors, products.loc[ids].reset_index()


def make_queries(
    vectors: np.ndarray, payload: pd.DataFrame, count: int, seed: int = 1
) -> tuple[np.ndarray, list[SearchFilter]]:
    """Noisy copies of random catalog vectors, and each seed product's category filter."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), size=count, replace=False)
    noise = rng.standard_normal((count, vectors.shape[1])).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    queries = vectors[rows] + noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    cats = payload["category_l1"].to_numpy()[rows]
    filters = [SearchFilter(category_l1=str(c), in_stock_only=True) for c in cats]
    return queries, filters


def time_searches(
    search: Callable[..., tuple[np.ndarray, np.ndarray]],
    queries: np.ndarray,
    filters: list[SearchFilter] | None,
    k: int,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run one search per query; return latencies (ms) and the returned ids."""
    latencies, results = [], []
    for i, query in enumerate(queries):
        flt = None if filters is None else filters[i]
        tick = time.perf_counter()
        ids, _ = search(query, k, flt)
        latencies.append((time.perf_counter() - tick) * 1000.0)
        results.append(ids[ids != MISSING_ID])
    return np.asarray(latencies), results


def mean_recall(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """Mean over queries of ``|got ∩ want| / |want|``."""
    recalls = [len(np.intersect1d(g, w)) / max(len(w), 1) for g, w in zip(got, want, strict=True)]
    return float(np.mean(recalls))


def _measure(
    name: str,
    search: Callable[..., tuple[np.ndarray, np.ndarray]],
    queries: np.ndarray,
    filters: list[SearchFilter],
    k: int,
    truth: dict[bool, list[np.ndarray]],
    ef: int | None = None,
) -> list[BenchRow]:
    """Measure one backend unfiltered and filtered; recall against ``truth``."""
    rows = []
    for filtered in (False, True):
        lat, ids = time_searches(search, queries, filters if filtered else None, k)
        recall = mean_recall(ids, truth[filtered][: len(ids)])
        median, p95 = np.percentile(lat, [50, 95])
        row = BenchRow(name, ef, filtered, len(lat), float(median), float(p95), recall)
        rows.append(row)
    return rows


def _timed_build(index: VectorIndex, ids: np.ndarray, vectors: np.ndarray, payload: Any) -> float:
    """Upsert everything (EdgeIndex also builds HNSW); return seconds."""
    tick = time.perf_counter()
    index.upsert(ids, vectors, payload)
    return time.perf_counter() - tick


def run_index_bench(
    n: int = 50_000,
    d: int = 384,
    queries: int = 200,
    k: int = 200,
    out: Path | None = Path("reports/bench_vector_index.json"),
    edge_efs: tuple[int, ...] = (200, DEFAULT_HNSW_EF, 512),
    local_queries: int = 30,
    cache_path: Path | None = None,
    products_path: Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Benchmark the backends; write JSON to ``out`` (if set) and print a rich table.

    Args:
        n: Catalog size (synthetic), or a cap on the cached catalog.
        d: Vector size (synthetic only).
        queries: Queries per configuration.
        k: Results per query.
        out: JSON report path (None: don't write).
        edge_efs: ``hnsw_ef`` values measured on EdgeIndex.
        local_queries: Queries for LocalClientIndex (slow: Python brute force).
        cache_path: Embedding cache to benchmark real vectors instead of random ones.
        products_path: Catalog Parquet giving the payload of ``cache_path`` products.
        seed: Random seed.

    Returns:
        The report (also written to ``out``).
    """
    if cache_path is not None and products_path is not None:
        ids, vectors, payload = cached_catalog(cache_path, products_path, n)
    else:
        ids, vectors, payload = synthetic_catalog(n, d, seed)
    qs, filters = make_queries(vectors, payload, queries, seed + 1)
    build: dict[str, float] = {}
    exact = NumpyIndex(dim=vectors.shape[1])
    build["numpy"] = _timed_build(exact, ids, vectors, payload)
    truth = {
        f: time_searches(exact.search, qs, filters if f else None, k)[1] for f in (False, True)
    }
    rows = _measure("numpy", exact.search, qs, filters, k, truth)
    rows += _bench_edge(ids, vectors, payload, qs, filters, k, truth, edge_efs, build)
    local = LocalClientIndex(dim=vectors.shape[1])
    build["local"] = _timed_build(local, ids, vectors, payload)
    lq = qs[:local_queries]
    rows += _measure("local", local.search, lq, filters[:local_queries], k, truth)
    local.close()
    report = _report(rows, build, len(ids), vectors.shape[1], k, cache_path is not None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    return report


def _bench_edge(
    ids: np.ndarray,
    vectors: np.ndarray,
    payload: pd.DataFrame,
    qs: np.ndarray,
    filters: list[SearchFilter],
    k: int,
    truth: dict[bool, list[np.ndarray]],
    efs: tuple[int, ...],
    build: dict[str, float],
) -> list[BenchRow]:
    """Build an EdgeIndex (upsert + HNSW) and measure it at each ``hnsw_ef``."""
    edge = EdgeIndex(dim=vectors.shape[1])
    try:
        build["edge"] = _timed_build(edge, ids, vectors, payload)
        build["edge_indexed_vectors"] = edge.indexed_count()
        rows = []
        for ef in efs:

            def search(q: np.ndarray, k: int, f: SearchFilter | None, ef: int = ef) -> Any:
                return edge.search(q, k, f, hnsw_ef=ef)

            rows += _measure("edge", search, qs, filters, k, truth, ef=max(ef, k))
        return rows
    finally:
        edge.close()


def _report(
    rows: list[BenchRow], build: dict[str, float], n: int, d: int, k: int, real: bool
) -> dict[str, Any]:
    """Assemble the JSON report."""
    return {
        "n": n,
        "d": d,
        "k": k,
        "vectors": "all-MiniLM-L6-v2 cache" if real else "random unit vectors",
        "filter": "category_l1 of the query's seed product + in_stock_only",
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "build_seconds": build,
        "results": [asdict(row) for row in rows],
    }


def print_table(report: dict[str, Any]) -> None:
    """Print the report as a rich table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"top-{report['k']} search, n={report['n']:,}, d={report['d']}")
    for col in ("backend", "hnsw_ef", "filter", "queries", "median ms", "p95 ms", "recall"):
        table.add_column(col, justify="left" if col == "backend" else "right")
    for row in report["results"]:
        table.add_row(
            row["backend"],
            "-" if row["hnsw_ef"] is None else str(row["hnsw_ef"]),
            "cat+stock" if row["filtered"] else "none",
            str(row["queries"]),
            f"{row['median_ms']:.2f}",
            f"{row['p95_ms']:.2f}",
            f"{row['recall_at_k']:.3f}",
        )
    Console().print(table)
    Console().print({key: round(v, 2) for key, v in report["build_seconds"].items()})


if __name__ == "__main__":
    run_index_bench(n=int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)


def content_index_report(
    state: Any,
    efs: tuple[int, ...] = (64, 128, 256, 512),
    n_queries: int = 2_000,
    timed: int = 300,
    seed: int = 0,
) -> dict[str, Any]:
    """The saved model's content index against an exact scan, on its own users' profiles.

    Queries are the profiles of ``n_queries`` users with recent products (the fitted
    state's), products allowed as the service allows them on the fit's day; ``k`` is the
    content generator's candidate count. Recall@k is against the scan's top k; latency is
    one :meth:`~shoprank.candidates.content.ContentSimilarity.propose` call per query (the
    service's call: profile, search, exact cosines, order), median and p99 over ``timed``
    queries, beside the scan's in the same run.
    """
    from shoprank.candidates.content import ContentSimilarity
    from shoprank.candidates.data import Queries
    from shoprank.ranking.dataset import candidates_for
    from shoprank.ranking.examples import in_stock_mask

    content = state.generators["content"]
    if content.index is None:
        raise ValueError("this model's content generator has no index (saved before it)")
    k = candidates_for(state.candidates_per_generator, "content")
    allowed = state.catalog.launched_mask(state.fitted_at) & in_stock_mask(state.catalog)
    users = state.users.index.to_numpy(np.int64)
    with_recent = users[state.recent_of(users)[:, 0] >= 0]
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(with_recent, min(n_queries, len(with_recent)), replace=False))
    profiles = state.users.reindex(ids)
    profiles.index.name = "user_id"
    queries = Queries(ids, state.fitted_at, state.recent_of(ids), profiles.reset_index())
    scan = ContentSimilarity(content.vectors)
    exact = scan.propose(queries, k, allowed).items
    singles = [queries.take(slice(i, i + 1)) for i in range(min(timed, len(ids)))]

    def latency(generator: ContentSimilarity) -> dict[str, float]:
        times = []
        for one in singles:
            started = time.perf_counter()
            generator.propose(one, k, allowed)
            times.append((time.perf_counter() - started) * 1000)
        return {"median_ms": float(np.median(times)), "p99_ms": float(np.percentile(times, 99))}

    index, configured = content.index, content.index.hnsw_ef
    results = {}
    try:
        for ef in efs:
            index.hnsw_ef = ef
            found = content.propose(queries, k, allowed).items
            recall = np.array(
                [
                    len(set(a[a >= 0]) & set(b[b >= 0])) / max(int((a >= 0).sum()), 1)
                    for a, b in zip(exact, found, strict=True)
                ]
            )
            results[str(ef)] = {
                "recall_mean": float(recall.mean()),
                "share_exact_top_k": float((recall == 1).mean()),
                "recall_min": float(recall.min()),
                **latency(content),
            }
    finally:
        index.hnsw_ef = configured
    return {
        "queries": len(ids),
        "k": k,
        "products_allowed": int(allowed.sum()),
        "configured_hnsw_ef": configured,
        "index_digest": index.digest,
        "scan": latency(scan),
        "hnsw_ef": results,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }
