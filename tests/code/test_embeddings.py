"""Content embeddings cache and the vector index backends, on a tiny catalog (seconds)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoprank.data.generator import generate
from shoprank.embeddings.encoder import (
    EMBEDDING_DIM,
    MODEL_NAME,
    EmbeddingStore,
    content_hash,
    embed_catalog,
    load_encoder,
    product_text,
)
from shoprank.embeddings.index import (
    MISSING_ID,
    EdgeIndex,
    LocalClientIndex,
    NumpyIndex,
    SearchFilter,
    ServerIndex,
    VectorIndex,
    epoch_seconds,
    open_index,
)

DIM = 32
START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("tinyshop")
    generate(scale="tiny", seed=1, out_dir=out, start=START, end=END)
    return pd.read_parquet(out / "raw" / "products.parquet")


@pytest.fixture(scope="module")
def vectors(products: pd.DataFrame) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(products), DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class FakeEncoder:
    """Deterministic stand-in for the model: a hashed bag of characters, normalised."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, sentences: list[str], **kwargs: object) -> np.ndarray:
        self.seen.extend(sentences)
        out = np.zeros((len(sentences), EMBEDDING_DIM), dtype=np.float32)
        for row, text in enumerate(sentences):
            for char in text:
                out[row, ord(char) % EMBEDDING_DIM] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


# ---------------------------------------------------------------- encoder and cache


def test_product_text_and_hash() -> None:
    frame = pd.DataFrame({"title": ["Red mug", "Lamp"], "description": ["Ceramic.", None]})
    assert product_text(frame).tolist() == ["Red mug. Ceramic.", "Lamp."]
    hashes = content_hash(["a", "a", "b"])
    assert hashes[0] == hashes[1] != hashes[2] and len(hashes[0]) == 40
    assert content_hash(["a"], model_name="other")[0] != hashes[0]


def test_embed_catalog_is_incremental(products: pd.DataFrame, tmp_path: Path) -> None:
    cache = tmp_path / "emb" / "products.parquet"
    catalog = products.head(40).reset_index(drop=True)
    first = embed_catalog(catalog, cache, encoder=FakeEncoder(), progress=False)
    assert (first.n_embedded, first.n_reused) == (40, 0)
    assert first.vectors.shape == (40, EMBEDDING_DIM) and first.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first.vectors, axis=1), 1.0, atol=1e-5)
    assert first.embeddings_per_second > 0

    schema = pq.read_schema(cache)
    assert schema.field("vector").type == pa.list_(pa.float32(), EMBEDDING_DIM)
    assert schema.field("product_id").type == pa.int64()

    changed = catalog.copy()
    changed.loc[3, "description"] = "Completely new copy about a different product."
    extra = products.iloc[40:45]
    shuffled = pd.concat([changed, extra]).sample(frac=1.0, random_state=0)
    encoder = FakeEncoder()
    second = embed_catalog(shuffled, cache, encoder=encoder, progress=False)
    assert (second.n_embedded, second.n_reused) == (6, 39)
    assert len(encoder.seen) == 6
    np.testing.assert_array_equal(second.product_ids, shuffled["product_id"].to_numpy())
    by_id = dict(zip(first.product_ids, first.vectors, strict=True))
    for pid, vec in zip(second.product_ids, second.vectors, strict=True):
        if pid in by_id and pid != catalog.loc[3, "product_id"]:
            np.testing.assert_array_equal(vec, by_id[pid])

    third = embed_catalog(shuffled, cache, encoder=FakeEncoder(), progress=False)
    assert (third.n_embedded, third.n_reused) == (0, 45)
    ids, _, _ = EmbeddingStore(cache).read()
    assert sorted(ids) == sorted(shuffled["product_id"])
    assert not list(cache.parent.glob("*.tmp"))


def test_embed_catalog_rejects_duplicate_ids(products: pd.DataFrame, tmp_path: Path) -> None:
    twice = pd.concat([products.head(2), products.head(2)])
    with pytest.raises(ValueError, match="unique"):
        embed_catalog(twice, tmp_path / "c.parquet", encoder=FakeEncoder(), progress=False)


def test_real_model_embeds_offline(products: pd.DataFrame, tmp_path: Path) -> None:
    encoder = load_encoder()
    catalog = products.head(8)
    result = embed_catalog(catalog, tmp_path / "c.parquet", encoder=encoder, progress=False)
    assert result.vectors.shape == (8, EMBEDDING_DIM) and result.n_embedded == 8
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-4)
    again = encoder.encode(product_text(catalog).tolist()[:1], normalize_embeddings=True)
    np.testing.assert_allclose(again[0], result.vectors[0], atol=1e-4)
    assert MODEL_NAME.endswith("all-MiniLM-L6-v2")


