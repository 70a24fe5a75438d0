"""What candidate generators learn from and answer: interaction logs, catalog, queries.

Items are addressed by their integer product id, used directly as a column index into score
arrays of width ``n_items + 1`` (column 0 unused), so every generator's scores line up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp

EVENT_WEIGHTS = {"view": 1.0, "cart": 3.0, "purchase": 5.0}


@dataclass(frozen=True)
class Catalog:
    """Products by id: category, brand, price, launch time, stock."""

    frame: pd.DataFrame  # indexed by product_id

    @property
    def n_items(self) -> int:
        """Largest product id (score arrays have n_items + 1 columns)."""
        return int(self.frame.index.max())

    def launched_mask(self, as_of: datetime) -> np.ndarray:
        """Boolean array over item columns: launched at or before ``as_of``."""
        mask = np.zeros(self.n_items + 1, dtype=bool)
        launched = self.frame["launched_at"] <= pd.Timestamp(as_of).tz_localize(None)
        mask[self.frame.index[launched.to_numpy()]] = True
        return mask

    def codes(self, column: str) -> np.ndarray:
        """Integer codes of a categorical column over item columns (-1 for unknown ids)."""
        codes = np.full(self.n_items + 1, -1, dtype=np.int64)
        codes[self.frame.index] = pd.Categorical(self.frame[column]).codes
        return codes

    @functools.cached_property
    def shelf(self) -> CatalogArrays:
        """Stock, launch time and leaf category as arrays over item columns (computed once)."""
        n = self.n_items + 1
        in_stock = np.zeros(n, dtype=bool)
        in_stock[self.frame.index] = self.frame["in_stock"].eq(True).to_numpy(bool)
        launched = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
        launched[self.frame.index] = self.frame["launched_at"].to_numpy("datetime64[us]")
        leaves = pd.Categorical(self.frame["category_l2"])
        leaf = np.full(n, -1, dtype=np.int64)
        leaf[self.frame.index] = leaves.codes
        return CatalogArrays(in_stock, launched, leaf, pd.Index(leaves.categories))


@dataclass(frozen=True)
class CatalogArrays:
    """Per item column (product id): in stock, launch time (naive UTC), leaf category code.

    Ids the catalog does not have are out of stock, never launched, leaf -1.
    """

    in_stock: np.ndarray
    launched: np.ndarray
    leaf: np.ndarray
    leaves: pd.Index  # leaf code -> name


@dataclass(frozen=True)
class InteractionLog:
    """Clean events in a time window, as parallel arrays."""

    user_id: np.ndarray
    item_id: np.ndarray
    weight: np.ndarray
    event_at: np.ndarray  # datetime64[us], naive UTC
    session: np.ndarray  # int codes
    event_type: np.ndarray  # str
    revenue: np.ndarray | None = None  # purchase revenue per event (0 for views and carts)

    def __len__(self) -> int:
        return len(self.user_id)

    def before(self, moment: datetime) -> InteractionLog:
        """The events strictly before ``moment``."""
        return self.take(self.event_at < as_datetime64(moment))

    def take(self, rows: np.ndarray) -> InteractionLog:
        """The events at ``rows`` (indices or a boolean mask)."""
        return InteractionLog(
            **{
                name: None if values is None else values[rows]
                for name, values in vars(self).items()
            }
        )

    def user_item_matrix(self, n_users: int, n_items: int) -> sp.csr_matrix:
        """Summed event weights, users x items (ids as indices)."""
        return sp.csr_matrix(
            (self.weight, (self.user_id, self.item_id)), shape=(n_users + 1, n_items + 1)
        )


@dataclass
class Queries:
    """Who to recommend for, and when: one row per query."""

    user_id: np.ndarray
    as_of: datetime
    recent_items: np.ndarray  # (n, L) most recent first, -1 padded
    segments: pd.DataFrame = field(default_factory=pd.DataFrame)  # region, age_band, device...
    # Live events: what each user did after the generators were fit (``as_of``) and before
    # the query, e.g. the session a new visitor is in. (n, M) item ids (-1 padded) and their
    # event weights; None when there are none. Generators that keep per-user state (ALS,
    # category affinity) fold them in; the others see them through ``recent_items``.
    live_items: np.ndarray | None = None
    live_weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.live_items is None) != (self.live_weights is None):
            raise ValueError("live_items and live_weights go together")
        if self.live_items is not None and self.live_items.shape != self.live_weights.shape:
            raise ValueError("live_items and live_weights must have the same shape")

    def __len__(self) -> int:
        return len(self.user_id)

    @property
    def has_live(self) -> bool:
        """Whether any query carries live events."""
        return self.live_items is not None and bool((self.live_items >= 0).any())

    def take(self, rows: np.ndarray | slice) -> Queries:
        """A subset of the queries."""
        segments = self.segments.iloc[rows] if len(self.segments) else self.segments
        live = (None, None)
        if self.live_items is not None:
            live = (self.live_items[rows], self.live_weights[rows])
        return Queries(self.user_id[rows], self.as_of, self.recent_items[rows], segments, *live)


def live_events(
    log: InteractionLog, user_ids: np.ndarray, length: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's events in ``log`` as (items, weights), most recent first, -1/0 padded.

    For :class:`Queries` live events: ``log`` holds what happened since the generators were
    fit (a session in progress); only the ``length`` most recent events are kept.
    """
    frame = pd.DataFrame({"user": log.user_id, "item": log.item_id, "w": log.weight})
    frame["t"] = log.event_at
    frame, rows, cols = _latest_per_user(frame, user_ids, length)
    items = np.full((len(user_ids), length), -1, dtype=np.int64)
    weights = np.zeros((len(user_ids), length), dtype=np.float32)
    items[rows, cols] = frame["item"].to_numpy()
    weights[rows, cols] = frame["w"].to_numpy()
    return items, weights


