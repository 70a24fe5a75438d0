"""Training sets are point-in-time correct: no row sees a feature value from after its cutoff."""

import duckdb
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def training(tiny_platform, tiny_settings) -> pd.DataFrame:
    return pd.read_parquet(tiny_settings.data_path / "training" / "train.parquet")


@pytest.fixture(scope="module")
def user_snapshots(tiny_settings) -> pd.DataFrame:
    return pd.read_parquet(tiny_settings.marts_dir / "user_features.parquet")


def _as_of(rows: pd.DataFrame, snapshots: pd.DataFrame, column: str) -> pd.Series:
    """The value of `column` in the latest snapshot at or before each row's cutoff."""
    left = rows[["user_id", "event_timestamp"]].reset_index()
    left["event_timestamp"] = pd.to_datetime(left["event_timestamp"], utc=True)
    right = snapshots[["user_id", "event_timestamp", column]].copy()
    right["event_timestamp"] = pd.to_datetime(right["event_timestamp"]).dt.tz_localize("UTC")
    merged = pd.merge_asof(
        left.sort_values("event_timestamp"),
        right.sort_values("event_timestamp"),
        on="event_timestamp",
        by="user_id",
        direction="backward",
    )
    return merged.set_index("index")[column].reindex(rows.index)


def test_no_feature_value_from_after_the_cutoff(training, user_snapshots):
    """Each row carries the as-of value; a naive latest-value join would leak later ones."""
    column = "events_total"
    served = training[f"user_features__{column}"]
    as_of = _as_of(training, user_snapshots, column)
    pd.testing.assert_series_equal(
        served.astype("float64"), as_of.astype("float64"), check_names=False
    )
    latest = user_snapshots.sort_values("event_timestamp").groupby("user_id")[column].last()
    naive = training["user_id"].map(latest)
    leaked = (naive.astype("float64") != as_of.astype("float64")).mean()
    # The check is meaningful only if later values differ for many rows.
    assert leaked > 0.3, f"only {leaked:.0%} of rows would differ under a naive join"


def test_a_value_that_changes_after_the_cutoff_is_not_seen(training, user_snapshots):
    snaps = user_snapshots.copy()
    snaps["event_timestamp"] = pd.to_datetime(snaps["event_timestamp"]).dt.tz_localize("UTC")
    checked = 0
    for row in training.drop_duplicates(["user_id", "event_timestamp"]).itertuples():
        user = snaps[snaps["user_id"] == row.user_id]
        after = user[user["event_timestamp"] > row.event_timestamp]
        before = user[user["event_timestamp"] <= row.event_timestamp]
        if after.empty or before.empty:
            continue
        later_value = after.sort_values("event_timestamp")["events_total"].iloc[-1]
        served = row.user_features__events_total
        expected = before.sort_values("event_timestamp")["events_total"].iloc[-1]
        if later_value != expected:
            assert served == expected and served != later_value
            checked += 1
        if checked >= 50:
            break
    assert checked >= 20


def test_labels_grade_what_the_user_did_after_the_cutoff(training, tiny_settings):
    assert set(training["label"].unique()) <= {0, 1, 2, 3}
    assert (training["label"] > 0).mean() > 0.1
    with duckdb.connect(str(tiny_settings.warehouse_path), read_only=True) as con:
        events = con.execute(
            "select user_id, product_id, event_type, event_at from fct_events"
        ).df()
    events["event_at"] = pd.to_datetime(events["event_at"]).dt.tz_localize("UTC")
    grade = {"view": 1, "cart": 2, "purchase": 3}
    for row in training.sample(200, random_state=0).itertuples():
        window = events[
            (events["user_id"] == row.user_id)
            & (events["product_id"] == row.product_id)
            & (events["event_at"] > row.event_timestamp)
            & (events["event_at"] <= row.event_timestamp + pd.Timedelta(days=7))
        ]
        expected = max((grade[t] for t in window["event_type"]), default=0)
        assert row.label == expected


def test_cold_rows_say_no_history_instead_of_zero(training):
    cold = training[training["user_features__has_history"] == 0]
    assert len(cold) > 0
    assert cold["user_features__avg_order_value"].isna().all()
    assert cold["user_features__top_category_l1_90d"].isna().all()


def test_training_set_has_the_feature_service_columns(training):
    for view in (
        "user_features",
        "product_features",
        "user_category_affinity",
        "user_brand_affinity",
        "calendar_features",
        "session_features",
    ):
        assert any(c.startswith(f"{view}__") for c in training.columns), view
    assert training["calendar_features__month"].notna().all()


