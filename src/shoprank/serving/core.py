"""One recommendation, end to end: the evaluation's two stages for a single request.

queries -> candidates -> entity keys -> features -> predict -> rules. Every step is the
function the evaluation and training use (:func:`~shoprank.ranking.dataset.candidate_frame`,
:func:`~shoprank.ranking.dataset.entity_columns`, :func:`~shoprank.ranking.examples.with_features`,
:meth:`~shoprank.ranking.model.RankerModel.predict`, :func:`~shoprank.ranking.rerank.rerank`);
only where the inputs come from differs: the model's serving state, the live events posted
since its fit, and Feast's online store (:class:`~shoprank.features.online.OnlineFeatures`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import pandas as pd

from shoprank.candidates.data import Queries
from shoprank.features.online import OnlineStoreError
from shoprank.features.sources import FeatureSource
from shoprank.ranking.dataset import Cutoff, candidate_frame, entity_columns
from shoprank.ranking.examples import SESSION_DAILY_KEYS, in_stock_mask, with_features
from shoprank.ranking.model import QUERY, RankerModel
from shoprank.ranking.rerank import SOURCE_PHRASES, Recommendation, rerank
from shoprank.serving.events import (
    LiveEvent,
    LiveEvents,
    live_arrays,
    merged_recent,
    purchases,
    touched,
)
from shoprank.training.bundle import ServingState

#: Queries for visitors without a user id use this id: no generator knows it.
ANONYMOUS = 0
FALLBACK = "segment"


@dataclass(frozen=True)
class Filters:
    """Request filters: a top-level category, a price ceiling, excluded ids.

    Out-of-stock products are never recommended (a rule, not a filter).
    """

    category: str | None = None
    max_price: float | None = None
    exclude: tuple[int, ...] = ()


@dataclass
class Answer:
    """A ranked list and how it was made."""

    items: list[Recommendation]
    degraded: bool
    candidates: int
    timings: dict[str, float] = field(default_factory=dict)
    reason_for_degrading: str | None = None


@dataclass
class Scored:
    """A request's candidate rows with their features and scores (what the ranker saw)."""

    rows: pd.DataFrame
    moment: datetime


