"""The content generator's HNSW index: what it may return, what it finds, what a model carries."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from shoprank.candidates.content import ContentSimilarity
from shoprank.candidates.data import Catalog, Queries
from shoprank.embeddings.content_index import ContentIndex

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _catalog(n: int, rng: np.random.Generator) -> Catalog:
    frame = pd.DataFrame(
        {
            "launched_at": [
                (T0 + timedelta(days=int(d))).replace(tzinfo=None) for d in rng.integers(0, 100, n)
            ],
            "in_stock": rng.random(n) > 0.1,
        },
        index=pd.RangeIndex(1, n + 1, name="product_id"),
    )
    return Catalog(frame)


def _clustered(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors of low intrinsic dimension around 40 topics, as text embeddings are."""
    basis = rng.normal(size=(12, dim))
    centres = rng.normal(size=(40, 12))
    latent = centres[rng.integers(0, 40, n)] + 0.5 * rng.normal(size=(n, 12))
    vectors = latent @ basis + 0.1 * rng.normal(size=(n, dim))
    vectors = np.vstack([np.zeros((1, dim)), vectors]).astype(np.float32)  # row 0: no product
    return ContentSimilarity(vectors).vectors


def _queries(n: int, n_items: int, rng: np.random.Generator) -> Queries:
    recent = rng.integers(1, n_items + 1, size=(n, 5))
    recent[: n // 4, 1:] = -1  # some with one recent product
    recent[-3:] = -1  # and some with none
    ids = np.arange(1, n + 1)
    return Queries(ids, T0, recent, pd.DataFrame({"user_id": ids}))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """3,000 vectors: under the indexing threshold, so qdrant searches them exactly."""
    rng = np.random.default_rng(0)
    vectors = _clustered(3_000, 32, rng)
    catalog = _catalog(3_000, rng)
    index = ContentIndex.build(vectors, catalog, tmp_path_factory.mktemp("index"))
    return vectors, catalog, index, rng


def _dense_and_indexed(vectors, index):
    return ContentSimilarity(vectors), ContentSimilarity(vectors, index=index)


@pytest.mark.parametrize("mask", ["launched_in_stock", "launched", "arbitrary"])
def test_index_proposes_what_the_scan_does_among_allowed_products(small, mask):
    vectors, catalog, index, rng = small
    launched = catalog.launched_mask(T0 + timedelta(days=60))
    stock = np.zeros(catalog.n_items + 1, dtype=bool)
    stock[catalog.frame.index] = catalog.frame["in_stock"].to_numpy()
    allowed = {
        "launched_in_stock": launched & stock,
        "launched": launched,
        "arbitrary": launched & (rng.random(catalog.n_items + 1) > 0.3),
    }[mask]
    queries = _queries(60, catalog.n_items, rng)
    dense, indexed = _dense_and_indexed(vectors, index)
    want, got = dense.propose(queries, 40, allowed), indexed.propose(queries, 40, allowed)
    assert (got.items[-3:] == -1).all()  # no recent products: nothing to propose
    found = got.items[got.items >= 0]
    assert allowed[found].all() and (found != 0).all()
    for a, b in zip(want.items, got.items, strict=True):
        assert set(a[a >= 0]) == set(b[b >= 0])
    # scores at any pair are the scan's (what the ranker reads for every candidate)
    rows = np.repeat(np.arange(len(queries)), 5)
    items = rng.choice(np.flatnonzero(allowed), len(rows))
    np.testing.assert_allclose(got.at(rows, items), want.at(rows, items), rtol=1e-5, atol=1e-6)
    # best first by that score
    first = got.items[0][got.items[0] >= 0]
    scores = got.at(np.zeros(len(first), dtype=np.int64), first)
    assert (np.diff(scores) <= 0).all()


def test_a_saved_index_carries_its_graph_and_answers_the_same(small):
    vectors, catalog, index, rng = small
    queries = _queries(30, catalog.n_items, rng)
    allowed = catalog.launched_mask(T0 + timedelta(days=80))
    before = ContentSimilarity(vectors, index=index).propose(queries, 20, allowed).items
    restored = pickle.loads(pickle.dumps(ContentSimilarity(vectors, index=index)))
    assert restored.index is not None and restored.index.digest == index.digest
    assert np.array_equal(restored.propose(queries, 20, allowed).items, before)


def test_one_index_per_set_of_vectors_and_catalog(small, tmp_path):
    vectors, catalog, index, _ = small
    again = ContentIndex.build(vectors, catalog, tmp_path)
    assert again.digest == index.digest
    other = catalog.frame.copy()
    other.loc[1, "in_stock"] = not other.loc[1, "in_stock"]
    assert ContentIndex.build(vectors, Catalog(other), tmp_path).digest != index.digest


def test_hnsw_finds_nearly_all_of_the_exact_top_k(tmp_path):
    """8,000 x 384 is over the threshold: a real HNSW graph, searched approximately."""
    rng = np.random.default_rng(1)
    vectors = _clustered(8_000, 384, rng)
    catalog = _catalog(8_000, rng)
    index = ContentIndex.build(vectors, catalog, tmp_path)
    assert index._ensure_open().info().indexed_vectors_count == 8_000
    allowed = catalog.launched_mask(T0 + timedelta(days=90))
    queries = _queries(200, catalog.n_items, rng)
    dense, indexed = _dense_and_indexed(vectors, index)
    want = dense.propose(queries, 50, allowed).items
    got = indexed.propose(queries, 50, allowed).items
    recall = [
        len(set(a[a >= 0]) & set(b[b >= 0])) / max((a >= 0).sum(), 1)
        for a, b in zip(want, got, strict=True)
    ]
    assert np.mean(recall) >= 0.98
    assert allowed[got[got >= 0]].all()
