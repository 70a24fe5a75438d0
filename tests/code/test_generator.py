"""Hermetic tests of the synthetic data generator (tiny and small scale, a few seconds)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoprank.data import generator
from shoprank.data.generator import SCALES, GenerationSummary, ScaleSpec, generate

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2026, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
CONTRACT = {
    "products": [
        ("product_id", pa.int64()),
        ("title", pa.string()),
        ("description", pa.string()),
        ("category_l1", pa.string()),
        ("category_l2", pa.string()),
        ("brand", pa.string()),
        ("color", pa.string()),
        ("material", pa.string()),
        ("price", pa.float64()),
        ("in_stock", pa.bool_()),
        ("launched_at", TS),
    ],
    "users": [
        ("user_id", pa.int64()),
        ("signup_at", TS),
        ("age_band", pa.string()),
        ("region", pa.string()),
        ("device_preference", pa.string()),
    ],
    "sessions": [
        ("session_id", pa.string()),
        ("user_id", pa.int64()),
        ("started_at", TS),
        ("ended_at", TS),
        ("device", pa.string()),
        ("traffic_source", pa.string()),
    ],
    "events": [
        ("event_id", pa.string()),
        ("event_timestamp", TS),
        ("user_id", pa.int64()),
        ("product_id", pa.int64()),
        ("session_id", pa.string()),
        ("event_type", pa.string()),
        ("price", pa.float64()),
        ("quantity", pa.int32()),
        ("device", pa.string()),
    ],
}


def _run(out: Path, scale: str = "tiny", seed: int = 42) -> GenerationSummary:
    return generate(scale=scale, seed=seed, out_dir=out, start=START, end=END, progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    out = tmp_path_factory.mktemp("tiny")
    return out, _run(out)


@pytest.fixture(scope="module")
def frames(tiny: tuple[Path, GenerationSummary]) -> dict[str, pd.DataFrame]:
    out, _ = tiny
    tables = {name: pq.read_table(out / "raw" / f"{name}.parquet") for name in CONTRACT}
    data = {name: t.to_pandas() for name, t in tables.items()}
    data["faults"] = pq.read_table(out / "truth" / "event_faults.parquet").to_pandas()
    data["truth_users"] = pq.read_table(out / "truth" / "users.parquet").to_pandas()
    return data


@pytest.fixture(scope="module")
def clean(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Events minus injected corruptions/duplicates and bots, with catalog and user columns."""
    ev = frames["events"].assign(row=np.arange(len(frames["events"])))
    bad = frames["faults"].loc[frames["faults"].fault != "out_of_order", "row"]
    bots = frames["truth_users"].loc[frames["truth_users"].is_bot, "user_id"]
    ev = ev[~ev.row.isin(bad) & ~ev.user_id.isin(bots)]
    products = frames["products"][["product_id", "launched_at", "category_l2", "price"]]
    ev = ev.merge(products, on="product_id", suffixes=("", "_catalog"))
    return ev.merge(frames["users"][["user_id", "signup_at"]], on="user_id")


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_scales_contract() -> None:
    assert SCALES["seed"] == ScaleSpec(200_000, 50_000, 2_000_000)
    assert SCALES["small"] == ScaleSpec(10_000, 2_500, 100_000)
    assert SCALES["tiny"] == ScaleSpec(600, 300, 12_000)


def test_row_counts(tiny: tuple[Path, GenerationSummary]) -> None:
    out, summary = tiny
    spec = SCALES["tiny"]
    expected = {"products": spec.n_products, "users": spec.n_users, "events": spec.n_interactions}
    for name, n in expected.items():
        assert pq.ParquetFile(out / "raw" / f"{name}.parquet").metadata.num_rows == n
        assert summary.rows[name] == n
    n_sessions = pq.ParquetFile(out / "raw" / "sessions.parquet").metadata.num_rows
    assert summary.rows["sessions"] == n_sessions > 0
    assert sum(summary.event_types.values()) == spec.n_interactions


