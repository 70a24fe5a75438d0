"""Popularity generators: global, trending, seasonal (category seasons), per segment."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from shoprank.candidates.base import CandidateGenerator
from shoprank.candidates.data import Catalog, InteractionLog, Queries, age_days, as_datetime64


def decayed_counts(
    log: InteractionLog, n_items: int, as_of: datetime, half_life_days: float | None
) -> np.ndarray:
    """Event-weighted counts per item, halved every ``half_life_days`` before ``as_of``."""
    weights = log.weight.astype(np.float64)
    if half_life_days:
        weights = weights * np.exp2(-age_days(log, as_of) / half_life_days)
    return np.bincount(log.item_id, weights=weights, minlength=n_items + 1)


class Popularity(CandidateGenerator):
    """Everyone gets the same list: items ranked by (optionally time-decayed) weighted events.

    ``half_life_days=None`` is plain global popularity over the window; a half-life gives
    trending popularity.
    """

    def __init__(self, half_life_days: float | None = None, name: str | None = None):
        self.half_life_days = half_life_days
        self.name = name or ("trending" if half_life_days else "popularity")
        self.item_scores = np.zeros(1, dtype=np.float32)

    def fit(self, log: InteractionLog, catalog: Catalog, as_of: datetime) -> Popularity:
        """Count events per item up to ``as_of``."""
        counts = decayed_counts(log, catalog.n_items, as_of, self.half_life_days)
        self.item_scores = np.log1p(counts).astype(np.float32)
        return self

    def score(self, queries: Queries) -> np.ndarray:
        """The same scores for every query."""
        return np.broadcast_to(self.item_scores, (len(queries), len(self.item_scores))).copy()

    def query_key(self, queries: Queries) -> tuple:
        """Every query gets the same scores."""
        return ()


class SeasonalPopularity(CandidateGenerator):
    """Items of categories that are in season now.

    Category season = a leaf category's share of the last ``recent_days`` of events divided by
    its share of the whole window; an item's score is its popularity within its category times
    its category's season factor. Categories that boom (garden in spring, gifts in December)
    rise before their items' yearly counts catch up.
    """

    name = "seasonal"

    def __init__(self, recent_days: int = 28, half_life_days: float = 60.0):
        self.recent_days = recent_days
        self.half_life_days = half_life_days
        self.item_scores = np.zeros(1, dtype=np.float32)

    def fit(self, log: InteractionLog, catalog: Catalog, as_of: datetime) -> SeasonalPopularity:
        """Estimate category season factors and within-category popularity."""
        category = catalog.codes("category_l2")
        n_cat = int(category.max()) + 1
        item_counts = decayed_counts(log, catalog.n_items, as_of, self.half_life_days)
        recent = log.event_at >= as_datetime64(as_of) - np.timedelta64(self.recent_days, "D")
        cat_all = np.bincount(category[log.item_id], weights=log.weight, minlength=n_cat)
        cat_recent = np.bincount(
            category[log.item_id][recent], weights=log.weight[recent], minlength=n_cat
        )
        season = (
            (cat_recent + 1)
            / (cat_recent.sum() + n_cat)
            / ((cat_all + 1) / (cat_all.sum() + n_cat))
        )
        cat_total = np.bincount(np.maximum(category, 0), weights=item_counts, minlength=n_cat)
        within = item_counts / np.maximum(cat_total[np.maximum(category, 0)], 1e-9)
        scores = within * season[np.maximum(category, 0)]
        scores[category < 0] = 0.0
        self.item_scores = scores.astype(np.float32)
        return self

    def score(self, queries: Queries) -> np.ndarray:
        """The same scores for every query."""
        return np.broadcast_to(self.item_scores, (len(queries), len(self.item_scores))).copy()

    def query_key(self, queries: Queries) -> tuple:
        """Every query gets the same scores."""
        return ()


class SegmentPopularity(CandidateGenerator):
    """Trending popularity within the user's segment (e.g. region x age band x device).

    For users we know nothing about beyond their profile. A segment's item distribution is
    shrunk towards the global one with ``prior_events`` pseudo-events, so thin segments fall
    back smoothly and unknown segments get the global ranking.
    """

    name = "segment_popularity"

    def __init__(
        self,
        users: pd.DataFrame,
        columns: tuple[str, ...] = ("region", "age_band", "device_preference"),
        half_life_days: float = 30.0,
        prior_events: float = 500.0,
    ):
        self.users = users  # indexed by user_id, with the segment columns
        self.columns = columns
        self.half_life_days = half_life_days
        self.prior_events = prior_events
        self.table = np.zeros((1, 1), dtype=np.float32)
        self.segment_index: dict[tuple, int] = {}

    def fit(self, log: InteractionLog, catalog: Catalog, as_of: datetime) -> SegmentPopularity:
        """Count decayed events per (segment, item) and smooth towards the global counts."""
        keys = self.users.reindex(log.user_id)[list(self.columns)].astype(str)
        codes, uniques = pd.MultiIndex.from_frame(keys).factorize()
        self.segment_index = {tuple(u): i for i, u in enumerate(uniques)}
        weights = log.weight * np.exp2(-age_days(log, as_of) / self.half_life_days)
        n_items = catalog.n_items + 1
        flat = np.bincount(
            codes * n_items + log.item_id, weights=weights, minlength=len(uniques) * n_items
        )
        counts = flat.reshape(len(uniques), n_items)
        global_share = counts.sum(axis=0) / max(counts.sum(), 1e-9)
        smoothed = (counts + self.prior_events * global_share) / (
            counts.sum(axis=1, keepdims=True) + self.prior_events
        )
        self.table = np.vstack([smoothed, global_share]).astype(np.float32)
        return self

    def score(self, queries: Queries) -> np.ndarray:
        """Each query's segment row (the global row for unknown segments)."""
        segments = queries.segments[list(self.columns)].astype(str).itertuples(index=False)
        rows = [self.segment_index.get(tuple(s), len(self.table) - 1) for s in segments]
        return self.table[np.asarray(rows, dtype=np.int64)].copy()

    def query_key(self, queries: Queries) -> int | None:
        """The row of the table a single query's segment reads."""
        if len(queries) != 1:
            return None
        # str() of each value is what ``astype(str)`` makes of it (``score``), without a frame
        segment = tuple(str(queries.segments[c].iloc[0]) for c in self.columns)
        return self.segment_index.get(segment, len(self.table) - 1)
