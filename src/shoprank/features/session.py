"""The live session features: one incremental step that equals the dbt mart ``session_features``.

dbt computes ``session_features`` offline with window functions over ``fct_events``. When
serving, the push source ``session_events_push`` needs the same row for each new event, right
away. :func:`next_session_row` is that step: it turns the user's row after their previous event
and the new event into the user's row after the new event. It reproduces the dbt model exactly:

* ``last_product_id_2..5`` and ``last_category_l2_2..3`` are lags over *all* the user's events in
  time order, across sessions.
* ``session_event_count`` is the event's position in its session, ``session_cart_count`` the
  carts in the session up to and including it.
* ``session_minutes`` is dbt-duckdb's ``datediff(start, event, 'second') / 60.0``, which compiles to
  DuckDB ``date_diff('second', ...)``: the number of whole-second *boundaries* crossed (both times
  truncated to the second, then subtracted), not the elapsed time rounded.
* One user's sessions can overlap in time (two tabs): dbt then continues the older session's
  position, carts and start when the user goes back to it. The user's previous row then belongs to
  the other session, so the caller passes the session's own last row as ``session_last``.

The mart keeps one event per (user, instant), the one with the highest ``event_id``; the step
expects events already filtered that way and strictly after the previous one.
:func:`fold_session_rows` applies the rule and the step over a frame of events (to check the
step against the mart), and :func:`session_row_mismatches` compares two such frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

#: The mart's columns, in order.
SESSION_COLUMNS: tuple[str, ...] = (
    "user_id",
    "event_timestamp",
    "session_id",
    "last_product_id",
    "last_product_id_2",
    "last_product_id_3",
    "last_product_id_4",
    "last_product_id_5",
    "last_category_l2",
    "last_category_l2_2",
    "last_category_l2_3",
    "last_event_type",
    "session_event_count",
    "session_cart_count",
    "session_minutes",
)

#: Event types the mart accepts.
EVENT_TYPES: tuple[str, ...] = ("view", "cart", "purchase")

#: Columns a frame of events needs for :func:`fold_session_rows`.
EVENT_COLUMNS: tuple[str, ...] = (
    "user_id",
    "product_id",
    "category_l2",
    "event_type",
    "session_id",
    "event_at",
    "event_id",
)

_PRODUCT_LAGS = ("last_product_id", *(f"last_product_id_{n}" for n in range(2, 6)))
_CATEGORY_LAGS = ("last_category_l2", "last_category_l2_2", "last_category_l2_3")
_KEY = ("user_id", "event_timestamp")
_FLOAT_COLUMNS = frozenset({"session_minutes"})
_FRAME_DTYPES = {
    "user_id": "int64",
    **dict.fromkeys(_PRODUCT_LAGS, "Int64"),
    "session_event_count": "int64",
    "session_cart_count": "int64",
    "session_minutes": "float64",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class SessionEvent:
    """One clean event, as the live path receives it.

    Attributes:
        user_id: The user.
        product_id: The product viewed, carted or bought.
        category_l2: Leaf category of the product (None when unknown).
        event_type: One of ``view``, ``cart``, ``purchase``.
        session_id: The session the event belongs to.
        event_at: When it happened: tz-aware, or naive meaning UTC.
    """

    user_id: int
    product_id: int
    category_l2: str | None
    event_type: str
    session_id: str
    event_at: datetime

    def __post_init__(self) -> None:
        if self.event_type not in EVENT_TYPES:
            raise ValueError(f"event_type must be one of {EVENT_TYPES}, got {self.event_type!r}")


def next_session_row(
    previous: Mapping[str, object] | None,
    event: SessionEvent,
    *,
    session_last: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The user's ``session_features`` row right after ``event``.

    Args:
        previous: The user's row after their previous event (None for their first event).
        event: The new event, strictly later than ``previous``.
        session_last: The row after the latest earlier event of ``event.session_id``, when that
            is not ``previous`` (the user went back to an overlapping session). None means
            "``previous`` if it is in the same session, else this event starts the session".

    Returns:
        The row, keyed by :data:`SESSION_COLUMNS`; ``event_timestamp`` is tz-aware UTC.

    Raises:
        ValueError: If a given row is another user's, ``session_last`` is another session's,
            or ``event`` is not after ``previous``.
    """
    _check_predecessors(previous, session_last, event)
    if session_last is None and _same_session(previous, event):
        session_last = previous
    return {
        "user_id": event.user_id,
        "event_timestamp": _as_utc(event.event_at),
        "session_id": event.session_id,
        **_recent_items(previous, event),
        "last_event_type": event.event_type,
        **_session_progress(session_last, event),
    }


