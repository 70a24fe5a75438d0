"""How much of what users go on to touch reaches the ranker: candidate-union recall.

The ranker only re-orders the union of the generators' top-k, so the share of a user's next
views, carts and purchases that the union holds bounds every metric the ranker can reach.
:func:`candidate_recall` fits the generators at one cutoff, as the evaluation does, and
measures that share for several per-generator candidate counts against their cost
(candidates per query, which sets the rows every Feast join and every ranker pass touch).
``shoprank bench candidates`` runs it on a validation cutoff, so the counts in
``models/ranker_v1.yaml`` are chosen without looking at the test month.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from shoprank.candidates.data import Catalog, load_catalog
from shoprank.ranking.dataset import (
    CandidateCounts,
    Cutoff,
    build_queries,
    candidates_for,
)
from shoprank.ranking.examples import GeneratorFactory, fit_at, sample_users
from shoprank.settings import Settings

#: Label grades, as in :data:`shoprank.ranking.dataset.GRADES`.
GRADE_NAMES = {1: "view", 2: "cart", 3: "purchase"}


@dataclass
class RecallReport:
    """Union recall of each candidate setting at one cutoff (see :func:`candidate_recall`)."""

    cutoff: datetime
    horizon_days: int
    queries: int
    touched_pairs: int
    settings: dict[str, dict] = field(default_factory=dict)
    generators: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready: the cutoff, every setting's recall and size, each generator alone."""
        return {
            "cutoff": self.cutoff.isoformat(),
            "horizon_days": self.horizon_days,
            "queries": self.queries,
            "touched_pairs": self.touched_pairs,
            "settings": self.settings,
            "generators": self.generators,
            "seconds": round(self.seconds, 1),
        }


def _top_items(
    generator, queries, allowed: np.ndarray, k: int, batch_size: int = 512
) -> np.ndarray:
    """Each query's top-``k`` product ids from one generator (-1 where fewer exist)."""
    blocks = []
    for start in range(0, len(queries), batch_size):
        batch = queries.take(slice(start, start + batch_size))
        blocks.append(generator.propose(batch, k, allowed).items)
    return np.vstack(blocks)


def _union_codes(tops: Mapping[str, np.ndarray], counts: CandidateCounts, n_items: int):
    """Unique (query row, product) codes of the union under ``counts``."""
    parts = []
    for name, items in tops.items():
        block = items[:, : candidates_for(counts, name)]
        rows, cols = np.nonzero(block >= 0)
        parts.append(rows.astype(np.int64) * n_items + block[rows, cols])
    return np.unique(np.concatenate(parts))


def _recall(codes: np.ndarray, touched: pd.DataFrame, n_queries: int) -> dict:
    """Share of the touched pairs (overall and by grade) in ``codes``; union size."""
    hit = np.isin(touched["code"].to_numpy(), codes)
    out = {
        "recall": round(float(hit.mean()) if len(hit) else 0.0, 4),
        "candidates_per_query": round(len(codes) / max(n_queries, 1), 1),
    }
    for grade, name in GRADE_NAMES.items():
        mine = touched["label"].to_numpy() == grade
        out[f"recall_{name}"] = round(float(hit[mine].mean()) if mine.any() else 0.0, 4)
    return out


def candidate_recall(
    settings: Settings,
    cutoff: Cutoff,
    make_generators: GeneratorFactory,
    counts: Mapping[str, CandidateCounts],
    n_users: int | None = 3000,
    seed: int = 0,
    catalog: Catalog | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> RecallReport:
    """Union recall at ``cutoff`` for each named candidate setting in ``counts``.

    Generators are fit on the log before the cutoff; ``n_users`` of the users who touch a
    product in the label window are queried (None = all). Recall is the share of their
    (user, product) pairs in the window, any grade, that the union of the generators'
    top-k holds; products a user touched before the cutoff count too, as in the labels
    the ranker trains on. Each generator alone, at its count in the first setting, is
    reported as well.
    """
    started = time.perf_counter()
    catalog = catalog or load_catalog(settings.warehouse_path)
    fitted = fit_at(settings, cutoff, make_generators, catalog, log)
    labels, generators = fitted.labels, fitted.generators
    query_users = np.sort(sample_users(labels, n_users, seed))
    queries = build_queries(fitted.history, fitted.users, query_users, cutoff)
    deepest = {
        name: max(candidates_for(setting, name) for setting in counts.values())
        for name in generators
    }
    tops = {}
    for name, generator in generators.items():
        log(f"top {deepest[name]} of {name} for {len(query_users):,} queries")
        tops[name] = _top_items(generator, queries, fitted.allowed, deepest[name])
    row = pd.Series(np.arange(len(query_users)), index=query_users)
    touched = labels[labels["user_id"].isin(query_users)]
    touched = touched.assign(
        code=row.reindex(touched["user_id"]).to_numpy() * catalog.n_items
        + touched["product_id"].to_numpy()
    )
    report = RecallReport(cutoff.at, cutoff.horizon_days, len(query_users), len(touched))
    for label, setting in counts.items():
        report.settings[label] = {"counts": setting} | _recall(
            _union_codes(tops, setting, catalog.n_items), touched, len(query_users)
        )
    first = next(iter(counts.values()))
    for name in generators:
        alone = {name: tops[name]}
        k = candidates_for(first, name)
        report.generators[name] = {"k": k} | _recall(
            _union_codes(alone, k, catalog.n_items), touched, len(query_users)
        )
    report.seconds = time.perf_counter() - started
    return report
