"""Similar items for a product page: the description index blended with co-visitation.

The content side searches the product embeddings in Qdrant (the in-process qdrant-edge HNSW
index, or a Qdrant server when ``QDRANT_URL`` is set), so a product launched today, which no
one has viewed yet, still has neighbours. The co-visitation side is the fitted generator's
item row: what shoppers viewed, carted or bought in the same sessions. The two rankings are
merged by reciprocal rank fusion; if the index fails, co-visitation alone answers (degraded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shoprank.embeddings.index import SearchFilter, VectorIndex, open_index
from shoprank.embeddings.shards import own_copy
from shoprank.serving.schemas import Item
from shoprank.settings import Settings
from shoprank.training.bundle import ServingState

#: Reciprocal rank fusion constant (the usual 60).
RRF_K = 60
REASONS = {
    "content": "Similar description",
    "covisitation": "Often bought together with this",
    "both": "Similar, and often bought together with this",
}


@dataclass
class SimilarItems:
    """Neighbours of a product from the vector index and the co-visitation matrix."""

    index: VectorIndex
    state: ServingState
    expected: int

    @classmethod
    def build(cls, state: ServingState, settings: Settings, tag: str) -> SimilarItems:
        """Open the index (a folder per model tag, reused across restarts) and fill it once."""
        vectors = state.vectors
        if vectors is None:
            raise ValueError(f"model {tag} has no content vectors: similar items need them")
        catalog = state.catalog.frame
        ids = catalog.index.to_numpy(np.int64)
        ids = ids[np.linalg.norm(vectors[ids], axis=1) > 0]
        if settings.qdrant_url:
            index = open_index(url=settings.qdrant_url)
            if index.count() != len(ids):
                index.upsert(ids, vectors[ids], catalog.loc[ids].reset_index())
            return cls(index, state, len(ids))
        folder = settings.data_path / "index" / re.sub(r"[^A-Za-z0-9_.-]", "_", tag)
        index = open_index(path=own_copy(folder, lambda path: _fill(path, ids, vectors, catalog)))
        return cls(index, state, len(ids))

    def ready(self) -> bool:
        """Whether every product with a vector is in the index."""
        try:
            return self.index.count() == self.expected
        except Exception:
            return False

    def similar(self, product_id: int, k: int, exclude: set[int]) -> tuple[list[Item], bool]:
        """Top ``k`` products like ``product_id``, in stock, never itself or ``exclude``."""
        skip = {product_id, *exclude}
        degraded = False
        try:
            content = self._content(product_id, k * 3, skip)
        except Exception:
            content, degraded = pd.Series(dtype=float), True
        covis = self._covisited(product_id, k * 3, skip)
        fused = _fuse({"content": content, "covisitation": covis}).head(k)
        items = [
            Item(
                product_id=int(pid),
                score=float(row["score"]),
                reason=REASONS["both" if len(row["sources"]) == 2 else row["sources"][0]],
                source=row["sources"][0],
                sources=list(row["sources"]),
            )
            for pid, row in fused.iterrows()
        ]
        return items, degraded

    def _content(self, product_id: int, n: int, skip: set[int]) -> pd.Series:
        """Cosine neighbours from the index, by product id."""
        vectors = self.state.vectors
        query = vectors[product_id]  # type: ignore[index]
        if not np.any(query):
            return pd.Series(dtype=float)
        flt = SearchFilter(in_stock_only=True, exclude_ids=tuple(sorted(skip)))
        ids, scores = self.index.search(query, n, flt)
        keep = ids >= 0
        return pd.Series(scores[keep], index=ids[keep])

    def _covisited(self, product_id: int, n: int, skip: set[int]) -> pd.Series:
        """The co-visitation row of the product (in stock only), by product id."""
        generator = self.state.generators.get("covisitation")
        matrix = getattr(generator, "matrix", None)
        if matrix is None or product_id >= matrix.shape[0]:
            return pd.Series(dtype=float)
        row = matrix[product_id]
        scores = pd.Series(row.data, index=row.indices)
        stock = self.state.catalog.frame["in_stock"].reindex(scores.index).fillna(False)
        scores = scores[stock.astype(bool).to_numpy() & ~scores.index.isin(list(skip))]
        return scores.sort_values(ascending=False, kind="stable").head(n)


def _fill(path: Path, ids: np.ndarray, vectors: np.ndarray, catalog: pd.DataFrame) -> None:
    """Build the HNSW shard of the catalog's vectors at ``path``."""
    index = open_index(path=path)
    index.upsert(ids, vectors[ids], catalog.loc[ids].reset_index())
    index.close()


def _fuse(rankings: dict[str, pd.Series]) -> pd.DataFrame:
    """Reciprocal rank fusion: score = sum over sources of 1 / (RRF_K + rank)."""
    parts = []
    for name, scores in rankings.items():
        ranks = np.arange(1, len(scores) + 1)
        parts.append(
            pd.DataFrame({"product_id": scores.index, "rrf": 1.0 / (RRF_K + ranks), "source": name})
        )
    if not parts or all(p.empty for p in parts):
        return pd.DataFrame(columns=["score", "sources"])
    frame = pd.concat(parts, ignore_index=True)
    fused = frame.groupby("product_id").agg(score=("rrf", "sum"), sources=("source", tuple))
    return fused.sort_values(["score"], ascending=False, kind="stable")