def test_schema_matches_contract(tiny: tuple[Path, GenerationSummary]) -> None:
    out, _ = tiny
    for name, columns in CONTRACT.items():
        schema = pq.read_schema(out / "raw" / f"{name}.parquet")
        assert [(f.name, f.type) for f in schema] == columns, name


def test_summary_to_dict_is_json(tiny: tuple[Path, GenerationSummary]) -> None:
    _, summary = tiny
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["n_bots"] >= 2
    assert data["cold_start_month"].startswith("2025-12-01")
    assert 0 < data["cold_start_user_share"] < 1
    assert 0 < data["cold_start_product_share"] < 1
    assert data["wall_seconds"] > 0


def test_ids_and_domains(frames: dict[str, pd.DataFrame]) -> None:
    products, users, sessions = frames["products"], frames["users"], frames["sessions"]
    assert products.product_id.tolist() == list(range(1, len(products) + 1))
    assert users.user_id.tolist() == list(range(1, len(users) + 1))
    assert sessions.session_id.is_unique
    assert (products.price > 0).all()
    assert 0.85 < products.in_stock.mean() < 0.98
    assert products.category_l2.nunique() >= 50
    assert products.groupby("category_l2").category_l1.nunique().max() == 1
    assert set(users.age_band) <= {"18-24", "25-34", "35-44", "45-54", "55-64", "65+"}
    assert users.region.nunique() == 8
    assert set(users.device_preference) == {"mobile", "desktop", "tablet"}
    assert set(sessions.traffic_source) <= {"direct", "search", "email", "social", "ads"}
    assert (sessions.ended_at >= sessions.started_at).all()
    events = frames["events"]
    assert set(events.event_type) == {"view", "cart", "purchase"}
    assert (events.loc[events.event_type == "view", "quantity"] == 1).all()
    assert events.quantity.between(1, 3).all()


def test_texts_carry_category_and_brand(frames: dict[str, pd.DataFrame]) -> None:
    products = frames["products"]
    assert all(b in t for b, t in zip(products.brand, products.title, strict=True))
    assert all(m in t for m, t in zip(products.material, products.title, strict=True))
    sentences = products.description.str.count(r"\.")
    assert sentences.between(2, 4).all()


def test_launch_and_signup_spread(frames: dict[str, pd.DataFrame]) -> None:
    start = pd.Timestamp(START)
    pre_launch = (frames["products"].launched_at < start).mean()
    pre_signup = (frames["users"].signup_at < start).mean()
    assert 0.6 < pre_launch < 0.8
    assert 0.5 < pre_signup < 0.7


def test_no_clean_event_before_signup_or_launch(clean: pd.DataFrame) -> None:
    assert (clean.event_timestamp >= clean.signup_at).all()
    assert (clean.event_timestamp >= clean.launched_at).all()
    assert (clean.event_timestamp < pd.Timestamp(END)).all()
    assert (clean.event_timestamp >= pd.Timestamp(START)).all()


def test_funnel_rates(clean: pd.DataFrame) -> None:
    counts = clean.event_type.value_counts()
    assert 0.07 < counts["cart"] / counts["view"] < 0.13
    assert 0.30 < counts["purchase"] / counts["cart"] < 0.60


def test_purchase_follows_cart_in_session(frames: dict[str, pd.DataFrame]) -> None:
    ev = frames["events"].assign(row=np.arange(len(frames["events"])))
    broken = {"unknown_product", "unknown_user", "future_timestamp", "duplicate"}
    ev = ev[~ev.row.isin(frames["faults"].loc[frames["faults"].fault.isin(broken), "row"])]
    carts = ev[ev.event_type == "cart"].groupby(["session_id", "product_id"]).event_timestamp
    buys = ev[ev.event_type == "purchase"].set_index(["session_id", "product_id"])
    joined = buys.join(carts.min().rename("cart_at"), how="left")
    assert joined.cart_at.notna().mean() > 0.98  # the rest lost their cart to a fault
    matched = joined.dropna(subset=["cart_at"])
    assert (matched.event_timestamp > matched.cart_at).all()


