"""Ranking examples: (query, candidate) rows with generator scores, Feast features and labels.

A *cutoff* is a moment at which we recommend to every user who then shows up: generators
are fit on the log before it, each proposes its top candidates, Feast joins the
``ranker_v1`` features as of the cutoff, and labels grade what each user did with each
candidate in the ``horizon_days`` after it (purchase 3 > cart 2 > view 1 > nothing 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from shoprank.candidates.base import CandidateGenerator
from shoprank.candidates.data import Catalog, InteractionLog, Queries, as_datetime64, recent_items
from shoprank.features.training_set import calendar_key

GRADES = {1.0: 1, 3.0: 2, 5.0: 3}  # event weight -> label grade

#: How many candidates each generator proposes per query: one count for all, or one per
#: generator name (``"default"`` for the others).
CandidateCounts = int | Mapping[str, int]


def candidates_for(counts: CandidateCounts, name: str) -> int:
    """The number of candidates generator ``name`` proposes under ``counts``."""
    if isinstance(counts, int):
        return counts
    return int(counts.get(name, counts["default"]))


@dataclass(frozen=True)
class Cutoff:
    """Recommend at ``at``; count what happens in the following ``horizon_days``."""

    at: datetime
    horizon_days: int = 28

    @property
    def end(self) -> np.datetime64:
        """End of the label window (naive UTC)."""
        return as_datetime64(self.at) + np.timedelta64(self.horizon_days, "D")


def label_frame(log: InteractionLog, cutoff: Cutoff) -> pd.DataFrame:
    """Graded labels (user_id, product_id, label, revenue) in the cutoff's label window.

    ``revenue`` is what the user spent on the product in the window (0 when the log has no
    revenue); it is for business metrics, never a feature.
    """
    start = as_datetime64(cutoff.at)
    window = (log.event_at >= start) & (log.event_at < cutoff.end)
    return graded_labels(log, np.flatnonzero(window))


def graded_labels(log: InteractionLog, rows: np.ndarray) -> pd.DataFrame:
    """Graded labels (user_id, product_id, label, revenue) from the events at ``rows``.

    One row per (user, product): the best grade and the revenue summed.
    """
    revenue = log.revenue[rows] if log.revenue is not None else np.zeros(len(rows))
    frame = pd.DataFrame(
        {
            "user_id": log.user_id[rows],
            "product_id": log.item_id[rows],
            "label": pd.Series(log.weight[rows]).map(GRADES).to_numpy(),
            "revenue": revenue.astype(np.float64),
        }
    )
    return frame.groupby(["user_id", "product_id"], as_index=False).agg(
        label=("label", "max"), revenue=("revenue", "sum")
    )


def build_queries(
    history: InteractionLog, users: pd.DataFrame, user_ids: np.ndarray, cutoff: Cutoff
) -> Queries:
    """Queries for ``user_ids`` at the cutoff: recent items from history, profile segments."""
    segments = users.reindex(user_ids).reset_index()
    return Queries(user_ids, cutoff.at, recent_items(history, user_ids, length=5), segments)


def candidate_frame(
    generators: dict[str, CandidateGenerator],
    queries: Queries,
    k: CandidateCounts,
    allowed: np.ndarray,
    batch_size: int = 512,
) -> pd.DataFrame:
    """The union of every generator's top-``k`` (a count per generator), scored by every one.

    One row per (user_id, product_id). ``<generator>_score`` is that generator's score for
    the candidate even when another generator proposed it (NaN where it has no signal, e.g.
    co-visitation without a neighbour); ``<generator>_rank`` (1 = best) is NaN where the
    generator did not propose it; ``n_sources`` counts the generators that did.
    """
    parts = [
        _candidate_block(generators, queries.take(slice(start, start + batch_size)), k, allowed)
        for start in range(0, len(queries), batch_size)
    ]
    union = pd.concat(parts, ignore_index=True)
    union["n_sources"] = union[[f"{n}_rank" for n in generators]].notna().sum(axis=1)
    return union


@dataclass(frozen=True)
class CandidateUnion:
    """The union of every generator's top-k for a batch of queries, as arrays.

    One entry per (query row, product), sorted by row then product id.

    Attributes:
        names: Generator names, the column order of ``ranks`` and ``scores``.
        rows: The query row of each candidate.
        items: Product ids.
        ranks: (n, generators) rank in that generator's list (1 = best), NaN if not in it.
        scores: (n, generators) that generator's score, NaN where it has no signal.
    """

    names: tuple[str, ...]
    rows: np.ndarray
    items: np.ndarray
    ranks: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.items)

    @property
    def n_sources(self) -> np.ndarray:
        """How many generators proposed each candidate."""
        return np.isfinite(self.ranks).sum(axis=1)

    def take(self, keep: np.ndarray) -> CandidateUnion:
        """The candidates at ``keep`` (a boolean mask or positions)."""
        return CandidateUnion(
            self.names, self.rows[keep], self.items[keep], self.ranks[keep], self.scores[keep]
        )


def candidate_union(
    generators: dict[str, CandidateGenerator],
    batch: Queries,
    k: CandidateCounts,
    allowed: np.ndarray,
    cache: dict | None = None,
    lookups: dict[str, int] | None = None,
) -> CandidateUnion:
    """Every generator's top-``k`` for ``batch`` (a count per generator), scored by every one.

    With ``cache`` (one dict per ``allowed`` mask, kept by the caller), a one-query batch
    reuses the scores and top-k of generators whose scores do not depend on the query
    (:meth:`~shoprank.candidates.base.CandidateGenerator.query_key`): same values, computed
    once instead of once per request; ``lookups`` counts its ``hit``-s and ``miss``-es.
    """
    names = tuple(generators)
    proposals, found = [], []
    for g, (name, generator) in enumerate(generators.items()):
        key = generator.query_key(batch) if cache is not None and len(batch) == 1 else None
        hit = cache.get((name, key)) if key is not None else None
        if key is not None and lookups is not None:
            lookups["miss" if hit is None else "hit"] += 1
        if hit is None:
            proposal = generator.propose(batch, candidates_for(k, name), allowed)
            if key is not None:
                cache[(name, key)] = proposal
        else:
            proposal = hit
        proposals.append(proposal)
        items = proposal.items
        rows, positions = np.nonzero(items >= 0)
        found.append((rows, items[rows, positions], positions + 1, np.full(len(rows), g)))
    rows, items, ranks, gens = (np.concatenate(parts) for parts in zip(*found, strict=True))
    width = len(allowed)
    keys, inverse = np.unique(rows.astype(np.int64) * width + items, return_inverse=True)
    union_rows, union_items = keys // width, keys % width
    rank_matrix = np.full((len(keys), len(names)), np.nan, dtype=np.float32)
    rank_matrix[inverse, gens] = ranks
    score_matrix = np.empty((len(keys), len(names)), dtype=np.float32)
    for g, proposal in enumerate(proposals):
        values = proposal.at(union_rows, union_items)
        score_matrix[:, g] = np.where(np.isfinite(values), values, np.nan)
    return CandidateUnion(names, union_rows, union_items, rank_matrix, score_matrix)


def _candidate_block(
    generators: dict[str, CandidateGenerator],
    batch: Queries,
    k: CandidateCounts,
    allowed: np.ndarray,
) -> pd.DataFrame:
    """Candidates of one batch of queries (see :func:`candidate_frame`)."""
    union = candidate_union(generators, batch, k, allowed)
    wide = pd.DataFrame({"user_id": batch.user_id[union.rows], "product_id": union.items})
    proposed = np.isfinite(union.ranks).any(axis=0)
    # rank columns of the generators that proposed anything (alphabetical), the scores,
    # then the other rank columns: the column order training has always seen
    order = sorted(g for g, name in enumerate(union.names) if proposed[g])
    order.sort(key=lambda g: union.names[g])
    for g in order:
        wide[f"{union.names[g]}_rank"] = union.ranks[:, g].astype(np.float64)
    for g, name in enumerate(union.names):
        wide[f"{name}_score"] = union.scores[:, g]
    for g, name in enumerate(union.names):
        if not proposed[g]:
            wide[f"{name}_rank"] = np.nan
    return wide


def attach_labels(candidates: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Add the graded label (0 when the user did nothing with the candidate)."""
    keys = ["user_id", "product_id"]
    out = candidates.merge(labels[[*keys, "label"]], on=keys, how="left")
    out["label"] = out["label"].fillna(0).astype(np.int8)
    return out