# ---------------------------------------------------------------- vector index

BACKENDS = ["numpy", "edge", "edge_hnsw", "local"]
EXACT = {"numpy", "edge", "local"}


def build(kind: str, ids: np.ndarray, vecs: np.ndarray, payload: pd.DataFrame) -> VectorIndex:
    index: VectorIndex
    if kind == "numpy":
        index = NumpyIndex(dim=DIM)
    elif kind == "edge":
        index = EdgeIndex(dim=DIM)
    elif kind == "edge_hnsw":  # tiny thresholds: HNSW graph, filtered searches through it too
        index = EdgeIndex(dim=DIM, indexing_threshold_kb=1, full_scan_threshold_kb=1)
    else:
        index = LocalClientIndex(dim=DIM)
    index.upsert(ids, vecs, payload)
    return index


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(
    request: pytest.FixtureRequest, products: pd.DataFrame, vectors: np.ndarray
) -> Iterator[tuple[str, VectorIndex]]:
    index = build(request.param, products["product_id"].to_numpy(), vectors, products)
    yield request.param, index
    index.close()


@pytest.fixture(scope="module")
def reference(products: pd.DataFrame, vectors: np.ndarray) -> NumpyIndex:
    index = NumpyIndex(dim=DIM)
    index.upsert(products["product_id"].to_numpy(), vectors, products)
    return index


