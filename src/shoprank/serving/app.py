"""The service's state and endpoints' logic, loaded once per worker (the I/O edge).

:class:`ServingApp` opens what one model tag and the settings name (BentoML's model store,
Feast's online store, the vector index, the event log), and turns requests into the core's
calls (:class:`~shoprank.serving.core.Recommender`). The BentoML service class in
``bentos/recommender/service.py`` only delegates here.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from shoprank.features.online import OnlineFeatures, materialized_through
from shoprank.features.session import SessionEvent, next_session_row
from shoprank.ranking.rerank import Recommendation
from shoprank.serving import metrics
from shoprank.serving.core import Filters, Recommender
from shoprank.serving.events import EventLog, LiveEvent, LiveEvents
from shoprank.serving.request import RequestFeatures
from shoprank.serving.schemas import (
    EventRequest,
    EventResponse,
    Item,
    RecommendRequest,
    RecommendResponse,
    SimilarRequest,
)
from shoprank.serving.similar import SimilarItems
from shoprank.settings import Settings
from shoprank.training.bundle import ServingState, load_recommender

SESSION_PUSH = "session_events_push"
#: Sessions whose last row is kept to continue them (the longest idle ones go first).
SESSIONS_KEPT = 100_000


class ServingConfigError(ValueError):
    """The service cannot start: a setting is missing or names nothing that exists."""


class UnknownProductError(LookupError):
    """An event names a product the catalog does not have."""


@dataclass(frozen=True)
class Clock:
    """The service's now: the wall clock, or the data's (see ``Settings.serving_clock``).

    The data's clock starts at the model's fit when the server started (``started``, wall
    seconds): the server's parent process start, which all of its workers share, so their
    clocks agree and events posted to different workers keep their order.
    """

    mode: str
    fitted_at: datetime
    started: float

    def now(self) -> datetime:
        """The current moment (aware UTC)."""
        if self.mode == "wall":
            return datetime.now(UTC)
        return self.fitted_at + timedelta(seconds=max(time.time() - self.started, 0.0))

    @staticmethod
    def server_start() -> float:
        """When the server whose worker this is started (its parent's start, wall seconds)."""
        import psutil

        try:
            return psutil.Process(os.getppid()).create_time()
        except psutil.Error:
            return time.time()


def resolve_tag(settings: Settings) -> str:
    """The exact model tag to serve, or a clear error naming what could be served."""
    from shoprank.ranking.registry import list_rankers

    if settings.model_tag:
        return settings.model_tag
    saved = [row["tag"] for row in list_rankers(home=settings.bentoml_home)]
    hint = f" (saved: {', '.join(saved[:5])})" if saved else " (none saved: run `shoprank train`)"
    raise ServingConfigError(f"SHOPRANK_MODEL_TAG is not set: set it to an exact tag{hint}")


class ServingApp:
    """Everything a worker serves from, loaded once."""

    def __init__(
        self,
        tag: str,
        recommender: Recommender,
        similar: SimilarItems,
        store,
        log: EventLog,
        clock: Clock,
    ):
        self.tag = tag
        self.recommender = recommender
        self.similar_items = similar
        self.store = store
        self.log = log
        self.clock = clock
        self._session_rows: dict[tuple[int, str], dict] = {}
        self._user_rows: dict[int, dict] = {}
        self._follow_lock = threading.Lock()
        self.materialized: dict[str, datetime | None] = {}

    @classmethod
    def load(cls, settings: Settings) -> ServingApp:
        """Load the tag's model and state, open the online store, index and event log."""
        from shoprank.features.store import open_store

        tag = resolve_tag(settings)
        model, state = load_recommender(tag, settings.bentoml_home)
        model.booster.set_params(n_jobs=1)  # one request's rows: threads cost more than they save
        store = open_store(settings, serving=True)
        online = OnlineFeatures(store, state.feature_service)
        # read before loading: a materialization landing meanwhile is picked up by refresh
        stamps = materialized_through(store, [g.view.name for g in online.groups])
        online.preload(preload_keys(state))
        features = RequestFeatures(model, online, state.catalog)
        live = LiveEvents(state.fitted_at)
        log = EventLog(settings.event_log_path)
        similar = SimilarItems.build(state, settings, tag)
        clock = Clock(settings.serving_clock, state.fitted_at, Clock.server_start())
        app = cls(tag, Recommender(model, state, features, live), similar, store, log, clock)
        app.materialized = {view: stamps[view] for view in online.preloaded_views}
        app.follow()  # the events posted before this worker started
        return app

    # Fresh item features

    def refresh(self) -> bool:
        """Reload the in-process item views if a newer materialization landed.

        The new tables are built beside the served ones and swapped in at once: requests
        never see half of each.

        Returns:
            Whether the item views were reloaded.
        """
        current = self.recommender.features
        views = current.online.preloaded_views
        latest = materialized_through(self.store, views)
        if latest == self.materialized:
            return False
        online = OnlineFeatures(self.store, self.state.feature_service)
        online.preload(preload_keys(self.state))
        self.recommender.features = RequestFeatures(
            self.recommender.model, online, self.state.catalog
        )
        self.materialized = latest
        metrics.record_refresh()
        return True

    def start_refreshing(self, every_s: float) -> threading.Event:
        """Check for new materializations every ``every_s`` seconds in a daemon thread.

        Returns:
            An event that stops the thread when set.
        """
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every_s):
                try:
                    self.refresh()
                except Exception:  # a registry or store that fails keeps the served tables
                    metrics.record_refresh(failed=True)

        if every_s > 0:
            threading.Thread(target=loop, name="shoprank-refresh", daemon=True).start()
        return stop

    @property
    def state(self) -> ServingState:
        """The served model's fitted state."""
        return self.recommender.state

    def ready(self) -> bool:
        """Model, item features and index are loaded."""
        online = self.recommender.features.online
        tables = online.preloaded
        return bool(tables) and all(tables.values()) and self.similar_items.ready()

    # Recommendations

    def recommend(self, request: RecommendRequest) -> RecommendResponse:
        """One request, end to end, with its metrics."""
        started = time.perf_counter()
        moment = _utc(request.context.timestamp) or self.clock.now()
        filters = Filters(
            request.filters.category, request.filters.max_price, tuple(request.exclude)
        )
        self.follow()
        answer = self.recommender.recommend(
            request.user_id, request.session_id, moment, request.k, filters
        )
        timings = {**answer.timings, "total_ms": round((time.perf_counter() - started) * 1000, 3)}
        metrics.record_recommend(answer, timings["total_ms"] / 1000)
        return RecommendResponse(
            items=[_item(r) for r in answer.items],
            model_version=self.tag,
            request_id=uuid.uuid4().hex,
            degraded=answer.degraded,
            candidates=answer.candidates,
            timing_ms=timings,
        )

    def similar(self, request: SimilarRequest) -> RecommendResponse:
        """Products like one product (content index blended with co-visitation)."""
        started = time.perf_counter()
        self._require_product(request.product_id)
        items, degraded = self.similar_items.similar(
            request.product_id, request.k, set(request.exclude)
        )
        total = round((time.perf_counter() - started) * 1000, 3)
        metrics.record_similar(total / 1000, degraded)
        return RecommendResponse(
            items=items,
            model_version=self.tag,
            request_id=uuid.uuid4().hex,
            degraded=degraded,
            candidates=len(items),
            timing_ms={"total_ms": total},
        )

    # Events

    def record(self, request: EventRequest) -> EventResponse:
        """Log the event, remember it, push the session's features: visible to the next request.

        Raises:
            UnknownProductError: The product is not in the catalog (nothing is written).
        """
        self._require_product(request.product_id)
        with self.log.exclusive():
            # no other worker appends until this event is pushed (pushes go in log order);
            # the server's time is taken here, so events without one are in log order
            with self._follow_lock:
                moment = _utc(request.timestamp) or self.clock.now()
                event = LiveEvent(
                    request.user_id,
                    request.session_id,
                    request.product_id,
                    request.event_type,
                    moment,
                )
                self._follow()  # what other workers logged: this event's row builds on it
                self.log.append(event)
                row = self._follow().get(event)
            # outside the follow lock: a slow online store never holds up recommendations
            pushed = self._push(row) if row is not None else False
        metrics.record_event(request.event_type, pushed or request.user_id is None)
        degraded = request.user_id is not None and not pushed
        return EventResponse(
            request_id=uuid.uuid4().hex, logged=True, pushed=pushed, degraded=degraded
        )

    def follow(self) -> dict[LiveEvent, dict]:
        """Take in the events appended to the log (by any worker) since the last call.

        Each is added to the live events, and a user's event advances that user's
        session_features row (:func:`~shoprank.features.session.next_session_row`).

        Returns:
            The new session rows, by event (events older than their user's last one have
            none: they are logged and remembered, but the row does not go back in time).
        """
        with self._follow_lock:
            return self._follow()

    def _follow(self) -> dict[LiveEvent, dict]:
        rows = {}
        for event in self.log.follow():
            self.recommender.live.add(event)
            if event.user_id is not None:
                row = self._session_row(event)
                if row is not None:
                    rows[event] = row
        return rows

    def _session_row(self, event: LiveEvent) -> dict | None:
        """The user's session_features row after ``event`` (None if it is not newer)."""
        user = int(event.user_id)  # type: ignore[arg-type]
        previous = self._user_rows.get(user) or self.state.session_row(user)
        if previous is not None and pd.Timestamp(previous["event_timestamp"]) >= event.at:
            return None
        if event.product_id not in self.state.catalog.frame.index:
            return None  # logged by a service with another catalog: remembered, no row
        category = self.state.catalog.frame.at[event.product_id, "category_l2"]
        step = SessionEvent(
            user, event.product_id, category, event.event_type, event.session_id, event.at
        )
        row = next_session_row(
            previous, step, session_last=self._session_rows.get((user, event.session_id))
        )
        self._user_rows[user] = row
        key = (user, event.session_id)
        self._session_rows.pop(key, None)  # most recently active last
        self._session_rows[key] = row
        if len(self._session_rows) > SESSIONS_KEPT:  # the longest idle session goes
            del self._session_rows[next(iter(self._session_rows))]
        return row

    def _push(self, row: dict) -> bool:
        """Push a session_features row to the online store (False when the store fails)."""
        try:
            self.store.push(SESSION_PUSH, pd.DataFrame([row]), allow_registry_cache=True)
        except Exception:  # a store that is down: the event is logged and remembered
            return False
        return True

    def _require_product(self, product_id: int) -> None:
        if product_id not in self.state.catalog.frame.index:
            raise UnknownProductError(f"product_id {product_id} is not in the catalog")


def preload_keys(state: ServingState) -> dict[str, list]:
    """Entity values of the in-process views: every product, and the days around the fit."""
    start = pd.Timestamp(state.fitted_at).floor("D") - pd.Timedelta(days=30)
    days = pd.date_range(start, periods=430, freq="D").strftime("%Y-%m-%d").tolist()
    return {"product_id": state.catalog.frame.index.astype(int).tolist(), "calendar_date": days}


def _item(rec: Recommendation) -> Item:
    sources = [s for s in rec.sources]
    return Item(
        product_id=rec.product_id,
        score=rec.score,
        reason=rec.text,
        source=sources[0] if sources else "ranker",
        sources=sources,
    )


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)