class Recommender:
    """The served model: ranker, serving state, online features and live events.

    Args:
        model: The ranker.
        state: Everything fitted with it (:class:`~shoprank.training.bundle.ServingState`).
        features: Where features come from (online when serving; offline in tests).
        live: Events posted since the fit.
    """

    def __init__(
        self,
        model: RankerModel,
        state: ServingState,
        features: FeatureSource,
        live: LiveEvents,
    ):
        self.model = model
        self.state = state
        self.features = features
        self.live = live
        self._stock = in_stock_mask(state.catalog)
        pairs = state.bought
        self._bought = {
            int(user): frozenset(items.astype(int))
            for user, items in pairs.groupby("user_id")["product_id"]
        }
        self._allowed: dict[np.datetime64, np.ndarray] = {}

    # Inputs

    def queries(self, user_id: int | None, events: list[LiveEvent]) -> Queries:
        """The one query of a request, from the state of the fit plus the live events.

        As :func:`~shoprank.ranking.examples.session_queries` builds in-session queries.
        """
        uid = ANONYMOUS if user_id is None else int(user_id)
        ids = np.asarray([uid], dtype=np.int64)
        recent = merged_recent(events, self.state.recent_of(ids)[0], self.state.recent.shape[1])
        profile = self.state.users.reindex(ids)
        profile.index.name = "user_id"
        items, weights = live_arrays(events)
        return Queries(ids, self.state.fitted_at, recent, profile.reset_index(), items, weights)

    def allowed(self, moment: datetime) -> np.ndarray:
        """Products that may be recommended at ``moment``: launched by then and in stock."""
        day = np.datetime64(pd.Timestamp(moment).tz_convert(None).floor("D"), "D")
        mask = self._allowed.get(day)
        if mask is None:
            end = pd.Timestamp(day).tz_localize("UTC") + pd.Timedelta(days=1)
            mask = self.state.catalog.launched_mask(end.to_pydatetime()) & self._stock
            self._allowed = {day: mask}
        return mask

    # The two stages

    def score(
        self, user_id: int | None, session_id: str | None, moment: datetime, filters: Filters
    ) -> tuple[Scored, dict[str, float]]:
        """Candidates from every generator, their features and the ranker's scores."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        events = self.live.of(user_id, session_id, moment)
        queries = self.queries(user_id, events)
        allowed = self.allowed(moment)
        counts = self.state.candidates_per_generator
        candidates = candidate_frame(self.state.generators, queries, counts, allowed)
        candidates = self._filtered(candidates, touched(events), filters)
        rows = entity_columns(candidates, self.state.catalog, Cutoff(moment))
        rows[QUERY] = 0
        timings["candidates_ms"] = _ms(started)
        started = time.perf_counter()
        rows = with_features(self.features, rows, daily_keys=SESSION_DAILY_KEYS)
        timings["features_ms"] = _ms(started)
        started = time.perf_counter()
        rows["score"] = self.model.predict(rows) if len(rows) else np.zeros(0)
        timings["predict_ms"] = _ms(started)
        return Scored(rows, moment), timings

    def recommend(
        self,
        user_id: int | None,
        session_id: str | None,
        moment: datetime,
        k: int,
        filters: Filters | None = None,
    ) -> Answer:
        """The list the user sees: scored candidates through the post-ranking rules.

        A failing online store degrades the answer to the fallback (segment popularity
        under the same rules), never into an error.
        """
        filters = filters or Filters()
        try:
            scored, timings = self.score(user_id, session_id, moment, filters)
        except OnlineStoreError as exc:
            return self.fallback(user_id, session_id, moment, k, filters, str(exc))
        started = time.perf_counter()
        items = self.rules(scored, user_id, session_id, k)
        timings["rules_ms"] = _ms(started)
        return Answer(items, False, len(scored.rows), timings)

    def rules(
        self, scored: Scored, user_id: int | None, session_id: str | None, k: int
    ) -> list[Recommendation]:
        """Post-ranking: stock, already bought, diversity, new-arrival slot, reasons."""
        events = self.live.of(user_id, session_id, scored.moment)
        config = self.state.rerank
        config = replace(
            config,
            k=k,
            new_arrival_positions=tuple(p for p in config.new_arrival_positions if p <= k),
        )
        return rerank(
            scored.rows,
            self.state.catalog,
            config,
            now=scored.moment,
            vectors=self.state.vectors,
            bought=self.bought(user_id, events),
            repeat_cats=self.state.repeat_categories,
            model=self.model,
        )

    def bought(self, user_id: int | None, events: list[LiveEvent]) -> frozenset[int]:
        """Products the user bought before the fit or since (live purchases)."""
        live = frozenset(purchases(events)["product_id"].astype(int))
        if user_id is None:
            return live
        return self._bought.get(int(user_id), frozenset()) | live

    def fallback(
        self,
        user_id: int | None,
        session_id: str | None,
        moment: datetime,
        k: int,
        filters: Filters,
        why: str,
    ) -> Answer:
        """Segment popularity under the same rules, without the feature store (degraded)."""
        started = time.perf_counter()
        events = self.live.of(user_id, session_id, moment)
        queries = self.queries(user_id, events)
        generator = self.state.generators[FALLBACK]
        found = generator.recommend(queries, k * 5, self.allowed(moment))
        ids, scores = found.items[0], found.scores[0]
        frame = pd.DataFrame(
            {"product_id": ids[ids >= 0], f"{FALLBACK}_rank": np.arange(1, (ids >= 0).sum() + 1)}
        )
        frame["score"] = scores[ids >= 0]
        frame = self._filtered(frame, touched(events), filters)
        config = replace(self.state.rerank, k=k, mmr_lambda=1.0, new_arrival_positions=())
        items = rerank(
            frame,
            self.state.catalog,
            config,
            now=moment,
            bought=self.bought(user_id, events),
            repeat_cats=self.state.repeat_categories,
        )
        items = [replace(item, text=SOURCE_PHRASES[FALLBACK].capitalize()) for item in items]
        return Answer(items, True, len(frame), {"fallback_ms": _ms(started)}, why)

    def _filtered(self, frame: pd.DataFrame, seen: np.ndarray, filters: Filters) -> pd.DataFrame:
        """Candidates minus the session's products, excluded ids and what the filters reject."""
        catalog = self.state.catalog.frame
        ids = frame["product_id"].to_numpy(np.int64)
        keep = ~np.isin(ids, seen) & ~np.isin(ids, np.asarray(filters.exclude, dtype=np.int64))
        if filters.category is not None:
            keep &= catalog["category_l1"].reindex(ids).to_numpy() == filters.category
        if filters.max_price is not None:
            keep &= catalog["price"].reindex(ids).to_numpy(np.float64) <= filters.max_price
        return frame[keep].reset_index(drop=True)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