def filters_for(products: pd.DataFrame) -> list[SearchFilter]:
    cat = products["category_l1"].value_counts().index[0]
    sub = products["category_l2"].value_counts().index[:2].tolist()
    brand = products["brand"].value_counts().index[0]
    mid = products["launched_at"].sort_values().iloc[len(products) // 2].to_pydatetime()
    return [
        SearchFilter(),
        SearchFilter(category_l1=cat),
        SearchFilter(category_l2=sub, in_stock_only=True),
        SearchFilter(brand=[brand]),
        SearchFilter(price_min=20.0, price_max=80.0),
        SearchFilter(launched_before=mid),
        SearchFilter(launched_after=mid, in_stock_only=True),
        SearchFilter(exclude_ids=products["product_id"].head(50).tolist()),
    ]


def passes(products: pd.DataFrame, ids: np.ndarray, flt: SearchFilter) -> bool:
    rows = products.set_index("product_id").loc[ids]
    ok = np.ones(len(rows), dtype=bool)
    for key in ("category_l1", "category_l2", "brand"):
        value = getattr(flt, key)
        if value is not None:
            ok &= rows[key].isin([value] if isinstance(value, str) else value).to_numpy()
    if flt.price_min is not None:
        ok &= (rows["price"] >= flt.price_min).to_numpy()
    if flt.price_max is not None:
        ok &= (rows["price"] <= flt.price_max).to_numpy()
    if flt.in_stock_only:
        ok &= rows["in_stock"].to_numpy()
    if flt.launched_before is not None:
        ok &= (rows["launched_at"] < flt.launched_before).to_numpy()
    if flt.launched_after is not None:
        ok &= (rows["launched_at"] >= flt.launched_after).to_numpy()
    if flt.exclude_ids is not None:
        ok &= ~np.isin(ids, list(flt.exclude_ids))
    return bool(ok.all())


def test_filters_agree_with_exact_reference(
    loaded: tuple[str, VectorIndex],
    reference: NumpyIndex,
    products: pd.DataFrame,
    vectors: np.ndarray,
) -> None:
    kind, index = loaded
    if isinstance(index, EdgeIndex):
        assert index.indexed_count() == (len(products) if kind == "edge_hnsw" else 0)
    queries = vectors[[0, 17, 123]] + 0.05
    for flt in filters_for(products):
        want, _ = reference.search(queries, k=10, filters=flt)
        got, scores = index.search(queries, k=10, filters=flt)
        assert got.shape == want.shape
        for got_row, want_row, score_row in zip(got, want, scores, strict=True):
            assert passes(products, got_row[got_row != MISSING_ID], flt), (kind, flt)
            assert np.all(np.diff(score_row) <= 1e-6)
            overlap = len(set(got_row) & set(want_row)) / len(want_row)
            assert overlap == 1.0 if kind in EXACT else overlap >= 0.9, (kind, flt)


def test_filters_hold_on_large_k(loaded: tuple[str, VectorIndex], products: pd.DataFrame) -> None:
    _, index = loaded
    mid = products["launched_at"].sort_values().iloc[len(products) // 2].to_pydatetime()
    excluded = set(products["product_id"].head(30).tolist())
    rng = np.random.default_rng(1)
    query = rng.standard_normal(DIM).astype(np.float32)
    ids, _ = index.search(query, k=300, filters=SearchFilter(exclude_ids=excluded))
    assert not excluded & set(ids.tolist()) and len(ids) == len(products) - 30
    ids, _ = index.search(query, k=300, filters=SearchFilter(in_stock_only=True))
    assert set(ids) == set(products.loc[products["in_stock"], "product_id"])
    ids, _ = index.search(query, k=300, filters=SearchFilter(launched_before=mid))
    launched = products.set_index("product_id").loc[ids, "launched_at"]
    assert (launched < mid).all()
    assert set(ids) == set(products.loc[products["launched_at"] < mid, "product_id"])


def test_own_vector_comes_first(
    loaded: tuple[str, VectorIndex], products: pd.DataFrame, vectors: np.ndarray
) -> None:
    _, index = loaded
    assert index.count() == len(products)
    ids = products["product_id"].to_numpy()
    for row in (0, 5, 250):
        got, scores = index.search(vectors[row], k=3)
        assert got[0] == ids[row] and scores[0] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("kind", BACKENDS)
def test_upsert_twice_replaces(kind: str, products: pd.DataFrame, vectors: np.ndarray) -> None:
    ids = products["product_id"].to_numpy()
    index = build(kind, ids, vectors, products)
    try:
        rng = np.random.default_rng(42)
        moved = rng.standard_normal((10, DIM)).astype(np.float32)
        moved /= np.linalg.norm(moved, axis=1, keepdims=True)
        changed = products.iloc[:10].assign(in_stock=False)
        index.upsert(ids[:10], moved, changed)
        assert index.count() == len(products)
        got, scores = index.search(moved[3], k=1)
        assert got[0] == ids[3] and scores[0] == pytest.approx(1.0, abs=1e-4)
        got, scores = index.search(vectors[3], k=1)
        assert got[0] != ids[3] or scores[0] < 0.99
        got, _ = index.search(moved, k=len(products), filters=SearchFilter(in_stock_only=True))
        assert not set(ids[:10].tolist()) & set(got.ravel().tolist())
    finally:
        index.close()


def test_batch_shapes_and_padding(reference: NumpyIndex, vectors: np.ndarray) -> None:
    ids, scores = reference.search(vectors[:4], k=5)
    assert ids.shape == scores.shape == (4, 5)
    ids, scores = reference.search(vectors[0], k=5, filters=SearchFilter(brand="no-such-brand"))
    assert ids.shape == (0,)
    ids, _ = reference.search(vectors[:2], k=5, filters=SearchFilter(brand="no-such-brand"))
    assert ids.shape == (2, 0)


def test_edge_index_persists_and_builds_hnsw(
    tmp_path: Path, products: pd.DataFrame, vectors: np.ndarray
) -> None:
    ids = products["product_id"].to_numpy()
    index = EdgeIndex(tmp_path / "shard", dim=DIM, indexing_threshold_kb=1)
    index.upsert(ids, vectors, products)
    assert index.indexed_count() == len(products)
    index.close()
    reopened = EdgeIndex(tmp_path / "shard", dim=DIM, indexing_threshold_kb=1)
    try:
        assert reopened.count() == len(products)
        got, _ = reopened.search(vectors[7], k=1, hnsw_ef=16)
        assert got[0] == ids[7]
    finally:
        reopened.close()


def test_open_index_picks_backend() -> None:
    server = open_index(url="http://127.0.0.1:9", api_key=None)
    assert isinstance(server, ServerIndex) and server._client is None
    assert server.url == "http://127.0.0.1:9"
    assert isinstance(server, VectorIndex)
    assert isinstance(open_index("numpy"), NumpyIndex)
    assert isinstance(open_index("local"), LocalClientIndex)
    edge = open_index(dim=DIM)
    try:
        assert isinstance(edge, EdgeIndex) and edge.count() == 0
    finally:
        edge.close()
    with pytest.raises(ValueError):
        open_index("server")
    with pytest.raises(ValueError):
        open_index("faiss")  # type: ignore[arg-type]


def test_epoch_seconds_treats_naive_as_utc() -> None:
    assert epoch_seconds(datetime(1970, 1, 2)) == 86_400
    assert epoch_seconds(datetime(1970, 1, 2, tzinfo=UTC)) == 86_400
    assert json.dumps(epoch_seconds(pd.Timestamp("2025-01-01", tz="UTC"))) == "1735689600"