def _latest_per_user(
    frame: pd.DataFrame, user_ids: np.ndarray, length: int, distinct: bool = False
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The ``length`` latest rows (column ``t``) of each user in ``user_ids`` (column ``user``).

    Returns those rows with their query row and position (0 = latest); with ``distinct``
    an item (column ``item``) counts once per user, at its latest event.
    """
    frame = frame[np.isin(frame["user"], user_ids)].sort_values("t", ascending=False, kind="stable")
    if distinct:
        frame = frame.drop_duplicates(["user", "item"])
    rank = frame.groupby("user").cumcount().to_numpy()
    frame = frame[rank < length]
    rows = pd.Series(np.arange(len(user_ids)), index=user_ids).reindex(frame["user"]).to_numpy()
    return frame, rows.astype(np.int64), rank[rank < length]


def load_catalog(warehouse: Path) -> Catalog:
    """The product catalog from the dbt warehouse (``int_products__priced``)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        frame = con.execute(
            "select product_id, category_l1, category_l2, brand, price, price_rel_category,"
            " in_stock, launched_at from int_products__priced order by product_id"
        ).df()
    return Catalog(frame.set_index("product_id"))


def load_log(warehouse: Path, start: datetime, end: datetime) -> InteractionLog:
    """Clean events with ``start <= event_at < end`` from ``fct_events``."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        frame = con.execute(
            "select user_id, product_id, event_type, event_at, session_id,"
            " coalesce(revenue, 0) as revenue from fct_events"
            " where event_at >= $start and event_at < $end order by event_at",
            {"start": _naive(start), "end": _naive(end)},
        ).df()
    return log_from_frame(frame)


def log_from_frame(frame: pd.DataFrame) -> InteractionLog:
    """An InteractionLog from user_id, product_id, event_type, event_at, session_id (+ revenue)."""
    return InteractionLog(
        user_id=frame["user_id"].to_numpy(np.int64),
        item_id=frame["product_id"].to_numpy(np.int64),
        weight=frame["event_type"].map(EVENT_WEIGHTS).to_numpy(np.float32),
        event_at=frame["event_at"].to_numpy("datetime64[us]"),
        session=pd.factorize(frame["session_id"])[0].astype(np.int64),
        event_type=frame["event_type"].to_numpy(),
        revenue=frame["revenue"].to_numpy(np.float32) if "revenue" in frame else None,
    )


def recent_items(log: InteractionLog, user_ids: np.ndarray, length: int = 5) -> np.ndarray:
    """Each user's last ``length`` distinct items in ``log`` (most recent first, -1 padded)."""
    frame = pd.DataFrame({"user": log.user_id, "item": log.item_id, "t": log.event_at})
    frame, rows, cols = _latest_per_user(frame, user_ids, length, distinct=True)
    out = np.full((len(user_ids), length), -1, dtype=np.int64)
    out[rows, cols] = frame["item"].to_numpy()
    return out


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None) if moment.tzinfo else moment


def as_datetime64(moment: datetime) -> np.datetime64:
    """A (possibly tz-aware UTC) datetime as naive-UTC microseconds, like the log's times."""
    return np.datetime64(_naive(moment), "us")


def age_days(log: InteractionLog, as_of: datetime) -> np.ndarray:
    """Days from each event to ``as_of`` (0 for events at or after it)."""
    return np.maximum((as_datetime64(as_of) - log.event_at) / np.timedelta64(1, "D"), 0.0)
