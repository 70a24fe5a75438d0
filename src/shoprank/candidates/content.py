"""Content similarity: products whose descriptions read like what the user just touched.

Product title + description are embedded with all-MiniLM-L6-v2 (``shoprank.embeddings``).
A query's vector is the position-weighted mean of its recent products' vectors, and every
product is scored by cosine similarity to it. This is what reaches brand-new products (no
interactions needed) and new users after their first clicks.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from shoprank.candidates.base import CandidateGenerator, Proposal
from shoprank.candidates.data import Catalog, InteractionLog, Queries

if TYPE_CHECKING:
    from shoprank.embeddings.content_index import ContentIndex


def item_matrix(ids: np.ndarray, vectors: np.ndarray, n_items: int) -> np.ndarray:
    """Vectors laid out by product id: row ``id`` holds that product (zeros where unknown)."""
    matrix = np.zeros((n_items + 1, vectors.shape[1]), dtype=np.float32)
    keep = (ids >= 0) & (ids <= n_items)
    matrix[ids[keep]] = vectors[keep]
    return matrix


def catalog_vectors(products: pd.DataFrame, cache_path: Path, n_items: int) -> np.ndarray:
    """Embed the catalog (only new or changed texts; see ``embed_catalog``), laid out by id.

    ``products`` needs product_id, title and description.
    """
    from shoprank.embeddings.encoder import embed_catalog

    result = embed_catalog(products, cache_path)
    return item_matrix(np.asarray(result.product_ids), np.asarray(result.vectors), n_items)


class ContentSimilarity(CandidateGenerator):
    """Cosine similarity between each product and the query's recent products.

    With an ``index`` (:class:`~shoprank.embeddings.content_index.ContentIndex` over the
    same vectors), :meth:`propose` finds each query's top products by searching it and
    scores only the pairs asked for; training, evaluation and the service all propose this
    way. :meth:`score` always scans every product (exact: the reference recall is measured
    against).
    """

    name = "content"
    #: Models saved before the index existed unpickle without one: they scan.
    index: ContentIndex | None = None

    def __init__(
        self,
        vectors: np.ndarray,
        position_weights: tuple[float, ...] = (1.0, 0.6, 0.4, 0.3, 0.2),
        index: ContentIndex | None = None,
    ):
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        self.position_weights = np.asarray(position_weights, dtype=np.float32)
        self.index = index

    def fit(self, log: InteractionLog, catalog: Catalog, as_of: datetime) -> ContentSimilarity:
        """Nothing to learn from the log: the vectors come from the catalog text."""
        if self.vectors.shape[0] < catalog.n_items + 1:
            raise ValueError(
                f"content vectors cover ids up to {self.vectors.shape[0] - 1}, "
                f"catalog goes to {catalog.n_items}"
            )
        return self

    def profiles(self, queries: Queries) -> tuple[np.ndarray, np.ndarray]:
        """Each query's unit profile vector, and whether it has one (recent items)."""
        recent = queries.recent_items[:, : len(self.position_weights)]
        weights = np.where(recent >= 0, self.position_weights[: recent.shape[1]], 0.0)
        profile = np.einsum("nl,nld->nd", weights, self.vectors[np.maximum(recent, 0)])
        norms = np.linalg.norm(profile, axis=1, keepdims=True)
        return (profile / np.maximum(norms, 1e-12)).astype(np.float32), norms[:, 0] > 0

    def score(self, queries: Queries) -> np.ndarray:
        """Cosine similarity to each query's profile; -inf for queries without recent items."""
        profile, has = self.profiles(queries)
        scores = profile @ self.vectors.T
        scores[~has] = -np.inf
        scores[:, 0] = -np.inf
        return scores.astype(np.float32)

    def propose(self, queries: Queries, k: int, allowed: np.ndarray) -> Proposal:
        """Top-``k`` from the index (when there is one), ordered by the exact cosine."""
        if self.index is None:
            return super().propose(queries, k, allowed)
        profile, has = self.profiles(queries)
        found = np.full((len(queries), k), -1, dtype=np.int64)
        if has.any():
            found[has] = self.index.search(profile[has], k, allowed)

        def pairs(rows: np.ndarray, items: np.ndarray) -> np.ndarray:
            values = np.einsum("nd,nd->n", profile[rows], self.vectors[items])
            values[~has[rows] | (items == 0) | ~allowed[items]] = -np.inf
            return values.astype(np.float32)

        rows, cols = np.nonzero(found >= 0)
        scores = np.full(found.shape, -np.inf, dtype=np.float32)
        scores[rows, cols] = pairs(rows, found[rows, cols])
        # best first by the cosine the ranker sees (ties: lower id), misses last
        order = np.lexsort((np.where(found >= 0, found, np.iinfo(np.int64).max), -scores), axis=1)
        items = np.take_along_axis(found, order, axis=1)
        return Proposal(items, pairs=pairs)
