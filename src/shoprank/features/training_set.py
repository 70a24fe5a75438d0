"""Point-in-time-correct training sets.

A training example is (user, product, cutoff time, label): the cutoff is the moment a user
starts a session, the label grades what the user did with the product in the ``horizon_days``
after it (purchase 3 > cart 2 > view 1 > nothing 0), and negatives are products the user did
not touch, sampled from those launched before the cutoff. Features come from Feast's
``get_historical_features`` through the named feature service, so each row sees only feature
snapshots stamped at or before its cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd

from shoprank.settings import Settings, Splits

Split = Literal["train", "validation", "test"]
LABEL_GRADES = {"view": 1, "cart": 2, "purchase": 3}


@dataclass(frozen=True)
class ExampleSpec:
    """How to draw training examples."""

    split: Split = "train"
    n_rows: int = 100_000
    negatives_per_positive: int = 3
    horizon_days: int = 7
    seed: int = 0


def split_window(splits: Splits, split: Split) -> tuple[datetime, datetime]:
    """The [start, end) cutoff window of a split."""
    windows = {
        "train": (splits.data_start, splits.validation_start),
        "validation": (splits.validation_start, splits.test_start),
        "test": (splits.test_start, splits.data_end),
    }
    if split not in windows:
        raise ValueError(f"split must be one of {sorted(windows)}, got {split!r}")
    return windows[split]


def calendar_key(timestamps: pd.Series) -> pd.Series:
    """The ``day`` entity key (ISO date, UTC) for timestamps; serving uses the same function.

    Formatted once per distinct day: ranking rows repeat a few cutoffs millions of times.
    """
    days = pd.to_datetime(timestamps, utc=True).dt.floor("D")
    codes, uniques = pd.factorize(days)
    text = np.append(uniques.strftime("%Y-%m-%d").to_numpy(dtype=object), None)
    return pd.Series(text[codes], index=timestamps.index, dtype=object)


_POSITIVES_SQL = """
    with sessions as (
        -- The cutoff is one second before the session's first event, so every feature
        -- snapshot a row can see predates the events its label counts.
        select user_id, session_id, min(event_at) - interval 1 second as cutoff
        from fct_events
        where event_at >= $start and event_at < $end
        group by 1, 2
    ),
    sampled as (
        select * from sessions using sample reservoir({n_sessions} rows) repeatable ({seed})
    )
    select
        sampled.user_id,
        sampled.cutoff,
        events.product_id,
        max(case events.event_type when 'purchase' then 3 when 'cart' then 2 else 1 end) as label
    from sampled
    inner join fct_events as events
        on events.user_id = sampled.user_id
        and events.event_at > sampled.cutoff
        and events.event_at <= sampled.cutoff + to_days({horizon_days})
    group by 1, 2, 3
"""


def _positives(con: duckdb.DuckDBPyConnection, spec: ExampleSpec, window: tuple) -> pd.DataFrame:
    """Labelled (user, cutoff, product, label) rows for enough sampled session starts."""
    start, end = (w.replace(tzinfo=None) for w in window)
    rows_per_positive = 1 + spec.negatives_per_positive
    n_sessions = max(1, spec.n_rows // (4 * rows_per_positive))
    for _ in range(4):  # grow the sample until it yields n_rows examples
        query = _POSITIVES_SQL.format(
            n_sessions=n_sessions, seed=spec.seed, horizon_days=spec.horizon_days
        )
        positives = con.execute(query, {"start": start, "end": end}).df()
        expected = len(positives) * rows_per_positive
        if expected >= spec.n_rows or positives.empty:
            break
        n_sessions = int(n_sessions * spec.n_rows / max(expected, 1) * 1.15) + 1
    return positives


def _negatives(positives: pd.DataFrame, catalog: pd.DataFrame, spec: ExampleSpec) -> pd.DataFrame:
    """Unlabelled products for each (user, cutoff), launched before it and not touched after it."""
    rng = np.random.default_rng(spec.seed)
    groups = positives.groupby(["user_id", "cutoff"], sort=False).size().reset_index(name="n")
    n_draw = groups["n"].to_numpy() * spec.negatives_per_positive * 2  # oversample, then filter
    rows = pd.DataFrame(
        {
            "user_id": np.repeat(groups["user_id"].to_numpy(), n_draw),
            "cutoff": np.repeat(groups["cutoff"].to_numpy(), n_draw),
            "product_id": rng.choice(catalog["product_id"].to_numpy(), size=int(n_draw.sum())),
        }
    )
    launched = catalog.set_index("product_id")["launched_at"]
    rows = rows[launched.reindex(rows["product_id"]).to_numpy() <= rows["cutoff"].to_numpy()]
    touched = positives[["user_id", "cutoff", "product_id"]].assign(_touched=True)
    rows = rows.drop_duplicates().merge(touched, how="left", on=["user_id", "cutoff", "product_id"])
    rows = rows[rows["_touched"].isna()].drop(columns="_touched")
    keep = groups.set_index(["user_id", "cutoff"])["n"] * spec.negatives_per_positive
    rank = rows.groupby(["user_id", "cutoff"]).cumcount()
    limit = keep.reindex(pd.MultiIndex.from_frame(rows[["user_id", "cutoff"]])).to_numpy()
    return rows[rank.to_numpy() < limit].assign(label=0)


def build_examples(warehouse: Path, splits: Splits, spec: ExampleSpec) -> pd.DataFrame:
    """Draw (user_id, product_id, category_l1, brand, calendar_date, event_timestamp, label) rows.

    ``event_timestamp`` is the cutoff; Feast joins each feature view as of that instant.
    """
    window = split_window(splits, spec.split)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        positives = _positives(con, spec, window)
        catalog = con.execute(
            "select product_id, category_l1, brand, launched_at from stg_products"
        ).df()
    if positives.empty:
        raise ValueError(f"no sessions in the {spec.split} window {window}: is the data built?")
    examples = pd.concat([positives, _negatives(positives, catalog, spec)], ignore_index=True)
    examples = examples.merge(catalog[["product_id", "category_l1", "brand"]], on="product_id")
    examples["event_timestamp"] = pd.to_datetime(examples.pop("cutoff")).dt.tz_localize("UTC")
    examples["calendar_date"] = calendar_key(examples["event_timestamp"])
    examples = examples.sample(frac=1.0, random_state=spec.seed).head(spec.n_rows)
    examples = examples.sort_values(["event_timestamp", "user_id", "product_id"], kind="stable")
    return examples.reset_index(drop=True)[
        ["user_id", "product_id", "category_l1", "brand", "calendar_date", "event_timestamp"]
        + ["label"]
    ]


def join_features(settings: Settings, examples: pd.DataFrame) -> pd.DataFrame:
    """Join the feature service's features onto ``examples`` point-in-time (Feast, offline)."""
    from shoprank.features.store import open_store

    store = open_store(settings)
    service = store.get_feature_service(settings.feature_service)
    job = store.get_historical_features(
        entity_df=examples, features=service, full_feature_names=True
    )
    return job.to_df()


def join_features_by_entity(
    settings: Settings, rows: pd.DataFrame, daily_keys: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Point-in-time join of the settings' feature service onto ``rows``.

    See :meth:`shoprank.features.sources.HistoricalFeatures.join`.
    """
    from shoprank.features.sources import HistoricalFeatures

    return HistoricalFeatures.open(settings).join(rows, daily_keys)
