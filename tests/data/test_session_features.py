"""The live session step, folded over the tiny shop's clean events, equals dbt's mart."""

import duckdb
import pandas as pd
import pytest

from shoprank.features import session
from shoprank.features.session import (
    EVENT_COLUMNS,
    fold_session_rows,
    session_row_mismatches,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clean_events(tiny_platform, tiny_settings) -> pd.DataFrame:
    columns = ", ".join(EVENT_COLUMNS)
    with duckdb.connect(str(tiny_settings.warehouse_path), read_only=True) as con:
        return con.execute(f"select {columns} from fct_events").df()


@pytest.fixture(scope="module")
def mart(tiny_platform, tiny_settings) -> pd.DataFrame:
    return pd.read_parquet(tiny_settings.marts_dir / "session_features.parquet")


@pytest.fixture(scope="module")
def folded(clean_events) -> pd.DataFrame:
    return fold_session_rows(clean_events)


def test_folded_events_equal_the_mart_row_for_row(folded, mart):
    assert len(mart) > 1000
    assert len(folded) == len(mart)
    assert session_row_mismatches(mart, folded) == []


def test_a_changed_value_is_reported(folded, mart):
    perturbed = folded.copy()
    perturbed.loc[perturbed.index[len(perturbed) // 2], "session_cart_count"] += 1
    problems = session_row_mismatches(mart, perturbed)
    assert len(problems) == 1
    assert problems[0].startswith("session_cart_count: 1 rows differ")


def test_elapsed_seconds_instead_of_datediff_would_be_caught(clean_events, mart, monkeypatch):
    # dbt-duckdb's datediff counts second boundaries; exact elapsed time is a different feature.
    monkeypatch.setattr(
        session, "_epoch_second", lambda t: (session._as_utc(t) - session._EPOCH).total_seconds()
    )
    problems = session_row_mismatches(mart, fold_session_rows(clean_events))
    assert [p.split(":")[0] for p in problems] == ["session_minutes"]


def test_forgetting_overlapping_sessions_would_be_caught(clean_events, mart, monkeypatch):
    # Some tiny users have two sessions open at once; dbt continues each one's counters.
    step = session.next_session_row
    monkeypatch.setattr(session, "next_session_row", lambda p, e, session_last=None: step(p, e))
    problems = session_row_mismatches(mart, fold_session_rows(clean_events))
    assert {p.split(":")[0] for p in problems} >= {"session_event_count", "session_minutes"}
