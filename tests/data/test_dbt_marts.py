"""Contracts on what dbt builds from a tiny generated shop."""

import duckdb
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def _query(settings, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql).df()


def test_every_raw_event_is_kept_or_quarantined(tiny_platform):
    counts = tiny_platform.row_counts
    assert counts["raw.events"] == counts["fct_events"] + counts["quarantine_events"]
    assert sum(tiny_platform.quarantine.values()) == counts["quarantine_events"]


def test_generated_faults_land_in_quarantine_with_their_reason(tiny_platform):
    reasons = set(tiny_platform.quarantine)
    expected = {"duplicate_event", "unknown_product", "missing_price", "invalid_price", "bot_user"}
    assert expected <= reasons, f"missing reasons: {expected - reasons}"


def test_bots_are_removed_from_clean_events(tiny_platform, tiny_settings):
    bots = _query(tiny_settings, "select user_id from int_users__bots")
    assert len(bots) >= 1
    clean = _query(
        tiny_settings,
        "select count(*) as n from fct_events"
        " where user_id in (select user_id from int_users__bots)",
    )
    assert clean["n"].iloc[0] == 0


def test_feature_marts_are_parquet_with_rows(tiny_platform, tiny_settings):
    for mart in (
        "user_features",
        "product_features",
        "user_category_affinity",
        "calendar_features",
        "session_features",
    ):
        assert tiny_platform.row_counts[f"marts.{mart}"] > 0
        assert (tiny_settings.marts_dir / f"{mart}.parquet").is_file()
    assert (tiny_settings.marts_dir / "_build.json").is_file()


def test_calendar_knows_christmas_and_weekdays(tiny_platform, tiny_settings):
    day = pd.read_parquet(tiny_settings.marts_dir / "calendar_features.parquet").set_index(
        "calendar_date"
    )
    christmas = day.loc["2025-12-25"]
    assert christmas["days_to_christmas"] == 0
    assert christmas["day_of_week"] == 3  # a Thursday
    assert day.loc["2025-11-27", "days_to_black_friday"] == 1
    assert day.loc["2025-06-14", "is_weekend"] == 1
    assert day.loc["2025-07-14", "season"] == "summer"


def test_users_who_sign_up_late_have_a_profile_snapshot_without_history(
    tiny_platform, tiny_settings
):
    users = pd.read_parquet(tiny_settings.raw_dir / "users.parquet")
    late = users[users["signup_at"] >= pd.Timestamp("2025-06-01", tz="UTC")]
    assert len(late) > 0
    feats = pd.read_parquet(tiny_settings.marts_dir / "user_features.parquet")
    first = feats.sort_values("event_timestamp").groupby("user_id").first()
    joined = first.loc[first.index.intersection(late["user_id"])]
    assert (joined["has_history"] == 0).all()
    assert joined["age_band"].notna().all()


def test_snapshots_never_lie_in_the_future_of_their_data(tiny_platform, tiny_settings):
    daily = _query(
        tiny_settings, "select user_id, max(event_at) as last_event from fct_events group by 1"
    )
    feats = pd.read_parquet(tiny_settings.marts_dir / "user_features.parquet")
    latest = feats.groupby("user_id")["event_timestamp"].max().rename("snap").reset_index()
    merged = daily.merge(latest, on="user_id")
    # The snapshot covering a user's last event is stamped after that event (the next midnight).
    assert (merged["snap"] > merged["last_event"]).all()