def _same_session(row: Mapping[str, object] | None, event: SessionEvent) -> bool:
    """Whether ``row`` is a row of ``event``'s session."""
    return row is not None and row["session_id"] == event.session_id


def _check_predecessors(
    previous: Mapping[str, object] | None,
    session_last: Mapping[str, object] | None,
    event: SessionEvent,
) -> None:
    """Raise ValueError unless the given rows can precede ``event``."""
    for name, row in (("previous", previous), ("session_last", session_last)):
        if row is None:
            continue
        if row["user_id"] != event.user_id:
            raise ValueError(f"{name} is user {row['user_id']}'s row, event is {event.user_id}'s")
        if _as_utc(row["event_timestamp"]) >= _as_utc(event.event_at):
            raise ValueError(f"event at {event.event_at} is not after {name}'s timestamp")
    if session_last is not None and session_last["session_id"] != event.session_id:
        raise ValueError(f"session_last is in session {session_last['session_id']!r}")


def _recent_items(previous: Mapping[str, object] | None, event: SessionEvent) -> dict[str, object]:
    """Lag columns: this event's product and category, then the previous row's, shifted by one."""
    earlier = previous if previous is not None else {}
    products = [event.product_id, *(earlier.get(c) for c in _PRODUCT_LAGS[:-1])]
    categories = [event.category_l2, *(earlier.get(c) for c in _CATEGORY_LAGS[:-1])]
    return {
        **{c: _optional_int(v) for c, v in zip(_PRODUCT_LAGS, products, strict=True)},
        **{c: _optional_str(v) for c, v in zip(_CATEGORY_LAGS, categories, strict=True)},
    }


def _session_progress(
    session_last: Mapping[str, object] | None, event: SessionEvent
) -> dict[str, object]:
    """Position, carts so far and minutes since start, continuing ``session_last`` if given."""
    is_cart = int(event.event_type == "cart")
    if session_last is None:
        return {"session_event_count": 1, "session_cart_count": is_cart, "session_minutes": 0.0}
    # dbt's datediff only sees whole seconds, so the start's second is all we need to recover.
    last_second = _epoch_second(session_last["event_timestamp"])
    start_second = last_second - round(float(session_last["session_minutes"]) * 60.0)
    return {
        "session_event_count": int(session_last["session_event_count"]) + 1,
        "session_cart_count": int(session_last["session_cart_count"]) + is_cart,
        "session_minutes": float(_epoch_second(event.event_at) - start_second) / 60.0,
    }


def _epoch_second(moment: object) -> int:
    """The UTC second ``moment`` falls in, as DuckDB's ``date_diff('second')`` counts (floor)."""
    return (_as_utc(moment) - _EPOCH) // _SECOND


