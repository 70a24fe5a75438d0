"""Category affinity: the user's favourite leaf categories x what is popular in each of them.

Shoppers browse with an intent: a session is mostly about one leaf category, and within it
they look at what is popular, new or to their taste. This generator models the first two
parts from the log alone: P(leaf | user) from the user's time-decayed events per leaf,
smoothed towards the shop-wide leaf mix and scaled by each leaf's current season, times
P(product | leaf) from trending counts within the leaf, where products launched in the last
``novelty_days`` (or launching before the label window ends) get the average mass of recent
launches, so new arrivals enter their leaf's list before they have any history.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shoprank.candidates.base import CandidateGenerator
from shoprank.candidates.data import Catalog, InteractionLog, Queries, age_days, as_datetime64
from shoprank.candidates.popularity import decayed_counts


class CategoryAffinity(CandidateGenerator):
    """P(leaf | user) x P(product | leaf), both estimated from the log before the cutoff.

    With ``users`` (profiles indexed by user_id), a user's prior over leaves is their
    segment's (e.g. age band x region) leaf mix in season, shrunk towards the shop's with
    ``segment_prior_events`` pseudo-events: a new user starts from what people like them
    browse now, and their own events take over as they come.
    """

    name = "category"

    def __init__(
        self,
        users: pd.DataFrame | None = None,
        segment_columns: tuple[str, ...] = ("age_band", "region"),
        segment_prior_events: float = 2000.0,
        user_half_life_days: float = 120.0,
        item_half_life_days: float = 14.0,
        prior_events: float = 1.0,
        season_days: int = 28,
        novelty_days: int = 30,
    ):
        self.users = users
        self.segment_columns = segment_columns
        self.segment_prior_events = segment_prior_events
        self.user_segment = np.full(1, -1, dtype=np.int64)
        self.segment_prior = np.zeros((0, 1))
        self.user_half_life_days = user_half_life_days
        self.item_half_life_days = item_half_life_days
        self.prior_events = prior_events
        self.season_days = season_days
        self.novelty_days = novelty_days
        self.user_leaf = sp.csr_matrix((1, 1), dtype=np.float32)
        self.leaf_prior = np.zeros(1)
        self.leaf = np.zeros(1, dtype=np.int64)
        self.season = np.ones(1)
        self.within = np.zeros(1, dtype=np.float32)

    def fit(self, log: InteractionLog, catalog: Catalog, as_of: datetime) -> CategoryAffinity:
        """Learn user x leaf weights, the leaf mix and season, and within-leaf shares."""
        self.leaf = np.maximum(catalog.codes("category_l2"), 0)
        n_leaves = int(self.leaf.max()) + 1
        decay = np.exp2(-age_days(log, as_of) / self.user_half_life_days)
        n_users = int(log.user_id.max(initial=0)) + 1
        self.user_leaf = sp.csr_matrix(
            (log.weight * decay, (log.user_id, self.leaf[log.item_id])),
            shape=(n_users, n_leaves),
            dtype=np.float32,
        )
        self.leaf_prior = self._leaf_prior(log, as_of, n_leaves)
        self.season = self._season(log, n_leaves)
        if self.users is not None:
            self._fit_segments(log, n_leaves)
        self.within = self._within_leaf(log, catalog, as_of, n_leaves)
        return self

    def _leaf_prior(self, log: InteractionLog, as_of: datetime, n_leaves: int) -> np.ndarray:
        """Shop-wide leaf mix of the last ``season_days`` (the season now), sums to 1."""
        recent = log.event_at >= as_datetime64(as_of) - np.timedelta64(self.season_days, "D")
        counts = np.bincount(
            self.leaf[log.item_id[recent]], weights=log.weight[recent], minlength=n_leaves
        )
        return (counts + 1.0) / (counts.sum() + n_leaves)

    def _fit_segments(self, log: InteractionLog, n_leaves: int) -> None:
        """Each segment's leaf mix over the log, in season, shrunk towards the shop's."""
        keys = self.users[list(self.segment_columns)].astype(str)
        codes, uniques = pd.MultiIndex.from_frame(keys).factorize()
        self.user_segment = np.full(int(self.users.index.max()) + 1, -1, dtype=np.int64)
        self.user_segment[self.users.index.to_numpy()] = codes
        known = log.user_id < len(self.user_segment)
        segment = np.where(known, self.user_segment[np.where(known, log.user_id, 0)], -1)
        mine = segment >= 0
        flat = np.bincount(
            segment[mine] * n_leaves + self.leaf[log.item_id[mine]],
            weights=log.weight[mine],
            minlength=len(uniques) * n_leaves,
        )
        counts = flat.reshape(len(uniques), n_leaves) * self.season[None, :]
        shrunk = counts + self.segment_prior_events * self.leaf_prior[None, :]
        self.segment_prior = shrunk / shrunk.sum(axis=1, keepdims=True)

    def _season(self, log: InteractionLog, n_leaves: int) -> np.ndarray:
        """Each leaf's recent share over its share of the whole log."""
        overall = np.bincount(self.leaf[log.item_id], weights=log.weight, minlength=n_leaves)
        overall = (overall + 1.0) / (overall.sum() + n_leaves)
        return self.leaf_prior / overall

    def _within_leaf(
        self, log: InteractionLog, catalog: Catalog, as_of: datetime, n_leaves: int
    ) -> np.ndarray:
        """P(product | leaf): trending counts plus a novelty prior for recent launches."""
        counts = decayed_counts(log, catalog.n_items, as_of, self.item_half_life_days)
        launched = np.full(catalog.n_items + 1, np.datetime64("NaT"), dtype="datetime64[us]")
        launched[catalog.frame.index] = catalog.frame["launched_at"].to_numpy("datetime64[us]")
        age = (as_datetime64(as_of) - launched) / np.timedelta64(1, "D")
        new = ~(age > self.novelty_days)  # launched recently, launching later, or unknown
        new[0] = False
        recent_launch = new & (age >= 0)
        novelty_mass = counts[recent_launch].mean() if recent_launch.any() else counts.mean()
        mass = counts + np.where(new, novelty_mass, 0.0)
        mass[0] = 0.0
        totals = np.bincount(self.leaf, weights=mass, minlength=n_leaves)
        return (mass / np.maximum(totals[self.leaf], 1e-12)).astype(np.float32)

    def leaf_probability(
        self, user_ids: np.ndarray, live: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """P(leaf | user) per query (users without history get their prior).

        ``live`` is (items, weights) per query (see :class:`Queries`): events since the fit,
        counted at full weight in their leaves, so a visitor's session in progress moves
        their leaf mix at once.
        """
        known = user_ids < self.user_leaf.shape[0]
        weights = np.zeros((len(user_ids), self.user_leaf.shape[1]), dtype=np.float64)
        weights[known] = self.user_leaf[user_ids[known]].toarray()
        if live is not None:
            items, amounts = live
            rows, cols = np.nonzero(items >= 0)
            np.add.at(weights, (rows, self.leaf[items[rows, cols]]), amounts[rows, cols])
        prior = self._priors(user_ids)
        seasonal = weights * self.season
        return (seasonal + self.prior_events * prior) / (
            seasonal.sum(axis=1, keepdims=True) + self.prior_events
        )

    def _priors(self, user_ids: np.ndarray) -> np.ndarray:
        """Each user's prior over leaves: their segment's mix, else the shop's season mix."""
        prior = np.broadcast_to(self.leaf_prior, (len(user_ids), len(self.leaf_prior))).copy()
        if len(self.segment_prior):
            known = user_ids < len(self.user_segment)
            segment = np.full(len(user_ids), -1, dtype=np.int64)
            segment[known] = self.user_segment[user_ids[known]]
            prior[segment >= 0] = self.segment_prior[segment[segment >= 0]]
        return prior

    def score(self, queries: Queries) -> np.ndarray:
        """P(leaf of the product | user) x P(product | its leaf)."""
        live = (queries.live_items, queries.live_weights) if queries.has_live else None
        leaf_p = self.leaf_probability(np.asarray(queries.user_id, dtype=np.int64), live)
        return (leaf_p[:, self.leaf] * self.within[None, :]).astype(np.float32)
