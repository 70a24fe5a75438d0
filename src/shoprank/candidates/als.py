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

    Confidence is ``alpha * log1p(weighted events)`` (implicit's solver adds the 1). Users
    without any event in the training log have no factors: they get ``fallback`` scores
    (global popularity), as the current system does, unless the query carries live events
    (a session since the fit): then the user's factors are recomputed from their logged and
    live events against the fixed item factors (implicit's ``recalculate_user``, one
    least-squares solve per user), so a new visitor is folded in without a refit.
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
        self.weights = sp.csr_matrix((1, 1), dtype=np.float32)  # summed event weights
        self.gram = np.zeros((factors, factors), dtype=np.float64)  # YtY

    def fit(self, log: InteractionLog, catalog: Catalog, as_of: datetime) -> ALS:
        """Factorise the training log."""
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        n_users = int(log.user_id.max()) if len(log) else 0
        matrix = log.user_item_matrix(n_users, catalog.n_items)
        self.weights = matrix.copy()
        matrix.data = (self.alpha * np.log1p(matrix.data)).astype(np.float32)
        with threadpool_limits(1, "blas"):  # implicit parallelises itself
            model = AlternatingLeastSquares(**self.params, alpha=1.0)
            model.fit(sp.csr_matrix(matrix), show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        self.known_users = np.asarray(matrix.getnnz(axis=1) > 0)
        item = self.item_factors.astype(np.float64)
        self.gram = item.T @ item
        self.fallback.fit(log, catalog, as_of)
        return self

    def fold_in(self, user_id: int, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """User factors from the user's logged events plus ``items`` (live, with weights).

        Solves ``(YtY + reg I + Yt (Cu - I) Y) x = Yt Cu p`` with the fitted item factors
        ``Y``, as implicit's ``recalculate_user`` does.
        """
        keep = (items >= 0) & (items < len(self.item_factors))
        items, weights = items[keep], weights[keep]
        if user_id < self.weights.shape[0]:
            row = self.weights[user_id]
            items = np.concatenate([items, row.indices])
            weights = np.concatenate([weights, row.data])
        unique, inverse = np.unique(items, return_inverse=True)
        y = self.item_factors[unique].astype(np.float64)
        confidence = self.alpha * np.log1p(np.bincount(inverse, weights=weights))
        gram = self.gram + self.params["regularization"] * np.eye(len(self.gram))
        gram += (y * (confidence - 1.0)[:, None]).T @ y
        return np.linalg.solve(gram, y.T @ confidence).astype(np.float32)

    def score(self, queries: Queries) -> np.ndarray:
        """Dot products of user and item factors; fallback scores for unknown users."""
        users = queries.user_id
        known = (users < len(self.known_users)) & self.known_users[
            np.minimum(users, len(self.known_users) - 1)
        ]
        scores = self.fallback.score(queries)
        factors = np.zeros((len(users), self.item_factors.shape[1]), dtype=np.float32)
        factors[known] = self.user_factors[users[known]]
        if queries.has_live:
            live = np.flatnonzero((queries.live_items >= 0).any(axis=1))
            for row in live:
                factors[row] = self.fold_in(
                    int(users[row]), queries.live_items[row], queries.live_weights[row]
                )
            known = known.copy()
            known[live] = True
        if known.any():
            scores[known] = factors[known] @ self.item_factors.T
        return scores
