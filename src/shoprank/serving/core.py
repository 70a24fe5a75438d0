"""One recommendation, end to end: the evaluation's two stages for a single request.

queries -> candidates -> entity keys -> features -> predict -> rules. The candidates are
:func:`~shoprank.ranking.dataset.candidate_union` (what ``candidate_frame`` builds the
evaluation's rows from), the features the same matrix ``with_features`` and
:meth:`~shoprank.ranking.model.RankerModel.encode` give offline, built in numpy from
Feast's online store (:class:`~shoprank.serving.request.RequestFeatures`), the scores
:meth:`~shoprank.ranking.model.RankerModel.predict_matrix` and the list
:func:`~shoprank.ranking.rerank.select` and :func:`~shoprank.ranking.rerank.explain`, as
:func:`~shoprank.ranking.rerank.rerank` does offline. Only where the inputs come from
differs: the model's serving state, the live events posted since its fit, and the online
store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import pandas as pd

from shoprank.candidates.data import Queries
from shoprank.features.online import OnlineStoreError
from shoprank.ranking.dataset import CandidateUnion, candidate_union
from shoprank.ranking.examples import in_stock_mask
from shoprank.ranking.model import RankerModel
from shoprank.ranking.rerank import (
    SOURCE_PHRASES,
    Recommendation,
    contribution_matrix,
    explain,
    rerank,
    select,
)
from shoprank.serving.events import (
    LiveEvent,
    LiveEvents,
    live_arrays,
    merged_recent,
    touched,
)
from shoprank.serving.request import CONTEXT_COLUMNS, RequestFeatures, RequestRows
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
    #: Lookups of the day's query-independent candidates: {"hit": n, "miss": n}.
    cache: dict[str, int] = field(default_factory=dict)


@dataclass
class Scored:
    """A request's candidates, the ranker's input for them and its scores."""

    rows: RequestRows
    scores: np.ndarray
    moment: datetime
    cache: dict[str, int] = field(default_factory=dict)

    @property
    def ids(self) -> np.ndarray:
        """The candidates' product ids."""
        return self.rows.ids

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, model: RankerModel, moment: datetime) -> Scored:
        """The same from the evaluation's joined rows of one query (``score`` column)."""
        names = tuple(c.removesuffix("_rank") for c in frame.columns if c.endswith("_rank"))
        union = CandidateUnion(
            names,
            np.zeros(len(frame), dtype=np.int64),
            frame["product_id"].to_numpy(np.int64),
            frame[[f"{n}_rank" for n in names]].to_numpy(np.float32),
            frame[[f"{n}_score" for n in names]].to_numpy(np.float32),
        )
        first = frame.iloc[0] if len(frame) else {}
        context = {c: first.get(c) for c in CONTEXT_COLUMNS if c in frame}
        rows = RequestRows(union, model.encode(frame), context)
        return cls(rows, frame["score"].to_numpy(np.float32), moment)


class Recommender:
    """The served model: ranker, serving state, online features and live events.

    Args:
        model: The ranker.
        state: Everything fitted with it (:class:`~shoprank.training.bundle.ServingState`).
        features: Builds a request's ranker input from the online store.
        live: Events posted since the fit.
    """

    def __init__(
        self,
        model: RankerModel,
        state: ServingState,
        features: RequestFeatures,
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
        self._allowed: dict[np.datetime64, tuple[np.ndarray, dict]] = {}
        catalog = state.catalog.frame
        self._category = catalog["category_l1"].reindex(np.arange(state.catalog.n_items + 1))
        self._price = catalog["price"].reindex(np.arange(state.catalog.n_items + 1))

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
        return self._day(moment)[0]

    def _day(self, moment: datetime) -> tuple[np.ndarray, dict]:
        """The day's allowed mask, and its cache of query-independent candidates."""
        day = np.datetime64(pd.Timestamp(moment).tz_convert(None).floor("D"), "D")
        found = self._allowed.get(day)
        if found is None:
            end = pd.Timestamp(day).tz_localize("UTC") + pd.Timedelta(days=1)
            mask = self.state.catalog.launched_mask(end.to_pydatetime()) & self._stock
            found = (mask, {})
            self._allowed = {day: found}  # one day at a time
        return found

    # The two stages

    def score(
        self, user_id: int | None, session_id: str | None, moment: datetime, filters: Filters
    ) -> tuple[Scored, dict[str, float]]:
        """Candidates from every generator, their features and the ranker's scores."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        events = self.live.of(user_id, session_id, moment)
        queries = self.queries(user_id, events)
        allowed, static = self._day(moment)
        counts = self.state.candidates_per_generator
        lookups = {"hit": 0, "miss": 0}
        union = candidate_union(self.state.generators, queries, counts, allowed, static, lookups)
        union = union.take(self._kept(union.items, touched(events), filters))
        timings["candidates_ms"] = _ms(started)
        started = time.perf_counter()
        uid = ANONYMOUS if user_id is None else int(user_id)
        rows = self.features.rows(union, uid, moment)
        timings["features_ms"] = _ms(started)
        started = time.perf_counter()
        scores = self.model.predict_matrix(rows.matrix)
        timings["predict_ms"] = _ms(started)
        return Scored(rows, scores, moment, lookups), timings

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
        return Answer(items, False, len(scored.ids), timings, cache=scored.cache)

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
        positions, slots = select(
            scored.ids,
            scored.scores.astype(np.float64),
            self.state.catalog,
            config,
            now=scored.moment,
            vectors=self.state.vectors,
            bought=self.bought(user_id, events),
            repeat_cats=self.state.repeat_categories,
        )
        chosen = _chosen_frame(scored, positions, self.model)
        contribs = None
        if len(positions):
            values = contribution_matrix(
                self.model, scored.rows.matrix[positions], config.approximate_contributions
            )
            contribs = pd.DataFrame(values, columns=self.model.columns)
        return explain(
            chosen, slots, self.state.catalog, config, self.state.vectors, contribs=contribs
        )

    def bought(self, user_id: int | None, events: list[LiveEvent]) -> frozenset[int]:
        """Products the user bought before the fit or since (live purchases)."""
        live = frozenset(e.product_id for e in events if e.event_type == "purchase")
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
        frame = frame[self._kept(frame["product_id"].to_numpy(np.int64), touched(events), filters)]
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

    def _kept(self, ids: np.ndarray, seen: np.ndarray, filters: Filters) -> np.ndarray:
        """Candidates that stay: not in the session, not excluded, passing the filters."""
        keep = ~np.isin(ids, seen) & ~np.isin(ids, np.asarray(filters.exclude, dtype=np.int64))
        if filters.category is not None:
            keep &= self._category.to_numpy()[ids] == filters.category
        if filters.max_price is not None:
            keep &= self._price.to_numpy(np.float64)[ids] <= filters.max_price
        return keep


def _chosen_frame(scored: Scored, positions: np.ndarray, model: RankerModel) -> dict:
    """The chosen candidates as columns for :func:`~shoprank.ranking.rerank.explain`."""
    union = scored.rows.union
    values = scored.rows.matrix[positions]
    columns: dict[str, object] = {c: values[:, j] for j, c in enumerate(model.columns)}
    columns["product_id"] = union.items[positions]
    columns["score"] = scored.scores[positions].astype(np.float64)
    for g, name in enumerate(union.names):
        columns[f"{name}_rank"] = union.ranks[positions, g]
    for column, value in scored.rows.context.items():
        columns[column] = np.asarray([value] * len(positions), dtype=object)
    return columns


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
