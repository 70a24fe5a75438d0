"""The live session step (shoprank.features.session) on hand-made events."""

from datetime import UTC, datetime, timedelta, timezone

import duckdb
import pandas as pd
import pytest

from shoprank.features.session import (
    SESSION_COLUMNS,
    SessionEvent,
    fold_session_rows,
    next_session_row,
    session_row_mismatches,
)

# The dbt unit test's events (session_features.yml, listed out of order as there), then a
# purchase in the second session and a third session on a product with no known category.
EVENTS = pd.DataFrame(
    [
        ("e3", 1, "2025-05-02 10:00:00", "s2", "view", 30, "mugs"),
        ("e1", 1, "2025-05-01 10:00:00", "s1", "view", 10, "kites"),
        ("e2", 1, "2025-05-01 10:06:00", "s1", "cart", 20, "kites"),
        ("e4", 1, "2025-05-02 10:02:30.900", "s2", "purchase", 30, "mugs"),
        ("e5", 1, "2025-05-03 09:00:00", "s3", "view", 40, None),
    ],
    columns=[
        "event_id",
        "user_id",
        "event_at",
        "session_id",
        "event_type",
        "product_id",
        "category_l2",
    ],
).assign(event_at=lambda f: pd.to_datetime(f["event_at"], format="ISO8601"))

# What dbt's window functions give for EVENTS (the first three rows are the dbt unit test's).
# fmt: off
EXPECTED_ROWS = [
    (1, "2025-05-01 10:00:00", "s1", 10, None, None, None, None, "kites", None, None,
     "view", 1, 0, 0.0),
    (1, "2025-05-01 10:06:00", "s1", 20, 10, None, None, None, "kites", "kites", None,
     "cart", 2, 1, 6.0),
    (1, "2025-05-02 10:00:00", "s2", 30, 20, 10, None, None, "mugs", "kites", "kites",
     "view", 1, 0, 0.0),
    (1, "2025-05-02 10:02:30.900", "s2", 30, 30, 20, 10, None, "mugs", "mugs", "kites",
     "purchase", 2, 0, 2.5),
    (1, "2025-05-03 09:00:00", "s3", 40, 30, 30, 20, 10, None, "mugs", "mugs",
     "view", 1, 0, 0.0),
]
# fmt: on
EXPECTED = pd.DataFrame(EXPECTED_ROWS, columns=list(SESSION_COLUMNS)).assign(
    event_timestamp=lambda f: pd.to_datetime(f["event_timestamp"], format="ISO8601")
)


def _event(at: str, session: str = "s1", kind: str = "view", product: int = 1) -> SessionEvent:
    return SessionEvent(
        user_id=1,
        product_id=product,
        category_l2="kites",
        event_type=kind,
        session_id=session,
        event_at=datetime.fromisoformat(at),
    )


def _chain(*events: SessionEvent) -> list[dict[str, object]]:
    rows, previous = [], None
    for event in events:
        previous = next_session_row(previous, event)
        rows.append(previous)
    return rows


def test_fold_reproduces_the_dbt_unit_test_scenario():
    folded = fold_session_rows(EVENTS)
    assert list(folded.columns) == list(SESSION_COLUMNS)
    assert session_row_mismatches(EXPECTED, folded) == []


def test_each_step_returns_the_mart_row_after_the_event():
    events = [
        SessionEvent(
            user_id=int(e.user_id),
            product_id=int(e.product_id),
            category_l2=e.category_l2,
            event_type=e.event_type,
            session_id=e.session_id,
            event_at=e.event_at.to_pydatetime(),
        )
        for e in EVENTS.sort_values("event_at").itertuples()
    ]
    rows = _chain(*events)
    assert rows[1]["last_product_id_2"] == 10
    assert rows[1]["event_timestamp"] == datetime(2025, 5, 1, 10, 6, tzinfo=UTC)
    assert rows[3]["session_minutes"] == 2.5
    assert rows[4]["last_category_l2"] is None
    assert session_row_mismatches(EXPECTED, pd.DataFrame(rows, columns=SESSION_COLUMNS)) == []


def test_session_minutes_count_second_boundaries_like_duckdb_datediff():
    pairs = [
        ("2025-05-01 10:00:00.900", "2025-05-01 10:00:01.100"),  # 0.2 s apart, crosses a second
        ("2025-05-01 10:00:00.100", "2025-05-01 10:00:00.900"),  # 0.8 s apart, crosses none
        ("2025-05-01 10:00:00.999999", "2025-05-01 10:01:59.000001"),
        ("1969-12-31 23:59:59.500", "1970-01-01 00:00:00.500"),  # floor, not truncation
    ]
    with duckdb.connect() as con:
        seconds = [
            con.execute(
                "select date_diff('second', ?::timestamp, ?::timestamp)", [start, end]
            ).fetchone()[0]
            for start, end in pairs
        ]
    assert seconds == [1, 0, 119, 1]
    for (start, end), expected in zip(pairs, seconds, strict=True):
        row = _chain(_event(start), _event(end))[-1]
        assert row["session_minutes"] == expected / 60.0