def test_brand_affinity_snapshots_agree_with_the_users_top_brand(
    tiny_platform, tiny_settings, user_snapshots
):
    brands = pd.read_parquet(tiny_settings.marts_dir / "user_brand_affinity.parquet")
    top = brands[brands["brand_rank_90d"] == 1]
    assert top.duplicated(["user_id", "event_timestamp"]).sum() == 0
    both = top.merge(user_snapshots, on=["user_id", "event_timestamp"])
    assert len(both) == len(top)  # every active-day snapshot of one is a snapshot of the other
    assert (both["brand"] == both["top_brand_90d"]).all()
    assert np.allclose(both["brand_share_90d"], both["top_brand_share_90d"])


def test_brand_affinity_is_joined_point_in_time_on_the_candidate_brand(tiny_settings, training):
    # Each row sees the latest snapshot of (its user, its product's brand) at or before its
    # cutoff, within the view's 90-day TTL; brands the user never touched stay missing.
    brands = pd.read_parquet(tiny_settings.marts_dir / "user_brand_affinity.parquet")
    brands = brands.assign(snapshot=pd.to_datetime(brands["event_timestamp"], utc=True))
    rows = training.assign(at=pd.to_datetime(training["event_timestamp"], utc=True))
    expected = pd.merge_asof(
        rows.sort_values("at"),
        brands.sort_values("snapshot")[["user_id", "brand", "snapshot", "brand_score_90d"]],
        left_on="at",
        right_on="snapshot",
        by=["user_id", "brand"],
        tolerance=pd.Timedelta(days=90),
    ).set_index(["user_id", "product_id", "at"])
    got = rows.set_index(["user_id", "product_id", "at"])["user_brand_affinity__brand_score_90d"]
    want = expected["brand_score_90d"].reindex(got.index)
    assert got.notna().sum() > 20 and got.isna().sum() > 20
    pd.testing.assert_series_equal(got, want, check_names=False, check_dtype=False)


def test_joining_per_entity_equals_joining_per_row(tiny_platform, tiny_settings, training):
    from shoprank.features.training_set import join_features_by_entity

    rows = training[
        ["user_id", "product_id", "category_l1", "brand", "calendar_date", "event_timestamp"]
        + ["label"]
    ].head(500)
    grouped = join_features_by_entity(tiny_settings, rows)
    expected = training.head(500)
    assert list(grouped["label"]) == list(expected["label"])
    for column in expected.columns:
        pd.testing.assert_series_equal(
            grouped[column].reset_index(drop=True),
            expected[column].reset_index(drop=True),
            check_dtype=False,
            obj=column,
        )


def test_daily_keys_look_products_up_as_of_the_day(tiny_platform, tiny_settings, training):
    from shoprank.features.training_set import join_features_by_entity

    rows = training[
        ["user_id", "product_id", "category_l1", "brand", "calendar_date", "event_timestamp"]
        + ["label"]
    ].head(300)
    midday = rows.assign(event_timestamp=rows["event_timestamp"] + pd.Timedelta(hours=13))
    daily = join_features_by_entity(tiny_settings, midday, daily_keys=("product_id",))
    day_start = midday.assign(event_timestamp=midday["event_timestamp"].dt.floor("D"))
    at_midnight = join_features_by_entity(tiny_settings, day_start)
    exact = join_features_by_entity(tiny_settings, midday)
    product = [c for c in daily.columns if c.startswith("product_features__")]
    user = [c for c in daily.columns if c.startswith("user_features__")]
    assert product and user
    # product features as of the day's start; every other view at the row's own moment
    pd.testing.assert_frame_equal(daily[product], at_midnight[product])
    pd.testing.assert_frame_equal(daily[user], exact[user])


def test_features_joined_in_query_batches_equal_one_join(tiny_platform, tiny_settings, training):
    # Candidates get their features a batch of queries at a time (memory); the batches
    # must add up to exactly what one join gives.
    from shoprank.features.sources import HistoricalFeatures
    from shoprank.ranking.examples import with_features

    rows = training[
        ["user_id", "product_id", "category_l1", "brand", "calendar_date", "event_timestamp"]
        + ["label"]
    ].head(600)
    rows = rows.assign(query_id=rows.groupby(["user_id", "event_timestamp"]).ngroup())
    assert rows["query_id"].nunique() > 20
    source = HistoricalFeatures.open(tiny_settings)
    whole = with_features(source, rows, batch_rows=10**9)
    batched = with_features(source, rows, batch_rows=50)
    key = ["query_id", "product_id"]
    whole = whole.sort_values(key, ignore_index=True)
    batched = batched.sort_values(key, ignore_index=True)
    assert list(batched.columns) == list(whole.columns)
    assert "in_top_brand" in whole.columns  # the crosses are added to every batch
    pd.testing.assert_frame_equal(batched, whole, check_dtype=False)