def test_session_events_ordered(frames: dict[str, pd.DataFrame], clean: pd.DataFrame) -> None:
    sessions = frames["sessions"].set_index("session_id")
    span = clean.groupby("session_id").event_timestamp.agg(["min", "max"])
    joined = span.join(sessions[["started_at", "ended_at"]])
    assert (joined["min"] >= joined.started_at).all()
    assert (joined["max"] <= joined.ended_at).all()


def test_price_seen_close_to_catalog(clean: pd.DataFrame) -> None:
    ratio = clean.price / clean.price_catalog
    assert ratio.between(0.69, 1.0).all()
    assert (ratio == 1.0).mean() > 0.6


def test_sessions_coherent(clean: pd.DataFrame) -> None:
    views = clean[clean.event_type == "view"].sort_values(["session_id", "event_timestamp"])
    same_session = views.session_id.values[1:] == views.session_id.values[:-1]
    same_leaf = views.category_l2.values[1:] == views.category_l2.values[:-1]
    assert same_leaf[same_session].mean() > 0.7
    sizes = views.groupby("session_id").size()
    assert 2.5 < sizes.mean() < 8  # tiny leaves hold ~5 products, so sessions run short


def test_event_ids_unique_except_duplicates(
    tiny: tuple[Path, GenerationSummary], frames: dict[str, pd.DataFrame]
) -> None:
    _, summary = tiny
    events = frames["events"]
    n_dup = summary.faults["duplicate"]
    assert n_dup == round(0.01 * len(events))
    assert events.event_id.nunique() == len(events) - n_dup
    assert events.duplicated().sum() == n_dup  # exact copies, every column equal


def test_fault_rates(tiny: tuple[Path, GenerationSummary], frames: dict[str, pd.DataFrame]) -> None:
    _, summary = tiny
    events, products, faults = frames["events"], frames["products"], frames["faults"]
    n = len(events)
    counts = faults.fault.value_counts()
    assert counts.to_dict() == {k: v for k, v in summary.faults.items() if v}
    assert not events.event_timestamp.is_monotonic_increasing
    events = events.drop(index=faults.loc[faults.fault == "duplicate", "row"])
    basket = (events.event_type != "view").sum()
    assert events.price.isna().sum() == summary.faults["missing_price"]
    assert 0.01 < summary.faults["missing_price"] / basket < 0.03
    for kind, rate in [("invalid_price", 0.005), ("unknown_product", 0.003)]:
        assert rate * 0.7 < summary.faults[kind] / n < rate * 1.3, kind
    assert (events.product_id > len(products)).sum() == summary.faults["unknown_product"]
    assert (events.user_id > len(frames["users"])).sum() == summary.faults["unknown_user"]
    future = events.event_timestamp >= pd.Timestamp(END)
    assert future.sum() == summary.faults["future_timestamp"] > 0
    assert summary.faults["out_of_order"] == round(0.03 * n)
    # invalid prices are <= 0 or more than 50x the catalog price
    known = events[events.product_id <= len(products)].merge(
        products[["product_id", "price"]], on="product_id", suffixes=("", "_catalog")
    )
    ratio = known.price / known.price_catalog
    invalid = (known.price <= 0) | (ratio > 50)
    assert invalid.sum() >= summary.faults["invalid_price"]
    assert not ratio[~invalid].gt(1.0 + 1e-9).any()


def test_bots_view_a_lot_and_never_buy(
    tiny: tuple[Path, GenerationSummary], frames: dict[str, pd.DataFrame]
) -> None:
    _, summary = tiny
    truth = frames["truth_users"]
    bots = truth.loc[truth.is_bot, "user_id"]
    assert len(bots) == summary.n_bots >= 2
    ev = frames["events"][frames["events"].user_id.isin(bots)]
    assert set(ev.event_type) == {"view"}
    daily = ev.groupby(["user_id", ev.event_timestamp.dt.date]).size()
    assert (daily.groupby("user_id").max() > 300).all()  # dbt's bot_max_daily_views rule


