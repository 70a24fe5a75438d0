"""Session co-visitation: items viewed, carted or bought together in the same sessions."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import scipy.sparse as sp

from shoprank.candidates.base import CandidateGenerator
from shoprank.candidates.data import Catalog, InteractionLog, Queries, age_days


class CoVisitation(CandidateGenerator):
    """Item-to-item scores from sessions, weighted by event type and recency.

    Each session contributes its items' event weights (view 1, cart 3, purchase 5), scaled by
    the session's age (halved every ``half_life_days``); two items' co-visitation is the sum
    over sessions of the product of their weights. Scores for a query are the co-visitation
    with its recent items, the most recent counting most (``position_weights``), divided by
    the candidate's popularity to the power ``popularity_damping`` so that hits don't drown
    the specific neighbours.
    """

    name = "covisitation"

    def __init__(
        self,
        half_life_days: float = 60.0,
        position_weights: tuple[float, ...] = (1.0, 0.6, 0.4, 0.3, 0.2),
        popularity_damping: float = 0.3,
    ):
        self.half_life_days = half_life_days
        self.position_weights = np.asarray(position_weights, dtype=np.float32)
        self.popularity_damping = popularity_damping
        self.matrix = sp.csr_matrix((1, 1), dtype=np.float32)

    def fit(self, log: InteractionLog, catalog: Catalog, as_of: datetime) -> CoVisitation:
        """Build the item x item co-visitation matrix."""
        n_items = catalog.n_items + 1
        decay = np.exp2(-age_days(log, as_of) / self.half_life_days)
        sessions = sp.csr_matrix(
            (log.weight * np.sqrt(decay), (log.session, log.item_id)),
            shape=(int(log.session.max()) + 1 if len(log) else 1, n_items),
            dtype=np.float32,
        )
        sessions.data = np.minimum(sessions.data, 5.0)  # repeated events count once-ish
        covis = (sessions.T @ sessions).tocsr()
        covis.setdiag(0)
        covis.eliminate_zeros()
        popularity = np.asarray(sessions.sum(axis=0)).ravel()
        damping = np.power(np.maximum(popularity, 1.0), -self.popularity_damping)
        self.matrix = (covis @ sp.diags(damping.astype(np.float32))).tocsr()
        return self

    def score(self, queries: Queries) -> np.ndarray:
        """Co-visitation with each query's recent items; -inf where there is none."""
        recent = queries.recent_items[:, : len(self.position_weights)]
        rows, cols = np.nonzero(recent >= 0)
        weights = self.position_weights[cols]
        query_matrix = sp.csr_matrix(
            (weights, (rows, recent[rows, cols])),
            shape=(len(queries), self.matrix.shape[0]),
            dtype=np.float32,
        )
        scores = (query_matrix @ self.matrix).toarray()
        scores[scores <= 0] = -np.inf
        return scores