def test_session_start_is_recovered_across_several_steps():
    rows = _chain(
        _event("2025-05-01 10:00:00.900"),
        _event("2025-05-01 10:00:59.950"),
        _event("2025-05-01 10:07:01.001", kind="cart"),
    )
    assert [r["session_minutes"] for r in rows] == [0.0, 59 / 60.0, 421 / 60.0]
    assert [r["session_cart_count"] for r in rows] == [0, 0, 1]


def test_overlapping_sessions_continue_where_they_left_off():
    first = _chain(_event("2025-05-01 10:00:00"), _event("2025-05-01 10:01:00", kind="cart"))
    other_tab = next_session_row(first[-1], _event("2025-05-01 10:02:00", session="s2"))
    back = next_session_row(
        other_tab, _event("2025-05-01 10:03:30", product=7), session_last=first[-1]
    )
    assert other_tab["session_event_count"] == 1
    assert (back["session_event_count"], back["session_cart_count"]) == (3, 1)
    assert back["session_minutes"] == 3.5
    assert back["last_product_id_2"] == 1  # product lags still run over the user's events


def test_fold_follows_overlapping_sessions():
    events = pd.DataFrame(
        {
            "event_id": ["a", "b", "c", "d"],
            "user_id": 1,
            "product_id": [1, 2, 3, 4],
            "category_l2": "kites",
            "event_type": ["view", "cart", "view", "view"],
            "session_id": ["s1", "s1", "s2", "s1"],
            "event_at": pd.to_datetime(
                ["2025-05-01 10:00", "2025-05-01 10:01", "2025-05-01 10:02", "2025-05-01 10:03"]
            ),
        }
    )
    folded = fold_session_rows(events)
    assert folded["session_event_count"].tolist() == [1, 2, 1, 3]
    assert folded["session_minutes"].tolist() == [0.0, 1.0, 0.0, 3.0]


def test_fold_keeps_the_highest_event_id_per_instant_and_users_apart():
    events = pd.DataFrame(
        {
            "event_id": ["x1", "x9", "x5", "y1"],
            "user_id": [1, 1, 1, 2],
            "product_id": [1, 9, 5, 100],
            "category_l2": ["a", "b", "c", "d"],
            "event_type": ["view", "cart", "view", "view"],
            "session_id": ["s1", "s1", "s1", "t1"],
            "event_at": pd.to_datetime(["2025-05-01 10:00"] * 3 + ["2025-05-01 09:00"]),
        }
    )
    folded = fold_session_rows(events)
    assert folded["user_id"].tolist() == [1, 2]
    assert folded["last_product_id"].tolist() == [9, 100]
    assert folded["session_cart_count"].tolist() == [1, 0]
    assert folded["last_product_id_2"].isna().all()


def test_aware_timestamps_are_converted_to_utc():
    paris = timezone(timedelta(hours=2))
    event = SessionEvent(1, 1, None, "view", "s1", datetime(2025, 5, 1, 12, 0, tzinfo=paris))
    row = next_session_row(None, event)
    assert row["event_timestamp"] == datetime(2025, 5, 1, 10, 0, tzinfo=UTC)
    assert row["event_timestamp"].tzinfo == UTC


def test_a_previous_row_from_the_mart_is_accepted():
    mart_row = EXPECTED.iloc[1].to_dict()  # naive Timestamp, NaN-free ints, None categories
    row = next_session_row(mart_row, _event("2025-05-01 10:09:00.500", product=5))
    assert (row["last_product_id_2"], row["last_product_id_3"]) == (20, 10)
    assert row["last_product_id_4"] is None
    assert row["session_minutes"] == 9.0


def test_inconsistent_predecessors_are_rejected():
    base = next_session_row(None, _event("2025-05-01 10:00:00"))
    later = _event("2025-05-01 10:05:00", session="s2")
    with pytest.raises(ValueError, match="user 2"):
        next_session_row({**base, "user_id": 2}, later)
    with pytest.raises(ValueError, match="session 's1'"):
        next_session_row(base, later, session_last=base)
    with pytest.raises(ValueError, match="not after"):
        next_session_row(base, _event("2025-05-01 10:00:00"))


def test_unknown_event_types_are_rejected():
    with pytest.raises(ValueError, match="event_type"):
        _event("2025-05-01 10:00:00", kind="wishlist")


def test_mismatches_name_the_column_and_the_row():
    folded = fold_session_rows(EVENTS)
    for column, value in (("session_minutes", 2.6), ("last_product_id_3", 11)):
        perturbed = folded.copy()
        perturbed.loc[3, column] = value
        problems = session_row_mismatches(EXPECTED, perturbed)
        assert len(problems) == 1
        assert problems[0].startswith(f"{column}: 1 rows differ, first user_id=1 at 2025-05-02")


def test_mismatches_report_nulls_missing_rows_and_columns_but_not_tiny_float_noise():
    folded = fold_session_rows(EVENTS)
    nulled = folded.astype({"last_category_l2": object})
    nulled.loc[0, "last_category_l2"] = None
    assert session_row_mismatches(EXPECTED, nulled)[0].startswith("last_category_l2: 1 rows")
    assert session_row_mismatches(EXPECTED, folded.iloc[1:])[0].startswith("1 missing rows")
    assert "columns" in session_row_mismatches(EXPECTED, folded.drop(columns="session_id"))[0]
    noisy = folded.assign(session_minutes=folded["session_minutes"] + 1e-12)
    assert session_row_mismatches(EXPECTED, noisy) == []
