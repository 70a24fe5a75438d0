"""Tests of the ground-truth oracle against a tiny generated data set."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from shoprank.data.generator import generate
from shoprank.data.oracle import (
    ExposureOracle,
    Oracle,
    black_friday,
    holiday_level,
    month_index,
    to_us,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("oracle")
    generate(
        scale="tiny",
        seed=3,
        out_dir=out,
        start=datetime(2025, 1, 1, tzinfo=UTC),
        end=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return out


@pytest.fixture(scope="module")
def oracle(data_dir: Path) -> Oracle:
    return Oracle.load(data_dir / "truth")


@pytest.fixture(scope="module")
def events(data_dir: Path, oracle: Oracle) -> pd.DataFrame:
    ev = pq.read_table(data_dir / "raw" / "events.parquet").to_pandas()
    ev = ev[(ev.user_id <= oracle.n_users) & (ev.product_id <= oracle.n_products)]
    ev = ev[ev.event_timestamp < pd.Timestamp("2026-01-01", tz="UTC")]
    return ev.assign(t=ev.event_timestamp.dt.tz_convert(None).values.astype("datetime64[us]"))


@pytest.fixture(scope="module")
def products(data_dir: Path) -> pd.DataFrame:
    return pq.read_table(data_dir / "raw" / "products.parquet").to_pandas()


def _human(oracle: Oracle) -> int:
    return int(np.flatnonzero(~oracle.users.is_bot)[0] + 1)


def test_zero_before_launch(oracle: Oracle, products: pd.DataFrame) -> None:
    new = products[products.launched_at > pd.Timestamp("2025-03-01", tz="UTC")]
    assert len(new) > 0
    launch = new.launched_at.dt.tz_convert(None).values.astype("datetime64[us]")
    user = np.full(len(new), _human(oracle))
    before = oracle.propensity(user, new.product_id.values, launch - np.timedelta64(1, "s"))
    after = oracle.propensity(user, new.product_id.values, launch + np.timedelta64(1, "D"))
    assert (before == 0).all()
    assert (after > 0).all()


def test_bought_products_score_higher_than_random(oracle: Oracle, events: pd.DataFrame) -> None:
    bought = events[events.event_type == "purchase"]
    assert len(bought) > 100
    p_bought = oracle.propensity(bought.user_id.values, bought.product_id.values, bought.t.values)
    rng = np.random.default_rng(0)
    random_ids = rng.integers(1, oracle.n_products + 1, len(bought))
    p_random = oracle.propensity(bought.user_id.values, random_ids, bought.t.values)
    assert p_bought.mean() > 2.5 * p_random.mean()
    assert (p_bought > p_random).mean() > 0.75


def test_matches_generator_funnel(oracle: Oracle, events: pd.DataFrame, data_dir: Path) -> None:
    meta = json.loads((data_dir / "truth" / "meta.json").read_text())
    views = events[(events.event_type == "view") & ~oracle.users.is_bot[events.user_id - 1]]
    p = oracle.propensity(views.user_id.values, views.product_id.values, views.t.values)
    expected = meta["config"]["cart_rate"] * meta["config"]["buy_rate"]
    assert p.mean() == pytest.approx(expected, rel=0.25)
    assert set(meta["funnel"]) >= {"cart_intercept", "buy_intercept", "affinity"}


def test_bots_never_buy(oracle: Oracle) -> None:
    bots = np.flatnonzero(oracle.users.is_bot) + 1
    assert bots.size >= 2
    p = oracle.propensity(bots[:, None], np.arange(1, oracle.n_products + 1)[None, :], "2025-06-01")
    assert p.shape == (bots.size, oracle.n_products)
    assert (p == 0).all()


def test_deterministic(oracle: Oracle, data_dir: Path, events: pd.DataFrame) -> None:
    again = Oracle.load(data_dir / "truth")
    args = (events.user_id.values, events.product_id.values, events.t.values)
    first = oracle.propensity(*args)
    assert np.array_equal(first, again.propensity(*args))
    assert np.array_equal(first, oracle.propensity(*args))
    assert ((first >= 0) & (first <= 1)).all()


def test_top_k(oracle: Oracle, products: pd.DataFrame) -> None:
    user = _human(oracle)
    when = np.datetime64("2025-06-15T20:00")
    top = oracle.top_k(user, when, k=10)
    assert top.size == 10 and np.unique(top).size == 10
    scores = oracle.propensity(np.full(top.size, user), top, when)
    assert (np.diff(scores) <= 0).all()
    everything = oracle.propensity(np.full(oracle.n_products, user), np.arange(1, 301), when)
    assert scores[0] == everything.max()
    aware = oracle.top_k(user, datetime(2025, 6, 15, 20, tzinfo=UTC), k=10)
    assert np.array_equal(top, aware)
    subset = products.product_id.values[:20]
    ranked = oracle.top_k(user, when, k=50, product_ids=subset)
    assert set(ranked) <= set(subset)
    unlaunched = products.launched_at > pd.Timestamp(when, tz="UTC")
    assert not set(ranked) & set(products.product_id[unlaunched])


def test_seasonal_products_peak_in_season(oracle: Oracle, data_dir: Path) -> None:
    meta = json.loads((data_dir / "truth" / "meta.json").read_text())
    leaf = meta["leaf_names"].index("Gift Sets")
    gifts = np.flatnonzero(oracle.products.leaf == leaf) + 1
    user = _human(oracle)
    december = oracle.propensity(user, gifts, np.datetime64("2026-12-10T12:00"))
    june = oracle.propensity(user, gifts, np.datetime64("2026-06-10T12:00"))
    assert (december > june).all()


def test_rejects_bad_input(oracle: Oracle, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="user_ids"):
        oracle.propensity(np.array([0]), np.array([1]), np.datetime64("2025-06-01"))
    with pytest.raises(ValueError, match="product_ids"):
        oracle.propensity(np.array([1]), np.array([10**6]), np.datetime64("2025-06-01"))
    with pytest.raises(ValueError, match="times"):
        oracle.propensity(np.array([1]), np.array([1]), np.array([1.5]))
    with pytest.raises(ValueError, match="k"):
        oracle.top_k(1, np.datetime64("2025-06-01"), k=0)
    with pytest.raises(ValueError, match="truth_dir"):
        Oracle.load(tmp_path)


def test_calendar_helpers() -> None:
    years = np.array([2024, 2025, 2026])
    days = black_friday(years).astype("datetime64[D]")
    assert [str(d) for d in days] == ["2024-11-29", "2025-11-28", "2026-11-27"]
    t = to_us(np.array(["2025-11-28T10:00", "2025-12-10", "2025-12-25", "2025-07-01"], "M8[us]"))
    assert holiday_level(t).tolist() == [1.0, 0.5, 0.0, 0.0]
    assert month_index(t).tolist() == [10, 11, 11, 6]


def test_expected_gain_ranks_what_users_view_this_month(data_dir: Path, events: pd.DataFrame):
    """The exposure oracle puts products a user views in December far above the rest."""
    oracle = ExposureOracle.load(data_dir / "truth")
    december = events[events.t >= np.datetime64("2025-12-01")]
    users = np.sort(december.user_id.unique())[:200]
    gain = oracle.expected_gain(users, np.datetime64("2025-12-01"))
    n_products = oracle.oracle.n_products
    assert gain.shape == (len(users), n_products + 1)
    assert (gain[:, 0] == 0).all() and (gain >= 0).all()
    # Percentile of each viewed product among the user's gains (0.5 would be chance)
    rows = pd.Series(np.arange(len(users)), index=users)
    seen = december[december.user_id.isin(users)].drop_duplicates(["user_id", "product_id"])
    r = rows.reindex(seen.user_id).to_numpy()
    mine = gain[r, seen.product_id.to_numpy()]
    percentile = (gain[r, 1:] < mine[:, None]).mean(axis=1)
    assert np.median(percentile) > 0.95


def test_expected_gain_zero_before_launch_and_for_bots(oracle: Oracle, data_dir: Path):
    exposure = ExposureOracle.load(data_dir / "truth")
    when = np.datetime64("2025-06-01")
    unlaunched = oracle.products.launched_us > to_us(when)
    assert unlaunched.any()
    gain = exposure.expected_gain(np.array([_human(oracle)]), when)
    assert (gain[0, 1:][unlaunched] == 0).all()
    bots = np.flatnonzero(oracle.users.is_bot) + 1
    assert bots.size > 0
    assert (exposure.expected_gain(bots[:1], when) == 0).all()