def entity_columns(candidates: pd.DataFrame, catalog: Catalog, cutoff: Cutoff) -> pd.DataFrame:
    """Add the Feast entity keys and the cutoff as ``event_timestamp``."""
    out = candidates.copy()
    for key in ("category_l1", "brand"):
        out[key] = catalog.frame[key].reindex(out["product_id"]).to_numpy()
    stamp = pd.Timestamp(cutoff.at)
    out["event_timestamp"] = stamp if stamp.tzinfo else stamp.tz_localize("UTC")
    out["calendar_date"] = calendar_key(out["event_timestamp"])
    return out


def sample_negatives(frame: pd.DataFrame, per_query: int, seed: int = 0) -> pd.DataFrame:
    """Keep every labelled row and at most ``per_query`` random unlabelled ones per query.

    Training only: queries without any labelled candidate teach nothing and are dropped.
    """
    rng = np.random.default_rng(seed)
    order = frame.reset_index(drop=True).assign(_r=rng.random(len(frame)))
    positive = order["label"] > 0
    useful = order.groupby("query_id")["label"].transform("max") > 0
    negative_rank = order[~positive].groupby("query_id")["_r"].rank(method="first")
    keep = positive | (negative_rank.reindex(order.index) <= per_query)
    return order[keep & useful].drop(columns="_r").reset_index(drop=True)
