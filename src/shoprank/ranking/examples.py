"""Assemble ranking examples for one cutoff from the warehouse, the generators and Feast."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from shoprank.candidates.base import CandidateGenerator
from shoprank.candidates.data import Catalog, as_datetime64, load_catalog, load_log
from shoprank.features.training_set import join_features_by_entity
from shoprank.ranking.dataset import (
    Cutoff,
    attach_labels,
    build_queries,
    candidate_frame,
    entity_columns,
    label_frame,
    sample_negatives,
)
from shoprank.ranking.features import add_crosses
from shoprank.ranking.model import QUERY
from shoprank.settings import Settings

GeneratorFactory = Callable[[pd.DataFrame], dict[str, CandidateGenerator]]


@dataclass
class CutoffData:
    """Everything known at a cutoff: fitted generators, queries, candidates with features."""

    cutoff: Cutoff
    generators: dict[str, CandidateGenerator]
    labels: pd.DataFrame
    examples: pd.DataFrame
    # The randomly sampled query users when others were added to them (every cold-start user,
    # see :func:`examples_at`); None when every query user is in the sample.
    sampled: np.ndarray | None = None


def load_users(settings: Settings) -> pd.DataFrame:
    """User profiles indexed by user_id (segments for cold-start generators)."""
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        frame = con.execute(
            "select user_id, region, age_band, device_preference, signup_at from stg_users"
        ).df()
    return frame.set_index("user_id")


def sample_users(labels: pd.DataFrame, n_users: int | None, seed: int) -> np.ndarray:
    """Users with any labelled event in the window (optionally a random sample)."""
    users = np.sort(labels["user_id"].unique())
    if n_users is None or n_users >= len(users):
        return users
    return np.sort(np.random.default_rng(seed).choice(users, n_users, replace=False))


def examples_at(
    settings: Settings,
    cutoff: Cutoff,
    make_generators: GeneratorFactory,
    k: int = 100,
    n_users: int | None = None,
    seed: int = 0,
    catalog: Catalog | None = None,
    negatives_per_query: int | None = None,
    cold_since: datetime | None = None,
) -> CutoffData:
    """Fit generators before the cutoff and build labelled candidate rows with features.

    With ``negatives_per_query`` (training) the candidates are subsampled by
    :func:`sample_negatives` before Feast joins their features, which then touches a
    fraction of the rows; without it (validation, test) every candidate is kept. With
    ``cold_since`` every labelled user with no event before it is queried too, on top of the
    ``n_users`` sample (kept in ``sampled``): cold-start users are a small share of a random
    sample, and this measures all of them.
    """
    catalog = catalog or load_catalog(settings.warehouse_path)
    users = load_users(settings)
    history = load_log(settings.warehouse_path, settings.splits.data_start, cutoff.at)
    future = load_log(settings.warehouse_path, cutoff.at, _as_datetime(cutoff.end))
    labels = label_frame(future, cutoff)
    query_users = sample_users(labels, n_users, seed)
    sampled = None
    if cold_since is not None:
        before = history.event_at < as_datetime64(cold_since)
        cold = np.setdiff1d(labels["user_id"].unique(), history.user_id[before])
        sampled, query_users = query_users, np.union1d(query_users, cold)
    generators = make_generators(users)
    for generator in generators.values():
        generator.fit(history, catalog, cutoff.at)
    queries = build_queries(history, users, query_users, cutoff)
    allowed = catalog.launched_mask(_as_datetime(cutoff.end)) & in_stock_mask(catalog)
    candidates = candidate_frame(generators, queries, k, allowed)
    candidates = attach_labels(candidates, labels)
    candidates[QUERY] = query_ids(candidates["user_id"], cutoff)
    if negatives_per_query is not None:
        candidates = sample_negatives(candidates, negatives_per_query, seed=seed)
    rows = entity_columns(candidates, catalog, cutoff)
    rows = add_crosses(join_features_by_entity(settings, rows))
    return CutoffData(
        cutoff, generators, labels[labels["user_id"].isin(query_users)], rows, sampled
    )


def query_ids(user_ids: pd.Series | np.ndarray, cutoff: Cutoff) -> np.ndarray:
    """One id per (cutoff, user): queries of later cutoffs sort after earlier ones."""
    return np.asarray(user_ids, dtype=np.int64) + int(cutoff.at.timestamp()) * 10**7


def in_stock_mask(catalog: Catalog) -> np.ndarray:
    """Boolean mask over item columns: in stock now."""
    mask = np.zeros(catalog.n_items + 1, dtype=bool)
    stocked = catalog.frame["in_stock"].astype(bool).to_numpy()
    mask[catalog.frame.index[stocked]] = True
    return mask


def _as_datetime(moment: np.datetime64):
    from datetime import UTC

    return pd.Timestamp(moment).to_pydatetime().replace(tzinfo=UTC)
