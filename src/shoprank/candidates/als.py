"""Collaborative filtering with implicit ALS: the shop's current system, our baseline."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import scipy.sparse as sp

from shoprank.candidates.base import CandidateGenerator
from shoprank.candidates.data import Catalog, InteractionLog, Queries
from shoprank.candidates.popularity import Popularity


class ALS(CandidateGenerator):
    """Matrix factorisation of the user x item confidence matrix (``implicit`` ALS).

    Confidence is ``1 + alpha * log1p(weighted events)``. Users without any event in the
    training log have no factors: they get ``fallback`` scores (global popularity), as the
    current system does.
    """

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        seed: int = 0,
        fallback: CandidateGenerator | None = None,
    ):
        self.params = dict(
            factors=factors,
            regularization=regularization,
            iterations=iterations,
            random_state=seed,
        )
        self.alpha = alpha
        self.fallback = fallback or Popularity()
        self.user_factors = np.zeros((1, factors), dtype=np.float32)
        self.item_factors = np.zeros((1, factors), dtype=np.float32)
        self.known_users = np.zeros(1, dtype=bool)

    def fit(self, log: InteractionLog, catalog: Catalog, as_of: datetime) -> ALS:
        """Factorise the training log."""
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        n_users = int(log.user_id.max()) if len(log) else 0
        matrix = log.user_item_matrix(n_users, catalog.n_items)
        matrix.data = (self.alpha * np.log1p(matrix.data)).astype(np.float32)
        with threadpool_limits(1, "blas"):  # implicit parallelises itself
            model = AlternatingLeastSquares(**self.params, alpha=1.0)
            model.fit(sp.csr_matrix(matrix), show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        self.known_users = np.asarray(matrix.getnnz(axis=1) > 0)
        self.fallback.fit(log, catalog, as_of)
        return self

    def score(self, queries: Queries) -> np.ndarray:
        """Dot products of user and item factors; fallback scores for unknown users."""
        users = queries.user_id
        known = (users < len(self.known_users)) & self.known_users[
            np.minimum(users, len(self.known_users) - 1)
        ]
        scores = self.fallback.score(queries)
        if known.any():
            scores[known] = self.user_factors[users[known]] @ self.item_factors.T
        return scores
