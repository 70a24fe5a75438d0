"""Ranking examples: (query, candidate) rows with generator scores, Feast features and labels.

A *cutoff* is a moment at which we recommend to every user who then shows up: generators
are fit on the log before it, each proposes its top candidates, Feast joins the
``ranker_v1`` features as of the cutoff, and labels grade what each user did with each
candidate in the ``horizon_days`` after it (purchase 3 > cart 2 > view 1 > nothing 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from shoprank.candidates.base import CandidateGenerator
from shoprank.candidates.data import Catalog, InteractionLog, Queries, recent_items
from shoprank.features.training_set import calendar_key

GRADES = {1.0: 1, 3.0: 2, 5.0: 3}  # event weight -> label grade


@dataclass(frozen=True)
class Cutoff:
    """Recommend at ``at``; count what happens in the following ``horizon_days``."""

    at: datetime
    horizon_days: int = 28

    @property
    def end(self) -> np.datetime64:
        """End of the label window (naive UTC)."""
        return np.datetime64(self.at.replace(tzinfo=None), "us") + np.timedelta64(
            self.horizon_days, "D"
        )


def label_frame(log: InteractionLog, cutoff: Cutoff) -> pd.DataFrame:
    """Graded labels (user_id, product_id, label) for events in the cutoff's label window."""
    start = np.datetime64(cutoff.at.replace(tzinfo=None), "us")
    window = (log.event_at >= start) & (log.event_at < cutoff.end)
    frame = pd.DataFrame(
        {
            "user_id": log.user_id[window],
            "product_id": log.item_id[window],
            "label": pd.Series(log.weight[window]).map(GRADES).to_numpy(),
        }
    )
    return frame.groupby(["user_id", "product_id"], as_index=False)["label"].max()


def build_queries(
    history: InteractionLog, users: pd.DataFrame, user_ids: np.ndarray, cutoff: Cutoff
) -> Queries:
    """Queries for ``user_ids`` at the cutoff: recent items from history, profile segments."""
    segments = users.reindex(user_ids).reset_index()
    return Queries(user_ids, cutoff.at, recent_items(history, user_ids, length=5), segments)


def candidate_frame(
    generators: dict[str, CandidateGenerator],
    queries: Queries,
    k: int,
    allowed: np.ndarray,
) -> pd.DataFrame:
    """The union of every generator's top-``k``: one row per (user_id, product_id).

    Columns ``<generator>_score`` and ``<generator>_rank`` (1 = best) are NaN where that
    generator did not propose the product; ``n_sources`` counts the generators that did.
    """
    frames = []
    for name, generator in generators.items():
        found = generator.recommend(queries, k, allowed=allowed)
        rows, ranks = np.nonzero(found.items >= 0)
        frames.append(
            pd.DataFrame(
                {
                    "user_id": queries.user_id[rows],
                    "product_id": found.items[rows, ranks],
                    f"{name}_score": found.scores[rows, ranks],
                    f"{name}_rank": (ranks + 1).astype(np.float32),
                }
            ).set_index(["user_id", "product_id"])
        )
    union = pd.concat(frames, axis=1, join="outer").reset_index()
    union["n_sources"] = union[[f"{n}_rank" for n in generators]].notna().sum(axis=1)
    return union


def attach_labels(candidates: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Add the graded label (0 when the user did nothing with the candidate)."""
    out = candidates.merge(labels, on=["user_id", "product_id"], how="left")
    out["label"] = out["label"].fillna(0).astype(np.int8)
    return out


def entity_columns(candidates: pd.DataFrame, catalog: Catalog, cutoff: Cutoff) -> pd.DataFrame:
    """Add the Feast entity keys and the cutoff as ``event_timestamp``."""
    out = candidates.copy()
    out["category_l1"] = catalog.frame["category_l1"].reindex(out["product_id"]).to_numpy()
    stamp = pd.Timestamp(cutoff.at)
    out["event_timestamp"] = stamp if stamp.tzinfo else stamp.tz_localize("UTC")
    out["calendar_date"] = calendar_key(out["event_timestamp"])
    return out