def _as_utc(moment: object) -> datetime:
    """A tz-aware UTC datetime (or pandas Timestamp); naive values are taken as UTC."""
    if not isinstance(moment, datetime):
        raise TypeError(f"expected a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _optional_int(value: object) -> int | None:
    """``value`` as an int, None for null (None, NaN, pandas NA)."""
    return None if _is_null(value) else int(value)


def _optional_str(value: object) -> str | None:
    """``value`` as a str, None for null (None, NaN, pandas NA)."""
    return None if _is_null(value) else str(value)


def _is_null(value: object) -> bool:
    """Whether ``value`` is a scalar null."""
    return value is None or bool(pd.isna(value))


def fold_session_rows(events: pd.DataFrame) -> pd.DataFrame:
    """Apply :func:`next_session_row` over a frame of events, per user in time order.

    Like the dbt model, only the event with the highest ``event_id`` is kept per
    (``user_id``, ``event_at``). Session ids are taken to belong to one user.

    Args:
        events: Clean events with the columns in :data:`EVENT_COLUMNS`.

    Returns:
        One row per kept event, columns :data:`SESSION_COLUMNS`, sorted by user and time.
    """
    rows: list[dict[str, object]] = []
    previous: dict[str, object] | None = None
    session_rows: dict[str, dict[str, object]] = {}
    for event in _kept_events(events):
        if previous is not None and previous["user_id"] != event.user_id:
            previous, session_rows = None, {}
        previous = next_session_row(
            previous, event, session_last=session_rows.get(event.session_id)
        )
        session_rows[event.session_id] = previous
        rows.append(previous)
    return _session_frame(rows)


def _kept_events(events: pd.DataFrame) -> list[SessionEvent]:
    """The events the mart keeps (highest event_id per user and instant), by user and time."""
    ordered = events.sort_values(["user_id", "event_at", "event_id"], ascending=[True, True, False])
    kept = ordered.drop_duplicates(["user_id", "event_at"], keep="first")
    return [
        SessionEvent(
            user_id=int(e.user_id),
            product_id=int(e.product_id),
            category_l2=_optional_str(e.category_l2),
            event_type=str(e.event_type),
            session_id=str(e.session_id),
            event_at=e.event_at,
        )
        for e in kept.itertuples(index=False)
    ]


def _session_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Rows as a frame with the mart's columns; ids nullable ints, timestamps UTC."""
    frame = pd.DataFrame.from_records(rows, columns=list(SESSION_COLUMNS))
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame.astype(_FRAME_DTYPES)


def session_row_mismatches(
    expected: pd.DataFrame, actual: pd.DataFrame, *, tolerance: float = 1e-9
) -> list[str]:
    """How two session-feature frames differ, keyed by (user_id, event_timestamp).

    Naive timestamps are taken as UTC; nulls (None, NaN, NA) equal each other; floats may differ
    by ``tolerance``.

    Args:
        expected: The reference rows (e.g. the dbt mart).
        actual: The rows to check (e.g. :func:`fold_session_rows` output).
        tolerance: Largest absolute difference allowed between two floats.

    Returns:
        One message per problem (missing or extra columns, keys, differing values); empty
        when the frames agree row for row.
    """
    problems = [
        f"{name}: columns {list(frame.columns)} are not {list(SESSION_COLUMNS)}"
        for name, frame in (("expected", expected), ("actual", actual))
        if tuple(frame.columns) != SESSION_COLUMNS
    ]
    if problems:
        return problems
    left, right = _keyed(expected), _keyed(actual)
    problems += _key_problems(left, right)
    shared = left.index.intersection(right.index)
    for column in SESSION_COLUMNS[len(_KEY) :]:
        problems += _value_problems(column, left.loc[shared, column], right.loc[shared, column])
        if column in _FLOAT_COLUMNS:
            problems += _float_problems(column, left.loc[shared], right.loc[shared], tolerance)
    return problems


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` indexed and sorted by (user_id, UTC event_timestamp)."""
    moments = pd.to_datetime(frame["event_timestamp"], utc=True).dt.as_unit("ns")
    keyed = frame.assign(event_timestamp=moments)
    return keyed.set_index(list(_KEY)).sort_index()


def _key_problems(left: pd.DataFrame, right: pd.DataFrame) -> list[str]:
    """Duplicate keys, and keys only one side has."""
    problems = [
        f"{name}: {n} duplicate (user_id, event_timestamp) keys"
        for name, frame in (("expected", left), ("actual", right))
        if (n := int(frame.index.duplicated().sum()))
    ]
    for name, keys in (
        ("missing", left.index.difference(right.index)),
        ("unexpected", right.index.difference(left.index)),
    ):
        if len(keys):
            user_id, moment = keys[0]
            problems.append(f"{len(keys)} {name} rows, first user_id={user_id} at {moment}")
    return problems


def _value_problems(column: str, left: pd.Series, right: pd.Series) -> list[str]:
    """Rows where one side is null and the other not, or (non-float) values differ."""
    left_null, right_null = left.isna().to_numpy(), right.isna().to_numpy()
    differ = left_null != right_null
    if column not in _FLOAT_COLUMNS:
        both = ~left_null & ~right_null
        pairs = zip(left.to_numpy()[both], right.to_numpy()[both], strict=True)
        differ[both] = [a != b for a, b in pairs]
    return _describe(column, left, right, differ)


def _float_problems(
    column: str, left: pd.DataFrame, right: pd.DataFrame, tolerance: float
) -> list[str]:
    """Rows where a float column differs by more than ``tolerance`` (nulls excluded)."""
    gap = (left[column].astype(float) - right[column].astype(float)).abs()
    return _describe(column, left[column], right[column], (gap > tolerance).to_numpy())


def _describe(column: str, left: pd.Series, right: pd.Series, differ: np.ndarray) -> list[str]:
    """One message for the rows flagged in ``differ``, naming the first."""
    if not differ.any():
        return []
    first = int(differ.argmax())
    user_id, moment = left.index[first]
    return [
        f"{column}: {int(differ.sum())} rows differ, first user_id={user_id} at {moment}: "
        f"expected {_plain(left.iloc[first])!r}, got {_plain(right.iloc[first])!r}"
    ]


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds (for readable messages)."""
    return value.item() if isinstance(value, np.generic) else value
