"""Assemble ranking examples for one cutoff from the warehouse, the generators and Feast."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from shoprank.candidates.base import CandidateGenerator, GeneratorFactory, fit_generators
from shoprank.candidates.data import (
    Catalog,
    InteractionLog,
    Queries,
    as_datetime64,
    live_events,
    load_catalog,
    load_log,
    recent_items,
)
from shoprank.features.sources import FeatureSource, HistoricalFeatures
from shoprank.features.training_set import calendar_key
from shoprank.ranking.dataset import (
    CandidateCounts,
    Cutoff,
    attach_labels,
    build_queries,
    candidate_frame,
    entity_columns,
    graded_labels,
    label_frame,
    sample_negatives,
)
from shoprank.ranking.features import add_crosses
from shoprank.ranking.model import QUERY
from shoprank.settings import Settings


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


@dataclass(frozen=True)
class FittedCutoff:
    """A cutoff's generators fit on the log before it, with what recommending there needs.

    Attributes:
        users: user profiles indexed by user_id.
        history: the log before the cutoff.
        labels: graded labels in the cutoff's window (:func:`label_frame`).
        generators: the fitted generators, by name.
        allowed: products that may be recommended (launched by the window's end, in stock).
    """

    users: pd.DataFrame
    history: InteractionLog
    labels: pd.DataFrame
    generators: dict[str, CandidateGenerator]
    allowed: np.ndarray


def fit_at(
    settings: Settings,
    cutoff: Cutoff,
    make_generators: GeneratorFactory,
    catalog: Catalog,
    log: Callable[[str], None] | None = None,
) -> FittedCutoff:
    """Load the log around ``cutoff``, label its window and fit fresh generators before it.

    The fitting itself is :func:`~shoprank.candidates.base.fit_generators`, which training
    for the service calls too; this adds the I/O and the labels.
    """
    users = load_users(settings)
    history = load_log(settings.warehouse_path, settings.splits.data_start, cutoff.at)
    future = load_log(settings.warehouse_path, cutoff.at, _as_datetime(cutoff.end))
    generators = fit_generators(make_generators, users, history, catalog, cutoff.at, log)
    allowed = catalog.launched_mask(_as_datetime(cutoff.end)) & in_stock_mask(catalog)
    return FittedCutoff(users, history, label_frame(future, cutoff), generators, allowed)


def examples_at(
    settings: Settings,
    cutoff: Cutoff,
    make_generators: GeneratorFactory,
    k: CandidateCounts = 100,
    n_users: int | None = None,
    seed: int = 0,
    catalog: Catalog | None = None,
    negatives_per_query: int | None = None,
    cold_since: datetime | None = None,
    user_batch: int | None = None,
    each_batch: Callable[[CutoffData], CutoffData] | None = None,
) -> CutoffData:
    """Fit generators before the cutoff and build labelled candidate rows with features.

    With ``negatives_per_query`` (training) the candidates are subsampled by
    :func:`sample_negatives` before Feast joins their features, which then touches a
    fraction of the rows; without it (validation, test) every candidate is kept. With
    ``cold_since`` every labelled user with no event before it is queried too, on top of the
    ``n_users`` sample (kept in ``sampled``): cold-start users are a small share of a random
    sample, and this measures all of them.

    With ``user_batch``, the generators are fit once and the candidates are built for that
    many query users at a time, in ascending user order; each batch (a :class:`CutoffData`
    with that batch's labels and candidates) goes through ``each_batch`` as soon as it
    exists, and the result holds every query user's labels and what ``each_batch`` kept of
    each batch's examples. That bounds memory by a batch, not by the cutoff's users.
    """
    catalog = catalog or load_catalog(settings.warehouse_path)
    fitted = fit_at(settings, cutoff, make_generators, catalog)
    source = HistoricalFeatures.open(settings)
    history, labels, generators = fitted.history, fitted.labels, fitted.generators
    query_users = sample_users(labels, n_users, seed)
    sampled = None
    if cold_since is not None:
        before = history.event_at < as_datetime64(cold_since)
        cold = np.setdiff1d(labels["user_id"].unique(), history.user_id[before])
        sampled, query_users = query_users, np.union1d(query_users, cold)

    def rows_for(batch_users: np.ndarray) -> pd.DataFrame:
        queries = build_queries(history, fitted.users, batch_users, cutoff)
        candidates = candidate_frame(generators, queries, k, fitted.allowed)
        candidates = attach_labels(candidates, labels)
        candidates[QUERY] = query_ids(candidates["user_id"], cutoff)
        if negatives_per_query is not None:
            candidates = sample_negatives(candidates, negatives_per_query, seed=seed)
        return with_features(source, entity_columns(candidates, catalog, cutoff))

    keep = each_batch or (lambda batch: batch)
    mine = labels[labels["user_id"].isin(query_users)]
    ordered = np.sort(query_users)
    size = user_batch or max(len(ordered), 1)
    kept = []
    for start in range(0, max(len(ordered), 1), size):
        batch_users = ordered[start : start + size]
        batch_labels = mine if user_batch is None else mine[mine["user_id"].isin(batch_users)]
        batch = CutoffData(cutoff, generators, batch_labels, rows_for(batch_users), sampled)
        kept.append(keep(batch).examples)
    examples = kept[0] if len(kept) == 1 else pd.concat(kept, ignore_index=True)
    return CutoffData(cutoff, generators, mine, examples, sampled)


#: Candidate rows that get their Feast features in one join (see :func:`with_features`).
FEATURE_BATCH_ROWS = 1_000_000


def with_features(
    source: FeatureSource,
    rows: pd.DataFrame,
    daily_keys: tuple[str, ...] = (),
    batch_rows: int = FEATURE_BATCH_ROWS,
) -> pd.DataFrame:
    """Features from ``source`` (offline or online) and crosses for candidate ``rows``.

    The one way ranking rows get their features, in training, evaluation and serving.

    Joined whole queries at a time, about ``batch_rows`` rows per join: the join and the
    crosses each copy the frame they work on, so with ~150 columns the peak is a few copies
    of one batch on top of the result, not of everything. A test week of every user at seed
    scale (11,170 queries, 5.5 million candidates) took the evaluation to 21.5 GB in one
    piece. Training cutoffs (negatives sampled first) fit in one join.
    """
    sizes = rows.groupby(QUERY, sort=False).size()
    batch = (sizes.cumsum().to_numpy() - 1) // max(batch_rows, 1)
    if batch[-1] == 0:
        return add_crosses(source.join(rows, daily_keys))
    of_row = pd.Series(batch, index=sizes.index).reindex(rows[QUERY]).to_numpy()
    parts = [add_crosses(source.join(rows[of_row == b], daily_keys)) for b in np.unique(batch)]
    return pd.concat(parts, ignore_index=True)


#: Views looked up as of the start of the query's day for in-session queries (and by the
#: service, whose item tables are the last daily materialization).
SESSION_DAILY_KEYS = ("product_id",)


@dataclass(frozen=True)
class SessionQueries:
    """Queries made inside sessions, after the generators' last fit (see :func:`session_queries`).

    Attributes:
        queries: one per user, with the events since the cutoff as live events.
        moments: each query's moment (naive UTC), indexed by user_id like ``queries``.
        touched: (user_id, product_id) of the live events: never recommended nor relevant.
        labels: graded relevance after each moment (user_id, product_id, label, revenue).
        allowed: products that may be recommended (launched by the last window's end, in stock).
    """

    queries: Queries
    moments: pd.Series
    touched: pd.DataFrame
    labels: pd.DataFrame
    allowed: np.ndarray


def session_queries(
    settings: Settings,
    cutoff: Cutoff,
    points: pd.DataFrame,
    events: InteractionLog,
    catalog: Catalog,
    until: np.datetime64 | None = None,
) -> SessionQueries:
    """Queries inside sessions: how the service meets a visitor between two refits.

    The models were fit at the cutoff; the request carries what the user did since (live
    events). ``points`` has ``user_id`` and ``at`` (naive UTC, at or after the cutoff), the
    moment of the query, one row per user. The user's events from the cutoff up to and
    including ``at`` are live; relevance is what they did after ``at``, within
    ``cutoff.horizon_days`` (and before ``until``, when given: training labels must not run
    into the validation period), on products they had not touched yet, so lists are judged
    on what the user goes on to discover. Only users who do something new are queries, as
    at cutoffs only users who show up are.
    """
    at = points.drop_duplicates("user_id").set_index("user_id")["at"].astype("datetime64[us]")
    frame = _log_frame(events)
    frame = frame[frame["user"].isin(at.index)]
    when = at.reindex(frame["user"]).to_numpy()
    start = as_datetime64(cutoff.at)
    live_rows = frame.index[(frame["t"] >= start) & (frame["t"] <= when)]
    horizon = np.timedelta64(cutoff.horizon_days, "D")
    end = when + horizon if until is None else np.minimum(when + horizon, until)
    touched = pd.DataFrame(
        {"user_id": events.user_id[live_rows], "product_id": events.item_id[live_rows]}
    )
    after = frame[(frame["t"] > when) & (frame["t"] < end)]
    labels = _anti_join(graded_labels(events, after.index.to_numpy()), touched)
    users = np.sort(labels["user_id"].unique())
    live = events.take(live_rows[np.isin(events.user_id[live_rows], users)])
    known = frame[frame["user"].isin(users)]  # before the cutoff and live: what a request knows
    known = events.take(known.index[known["t"] <= at.reindex(known["user"]).to_numpy()])
    recent = recent_items(known, users, length=5)
    profiles = load_users(settings).reindex(users).reset_index()
    queries = Queries(users, cutoff.at, recent, profiles, *live_events(live, users))
    at = at.reindex(users)
    allowed = catalog.launched_mask(_as_datetime(at.max() + horizon)) & in_stock_mask(catalog)
    touched = touched[touched["user_id"].isin(users)].drop_duplicates(ignore_index=True)
    return SessionQueries(queries, at, touched, labels, allowed)


def session_examples_at(
    settings: Settings,
    part: CutoffData,
    session: SessionQueries,
    catalog: Catalog,
    k: CandidateCounts = 100,
) -> CutoffData:
    """Ranking examples for in-session queries, with the generators fit at ``part``'s cutoff.

    The union of the generators' top-``k`` (products touched live removed, for every
    approach alike) gets Feast features as of each query's moment, so the session features
    hold the live events; product features are looked up as of the moment's day (daily
    snapshots, see :meth:`HistoricalFeatures.join`). Query ids come from the moments
    (:func:`session_query_ids`), so they never collide with the cutoff's own queries.
    """
    users, at = session.queries.user_id, session.moments
    candidates = candidate_frame(part.generators, session.queries, k, session.allowed)
    candidates = attach_labels(_anti_join(candidates, session.touched), session.labels)
    qid = pd.Series(session_query_ids(users, at.to_numpy()), index=users)
    candidates[QUERY] = qid.reindex(candidates["user_id"]).to_numpy()
    labels = session.labels.assign(**{QUERY: qid.reindex(session.labels["user_id"]).to_numpy()})
    rows = entity_columns(candidates, catalog, part.cutoff)
    rows["event_timestamp"] = pd.to_datetime(at.reindex(rows["user_id"]).to_numpy(), utc=True)
    rows["calendar_date"] = calendar_key(rows["event_timestamp"])
    rows = with_features(HistoricalFeatures.open(settings), rows, daily_keys=SESSION_DAILY_KEYS)
    return CutoffData(part.cutoff, part.generators, labels, rows)


def session_points(
    events: InteractionLog, cutoff: Cutoff, n_users: int | None, seed: int
) -> pd.DataFrame:
    """In-session query moments for training: one random event per user in the window.

    Serving ranks at every page view, so the moments are events drawn uniformly from each
    sampled user's events in the cutoff's window (``n_users`` users; None = all).
    """
    start = as_datetime64(cutoff.at)
    window = np.flatnonzero((events.event_at >= start) & (events.event_at < cutoff.end))
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"user_id": events.user_id[window], "at": events.event_at[window]})
    frame = frame.assign(_r=rng.random(len(frame))).sort_values("_r", kind="stable")
    frame = frame.drop_duplicates("user_id").drop(columns="_r")
    if n_users is not None and n_users < len(frame):
        frame = frame.iloc[:n_users]
    return frame.sort_values("user_id", ignore_index=True)


def session_query_ids(user_ids: np.ndarray, at: np.ndarray) -> np.ndarray:
    """One id per in-session query (user, moment): like :func:`query_ids`, keyed by ``at``."""
    seconds = np.asarray(at, dtype="datetime64[s]").astype(np.int64)
    return np.asarray(user_ids, dtype=np.int64) + seconds * 10**7


def _log_frame(log: InteractionLog) -> pd.DataFrame:
    return pd.DataFrame({"user": log.user_id, "item": log.item_id, "t": log.event_at})


def _anti_join(frame: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``frame`` whose (user_id, product_id) is not in ``pairs``."""
    keys = ["user_id", "product_id"]
    hit = pd.MultiIndex.from_frame(frame[keys]).isin(pd.MultiIndex.from_frame(pairs[keys]))
    return frame[~hit].reset_index(drop=True)


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


def rolling_cutoffs(start: datetime, end: datetime, step_days: int | None) -> list[Cutoff]:
    """Cutoffs every ``step_days`` from ``start``; each label window runs to the next cutoff.

    ``None`` gives one cutoff whose window is the whole period. A last window shorter than
    half a step is merged into the one before it.
    """
    total = (end - start).days
    if not step_days or step_days >= total:
        return [Cutoff(start, total)]
    starts = list(range(0, total, step_days))
    if total - starts[-1] < step_days / 2:
        starts.pop()
    bounds = [*starts[1:], total]
    return [Cutoff(start + timedelta(days=a), b - a) for a, b in zip(starts, bounds, strict=True)]


def rolling_examples(
    settings: Settings,
    counts: CandidateCounts,
    catalog: Catalog,
    make_generators: GeneratorFactory,
    period: tuple[datetime, datetime, int | None, int | None],
    seed: int,
    negatives_per_query: int | None = None,
    cold_since: datetime | None = None,
    each: Callable[[CutoffData], CutoffData] | None = None,
    user_batch: int | None = None,
) -> list[CutoffData]:
    """Examples at every rolling cutoff of a period, its users split between the cutoffs.

    ``period`` is (start, end, step_days, users); see :func:`rolling_cutoffs`. With
    ``negatives_per_query`` the candidates are subsampled (validation for early stopping;
    test lists always rank every candidate). With ``cold_since`` every cold-start user
    (no event before it) is queried on top of the sample (:func:`examples_at`). ``each``
    is applied to every cutoff's data as soon as it is built, before the next cutoff's
    (with ``user_batch``, to every batch of that many of its users): the test month scores
    each there and keeps only a sample of its examples, so that querying every user never
    holds more than one batch's candidates in memory.
    """
    start, end, step_days, n_users = period
    cutoffs = rolling_cutoffs(start, end, step_days)
    per_cutoff = None if n_users is None else -(-n_users // len(cutoffs))
    return [
        examples_at(
            settings,
            cutoff,
            make_generators,
            counts,
            per_cutoff,
            seed=seed + i,
            catalog=catalog,
            negatives_per_query=negatives_per_query,
            cold_since=cold_since,
            user_batch=user_batch,
            each_batch=each,
        )
        for i, cutoff in enumerate(cutoffs)
    ]