def test_deterministic_and_seed_sensitive(
    tiny: tuple[Path, GenerationSummary], tmp_path: Path
) -> None:
    out, _ = tiny
    again = _run(tmp_path / "again")
    assert again.to_dict() | {"wall_seconds": 0, "out_dir": ""} == (
        _run(tmp_path / "third").to_dict() | {"wall_seconds": 0, "out_dir": ""}
    )
    assert _digest(tmp_path / "again") == _digest(out)
    _run(tmp_path / "other", seed=7)
    other, base = _digest(tmp_path / "other"), _digest(out)
    assert other.keys() == base.keys()
    assert other["raw/events.parquet"] != base["raw/events.parquet"]
    assert other["raw/products.parquet"] != base["raw/products.parquet"]


def test_replaces_output_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(tmp_path, seed=1)
    before = _digest(tmp_path)

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(generator, "_events_table", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        _run(tmp_path, seed=2)
    assert _digest(tmp_path) == before
    monkeypatch.undo()
    _run(tmp_path, seed=2)
    after = _digest(tmp_path)
    assert after.keys() == before.keys()
    assert after["raw/events.parquet"] != before["raw/events.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "truth"]


def test_truth_files(tiny: tuple[Path, GenerationSummary]) -> None:
    out, _ = tiny
    meta = json.loads((out / "truth" / "meta.json").read_text())
    assert meta["fault_rates"]["duplicate"] == 0.01
    assert meta["spec"] == {"n_users": 600, "n_products": 300, "n_interactions": 12_000}
    assert len(meta["leaf_names"]) == len(meta["season"]) >= 50
    users = pq.read_table(out / "truth" / "users.parquet")
    products = pq.read_table(out / "truth" / "products.parquet")
    assert users.num_rows == 600 and products.num_rows == 300
    assert pa.types.is_fixed_size_list(users.schema.field("taste").type)
    assert pa.types.is_fixed_size_list(products.schema.field("latent").type)


def test_seasonality_and_calendar(tmp_path: Path) -> None:
    _run(tmp_path, scale="small")
    events = pq.read_table(tmp_path / "raw" / "events.parquet").to_pandas()
    products = pq.read_table(tmp_path / "raw" / "products.parquet").to_pandas()
    ev = events.merge(products[["product_id", "category_l1", "category_l2"]], on="product_id")
    ev = ev[ev.event_timestamp < pd.Timestamp(END)]
    month = ev.event_timestamp.dt.month
    share = pd.crosstab(month, ev.category_l1, normalize="index")
    assert share.loc[[4, 5, 6], "Home & Garden"].mean() > 1.3 * share.loc[1, "Home & Garden"]
    assert share.loc[12, "Gifts"] > 1.5 * share.loc[6, "Gifts"]
    assert share.loc[1, "Heating & Cooling"] > share.loc[4, "Heating & Cooling"]
    volume = month.value_counts()
    assert volume[12] > 1.5 * volume[2]
    hours = ev.event_timestamp.dt.hour.value_counts()
    assert hours[20] > 4 * hours[4]
    weekday = ev.event_timestamp.dt.dayofweek.value_counts()
    assert weekday[[5, 6]].mean() > weekday[[0, 1, 2, 3]].mean()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": "huge"}, "scale"),
        ({"end": START}, "end"),
        ({"end": datetime(2024, 1, 1, tzinfo=UTC)}, "end"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"start": "2025-01-01"}, "start"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"scale": "tiny", "seed": 1, "out_dir": tmp_path}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        generate(**args)  # type: ignore[arg-type]
    assert not (tmp_path / "raw").exists()


def test_out_dir_must_be_a_directory(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match="out_dir"):
        generate(scale="tiny", out_dir=target)


def test_bad_scale_spec() -> None:
    with pytest.raises(ValueError, match="n_products"):
        ScaleSpec(n_users=100, n_products=10, n_interactions=5_000)


def test_last_month_start() -> None:
    assert generator.last_month_start(START, END) == datetime(2025, 12, 1, tzinfo=UTC)
    end = datetime(2025, 3, 31, tzinfo=UTC)
    assert generator.last_month_start(START, end) == datetime(2025, 2, 28, tzinfo=UTC)
    short = datetime(2024, 12, 20, tzinfo=UTC)
    assert generator.last_month_start(short, datetime(2025, 1, 5, tzinfo=UTC)) == short
