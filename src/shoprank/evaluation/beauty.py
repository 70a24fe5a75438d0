"""Amazon Beauty under the published full-ranking protocol: our approaches and a two-stage ranker.

Every approach scores all items for each user and is measured with
:func:`~shoprank.evaluation.leave_one_out.evaluate_scores` (leave-one-out, history masked, HR@K
and NDCG@K), so the figures sit beside the published table (docs/datasets.md).

Stages. ``validation`` sees the training prefixes and predicts the second-to-last item;
``test`` sees the training prefixes plus the validation items and predicts the last item.
Every hyper-parameter is chosen on validation targets (one pass of coordinate search per
generator), then the generators are refit on the test-stage history and test is scored once.

Approaches: leak-free popularity, item-to-item transitions (co-visitation within a window of
the sequence, queried from the user's last items with recency weights), EASE (closed form),
ALS (``implicit``), title embeddings (MiniLM, recency-weighted mean of the last items), a
reciprocal-rank blend of the generators, and a two-stage ranker: XGBoost ``rank:ndcg`` over the
union of the generators' top lists, with their scores, ranks and item-item relations as
features (never ids). The ranker learns to predict the validation target from generators fit on
the training prefixes (early stopping on held-out users) and predicts the test target from the
generators refit on the test-stage history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shoprank.evaluation.leave_one_out import (
    LooSplit,
    Stage,
    evaluate_scores,
    loo_split,
    mask_history,
)

#: Published full-ranking results on this exact file (dataset README: S3-Rec repository figure
#: ``all_rank.PNG``; ICLRec from the ``salesforce/ICLRec`` README). PopRec leaks test items.
PUBLISHED: dict[str, dict[str, float]] = {
    "PopRec (full-data counts, leaks)": {
        "HR@10": 0.0152,
        "NDCG@10": 0.0068,
        "HR@20": 0.0217,
        "NDCG@20": 0.0084,
    },
    "GRU4Rec": {"HR@10": 0.0283, "NDCG@10": 0.0137, "HR@20": 0.0479, "NDCG@20": 0.0187},
    "BERT4Rec": {"HR@10": 0.0347, "NDCG@10": 0.0170, "HR@20": 0.0599, "NDCG@20": 0.0233},
    "SASRec": {"HR@10": 0.0605, "NDCG@10": 0.0318, "HR@20": 0.0902, "NDCG@20": 0.0394},
    "S3-Rec": {"HR@10": 0.0647, "NDCG@10": 0.0327, "HR@20": 0.0994, "NDCG@20": 0.0414},
    "ICLRec": {"HR@10": 0.0744, "NDCG@10": 0.0403, "HR@20": 0.1058, "NDCG@20": 0.0483},
}
METRICS = ("HR@10", "NDCG@10", "HR@20", "NDCG@20")
GENERATORS = ("popularity", "transitions", "ease", "als", "content")
#: Length of every generator's stored top list (feeds the blend, candidates and rank features).
TOP_M = 200
#: Weight of the popularity tie-breaker added to sparse scores (far below any real signal).
TIE_BREAK = 1e-6


# History


@dataclass(frozen=True)
class History:
    """Per-user item sequences visible at one stage, chronological, in CSR layout."""

    indptr: np.ndarray
    items: np.ndarray
    n_items: int

    @property
    def n_users(self) -> int:
        """Number of user rows."""
        return int(self.indptr.size - 1)

    def lengths(self) -> np.ndarray:
        """History length per user row."""
        return np.diff(self.indptr)

    def recent(self, rows: np.ndarray, n: int) -> np.ndarray:
        """``(len(rows), n)`` item ids, most recent first; 0 where the history is shorter."""
        ends = self.indptr[rows + 1]
        age = np.arange(n)
        ok = age[None, :] < (ends - self.indptr[rows])[:, None]
        index = np.where(ok, ends[:, None] - 1 - age[None, :], 0)
        return np.where(ok, self.items[index], 0)

    def query(
        self, rows: np.ndarray | None = None, n_last: int | None = None, recency: float = 1.0
    ) -> sp.csr_matrix:
        """Users x items matrix of the last ``n_last`` items weighted ``recency ** age``.

        ``age`` is 0 for the most recent item. ``rows=None`` takes every user, ``n_last=None``
        the whole history; with the defaults this is the binary interaction matrix.
        """
        rows = np.arange(self.n_users) if rows is None else rows
        ends = self.indptr[rows + 1]
        starts = self.indptr[rows]
        if n_last is not None:
            starts = np.maximum(starts, ends - n_last)
        counts = ends - starts
        row_of = np.repeat(np.arange(rows.size), counts)
        position = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        position += np.repeat(starts, counts)
        weights = np.power(recency, np.repeat(ends, counts) - 1 - position).astype(np.float32)
        shape = (rows.size, self.n_items + 1)
        return sp.csr_matrix((weights, (row_of, self.items[position])), shape=shape)


def stage_history(split: LooSplit, stage: Stage) -> History:
    """The history a stage may use: training prefixes, plus validation items for test."""
    if split.targets(stage) is split.validation_targets:
        return History(split.indptr, split.train_items, split.n_items)
    validation = split.validation_targets
    has = validation > 0
    train_counts = np.diff(split.indptr)
    indptr = np.zeros(split.n_users + 1, dtype=np.int64)
    np.cumsum(train_counts + has, out=indptr[1:])
    items = np.empty(int(indptr[-1]), dtype=np.int64)
    row_of = np.repeat(np.arange(split.n_users), train_counts)
    offsets = np.arange(split.train_items.size) - split.indptr[row_of]
    items[indptr[row_of] + offsets] = split.train_items
    items[indptr[1:][has] - 1] = validation[has]
    return History(indptr, items, split.n_items)


# Generators


class Scorer(Protocol):
    """A fitted generator: scores over every item id for a batch of user rows."""

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), n_items + 1)`` float32 scores (column 0 unused)."""
        ...


@dataclass
class Popularity:
    """Interaction counts in the stage's history (leak-free popularity)."""

    history: History

    def __post_init__(self) -> None:
        counts = np.bincount(self.history.items, minlength=self.history.n_items + 1)
        self.counts = counts.astype(np.float32)

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """The same counts for every user."""
        return np.broadcast_to(self.counts, (rows.size, self.counts.size))


def transition_matrix(
    history: History, window: int, backward: float, decay: float
) -> sp.csr_matrix:
    """Row-normalised item-to-item transitions within ``window`` steps of each sequence.

    Item ``a`` followed ``d`` steps later by ``b`` adds ``decay ** (d - 1)`` to ``a -> b`` and
    ``backward * decay ** (d - 1)`` to ``b -> a``. Rows are divided by their sums.
    """
    user = np.repeat(np.arange(history.n_users), history.lengths())
    items = history.items
    src, dst, weight = [], [], []
    for d in range(1, window + 1):
        same = user[:-d] == user[d:]
        first, then = items[:-d][same], items[d:][same]
        src += [first, then]
        dst += [then, first]
        weight += [
            np.full(first.size, decay ** (d - 1)),
            np.full(first.size, backward * decay ** (d - 1)),
        ]
    n = history.n_items + 1
    data = np.concatenate(weight).astype(np.float32)
    matrix = sp.csr_matrix((data, (np.concatenate(src), np.concatenate(dst))), shape=(n, n))
    matrix.eliminate_zeros()
    row_sums = np.asarray(matrix.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(row_sums, 1e-12)) @ matrix)


@dataclass
class Transitions:
    """Where sequences go next: transitions from the user's last items, recency-weighted."""

    history: History
    popularity: np.ndarray
    window: int = 3
    backward: float = 0.5
    decay: float = 0.6
    n_last: int = 5
    recency: float = 0.6

    def __post_init__(self) -> None:
        self.matrix = transition_matrix(self.history, self.window, self.backward, self.decay)

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """Recency-weighted sum of the last items' transition rows, popularity breaks ties."""
        query = self.history.query(rows, self.n_last, self.recency)
        out = (query @ self.matrix).toarray()
        return out + tie_break(self.popularity)


def tie_break(popularity: np.ndarray) -> np.ndarray:
    """Tiny popularity scores that order items a sparse generator leaves tied at zero."""
    return (TIE_BREAK * popularity / max(float(popularity.max()), 1.0)).astype(np.float32)


def ease_weights(gram: np.ndarray, lam: float) -> np.ndarray:
    """EASE item-item weights ``B = -P / diag(P)``, ``P = (G + lam I)^-1``, zero diagonal.

    Cholesky inverse in float32 (LAPACK ``spotrf``/``spotri``): twice as fast as float64 and
    accurate enough, since ``lam`` keeps ``G + lam I`` well conditioned.
    """
    from scipy.linalg import lapack

    matrix = gram.astype(np.float32, copy=True)
    matrix[np.diag_indices_from(matrix)] += lam
    factor, info = lapack.spotrf(matrix, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise RuntimeError(f"EASE: Gram matrix + {lam} I is not positive definite ({info})")
    inverse, info = lapack.spotri(factor, lower=False, overwrite_c=True)
    del factor, matrix
    inverse = np.triu(inverse)
    inverse += np.triu(inverse, 1).T
    weights = inverse / -np.diag(inverse)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights


@dataclass
class Ease:
    """EASE (Steck, WWW 2019) queried with recency-weighted histories."""

    history: History
    weights: np.ndarray
    recency: float = 1.0

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """History (recency-weighted) times the item-item weights."""
        return np.asarray(self.history.query(rows, None, self.recency) @ self.weights)


@dataclass
class Als:
    """``implicit`` ALS on the binary user x item matrix (confidence ``1 + alpha``)."""

    history: History
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 10.0
    iterations: int = 15
    seed: int = 0

    def __post_init__(self) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        matrix = self.history.query().astype(np.float32)
        with threadpool_limits(1, "blas"):  # implicit parallelises itself
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=2,
            )
            model.fit(matrix, show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """User factors times item factors."""
        return self.user_factors[rows] @ self.item_factors.T


@dataclass
class Content:
    """Cosine of each item's title vector to the recency-weighted mean of the last items."""

    history: History
    vectors: np.ndarray
    popularity: np.ndarray
    n_last: int = 5
    recency: float = 0.6

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """Cosine similarity to the user's profile vector, popularity breaks ties."""
        profile = self.history.query(rows, self.n_last, self.recency) @ self.vectors
        profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-12)
        return profile @ self.vectors.T + tie_break(self.popularity)


def title_vectors(data: Any, cache_dir: Path, progress: bool = True) -> np.ndarray:
    """MiniLM title vectors laid out by item id (row 0 and empty titles are zeros).

    Uses the incremental embedding cache ``cache_dir/amazon_beauty_titles.parquet``.
    """
    from shoprank.embeddings.encoder import embed_catalog

    items = data.items
    frame = pd.DataFrame(
        {"product_id": items["item_id"].to_numpy(), "title": items["title"], "description": ""}
    )
    result = embed_catalog(frame, cache_dir / "amazon_beauty_titles.parquet", progress=progress)
    vectors = np.zeros((data.n_items + 1, result.vectors.shape[1]), dtype=np.float32)
    has_title = items["title"].astype(str).str.strip().to_numpy() != ""
    vectors[result.product_ids[has_title]] = result.vectors[has_title]
    return vectors


# Measuring with top lists


@dataclass
class Measured:
    """An approach's metrics at one stage and its top lists for the users with a target.

    Attributes:
        metrics: HR@K, NDCG@K and n_users from :func:`evaluate_scores`.
        top: ``(n_target_users, TOP_M)`` item ids, best first, history masked.
        user_rows: The user rows of ``top``'s rows.
    """

    metrics: dict[str, float]
    top: np.ndarray
    user_rows: np.ndarray

    @property
    def ndcg10(self) -> float:
        """NDCG@10, the selection criterion."""
        return float(self.metrics["NDCG@10"])


def top_items(masked: np.ndarray, m: int) -> np.ndarray:
    """The ``m`` highest-scoring item ids per row, best first."""
    part = np.argpartition(-masked, m - 1, axis=1)[:, :m]
    order = np.argsort(-np.take_along_axis(masked, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int32)


def measure(score_fn: Callable, split: LooSplit, stage: Stage, m: int = TOP_M) -> Measured:
    """Evaluate ``score_fn`` with :func:`evaluate_scores`, keeping each user's top ``m`` items."""
    user_rows = np.flatnonzero(split.targets(stage) > 0)
    position = np.full(split.n_users, -1, dtype=np.int64)
    position[user_rows] = np.arange(user_rows.size)
    m = min(m, split.n_items)
    top = np.zeros((user_rows.size, m), dtype=np.int32)

    def collect(rows: np.ndarray) -> np.ndarray:
        scores = np.array(score_fn(rows), dtype=np.float32)
        masked = scores.copy()
        mask_history(masked, split, rows, stage)
        top[position[rows]] = top_items(masked, m)
        return scores

    result = evaluate_scores(collect, split, stage)
    metrics = {k: float(result[k]) for k in METRICS} | {"n_users": int(result["n_users"])}
    return Measured(metrics=metrics, top=top, user_rows=user_rows)


def coordinate_search(
    make: Callable[[dict], Scorer],
    evaluate: Callable[[Scorer], Measured],
    base: dict[str, Any],
    grid: dict[str, list],
    on_trial: Callable[[dict, float], None] | None = None,
) -> tuple[dict[str, Any], Scorer, Measured]:
    """One pass of coordinate search on validation NDCG@10: each key in turn over its values.

    Returns:
        The best parameters, the scorer built with them and its measurement.
    """
    best_params = dict(base)
    best = make(best_params)
    best_measured = evaluate(best)
    if on_trial:
        on_trial(best_params, best_measured.ndcg10)
    for key, values in grid.items():
        for value in values:
            if value == best_params[key]:
                continue
            params = best_params | {key: value}
            scorer = make(params)
            measured = evaluate(scorer)
            if on_trial:
                on_trial(params, measured.ndcg10)
            if measured.ndcg10 > best_measured.ndcg10:
                best_params, best, best_measured = params, scorer, measured
    return best_params, best, best_measured


# Rank blend


@dataclass
class RankBlend:
    """Reciprocal-rank fusion of the generators' top lists: ``sum_g w_g / (k + rank_g)``."""

    tops: dict[str, np.ndarray]
    position: np.ndarray
    popularity: np.ndarray
    weights: dict[str, float]
    k: float = 60.0

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """Fused scores; items in no list get only the popularity tie-breaker."""
        out = np.zeros((rows.size, self.popularity.size), dtype=np.float32)
        out += tie_break(self.popularity)
        index = np.arange(rows.size)[:, None]
        for name, weight in self.weights.items():
            top = self.tops[name][self.position[rows]]
            if weight:
                gains = weight / (self.k + np.arange(1, top.shape[1] + 1, dtype=np.float32))
                np.add.at(out, (np.broadcast_to(index, top.shape), top), gains)
        return out


def row_positions(user_rows: np.ndarray, n_users: int) -> np.ndarray:
    """Map user row -> row of the top lists (-1 for users without a target)."""
    position = np.full(n_users, -1, dtype=np.int64)
    position[user_rows] = np.arange(user_rows.size)
    return position


# Fitting every generator at a stage


#: Search grids and starting points (one pass of coordinate search each, validation NDCG@10).
#: The starting points are the winners of a wider validation-only search (docs/datasets.md);
#: the grids probe one step either side, which keeps the whole run near 10 minutes.
DEFAULT_GRIDS: dict[str, dict[str, list]] = {
    "transitions": {
        "window": [3, 8],
        "backward": [0.1, 0.5],
        "decay": [0.4, 0.8],
        "n_last": [5, 20],
        "recency": [0.2, 0.45],
    },
    # lam 60 is bracketed by earlier validation searches: it beat 150 and 400, then 25.
    "ease": {"recency": [1.0, 0.6]},
    "als": {"regularization": [3.0], "alpha": [40.0]},
    "content": {"n_last": [2, 3], "recency": [0.3]},
    "blend": {
        "k": [5.0, 20.0],
        "ease": [0.25, 1.0],
        "als": [0.25, 1.0],
        "content": [0.5, 2.0],
    },
}
DEFAULT_BASE: dict[str, dict[str, Any]] = {
    "transitions": {"window": 5, "backward": 0.25, "decay": 0.6, "n_last": 10, "recency": 0.3},
    "ease": {"lam": 60.0, "recency": 0.8},
    "als": {"factors": 128, "regularization": 1.0, "alpha": 20.0},
    "content": {"n_last": 1, "recency": 0.6},
    "blend": {
        "k": 10.0,
        "popularity": 0.0,
        "transitions": 1.0,
        "ease": 0.5,
        "als": 0.5,
        "content": 1.0,
    },
}


@dataclass
class StageModels:
    """Fitted generators, their measurements and the blend at one stage."""

    stage: Stage
    history: History
    label: str = ""
    generators: dict[str, Scorer] = field(default_factory=dict)
    measured: dict[str, Measured] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    trials: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def make_generator(
    name: str,
    params: dict[str, Any],
    history: History,
    popularity: np.ndarray,
    vectors: np.ndarray | None,
    ease_cache: dict[float, np.ndarray],
) -> Scorer:
    """Build and fit one generator from its parameters."""
    if name == "transitions":
        return Transitions(history, popularity, **params)
    if name == "ease":
        lam = float(params["lam"])
        if lam not in ease_cache:
            if "gram" not in ease_cache:
                binary = history.query()
                ease_cache["gram"] = (binary.T @ binary).toarray()
            ease_cache[lam] = ease_weights(ease_cache["gram"], lam)
        return Ease(history, ease_cache[lam], recency=params["recency"])
    if name == "als":
        return Als(history, **params)
    if name == "content":
        if vectors is None:
            raise ValueError("content needs title vectors")
        return Content(history, vectors, popularity, **params)
    raise ValueError(f"unknown generator {name!r}")


def fit_stage(
    split: LooSplit,
    stage: Stage,
    vectors: np.ndarray | None,
    params: dict[str, dict[str, Any]] | None,
    grids: dict[str, dict[str, list]],
    log: Callable[[str], None],
    label: str | None = None,
) -> StageModels:
    """Fit and measure every generator at ``stage``; search the grids when ``params`` is None.

    Searching is only allowed at the validation stage. ``label`` names the stage in the log.
    """
    if params is None and stage != "validation":
        raise ValueError("hyper-parameters may only be searched on the validation stage")
    history = stage_history(split, stage)
    models = StageModels(stage=stage, history=history, label=label or stage)
    pop = Popularity(history)
    models.generators["popularity"] = pop
    models.measured["popularity"] = measure(pop.scores, split, stage)
    names = [g for g in GENERATORS[1:] if g != "content" or vectors is not None]
    for name in names:
        started = time.perf_counter()
        cache: dict[float, np.ndarray] = {}

        def make(p: dict, name: str = name, cache: dict = cache) -> Scorer:
            return make_generator(name, p, history, pop.counts, vectors, cache)

        def evaluate(scorer: Scorer) -> Measured:
            return measure(scorer.scores, split, stage)

        trials: list[dict[str, Any]] = []
        if params is None:
            chosen, scorer, measured = coordinate_search(
                make,
                evaluate,
                DEFAULT_BASE[name],
                grids.get(name, {}),
                lambda p, s, t=trials: t.append(p | {"NDCG@10": round(s, 5)}),
            )
        else:
            chosen = params[name]
            scorer = make(chosen)
            measured = evaluate(scorer)
        cache.clear()
        models.generators[name], models.measured[name] = scorer, measured
        models.params[name], models.trials[name] = chosen, trials
        log(
            f"{models.label} {name}: NDCG@10 {measured.ndcg10:.4f} {chosen} "
            f"({len(trials) or 1} fits, {time.perf_counter() - started:.0f} s)"
        )
    return models


def fit_blend(
    split: LooSplit,
    models: StageModels,
    params: dict[str, Any] | None,
    grid: dict[str, list],
) -> tuple[dict[str, Any], RankBlend]:
    """Fit (search on validation, or reuse ``params``) and measure the rank blend."""
    stage = models.stage
    user_rows = models.measured["popularity"].user_rows
    position = row_positions(user_rows, split.n_users)
    tops = {name: m.top for name, m in models.measured.items()}
    popularity = models.generators["popularity"].counts  # type: ignore[attr-defined]

    def make(p: dict) -> RankBlend:
        weights = {name: float(p.get(name, 0.0)) for name in tops}
        return RankBlend(tops, position, popularity, weights, k=float(p["k"]))

    def evaluate(blend: Scorer) -> Measured:
        return measure(blend.scores, split, stage)

    if params is None:
        base = {k: v for k, v in DEFAULT_BASE["blend"].items() if k == "k" or k in tops}
        usable = {k: v for k, v in grid.items() if k == "k" or k in tops}
        trials: list[dict[str, Any]] = []
        params, blend, measured = coordinate_search(
            make, evaluate, base, usable, lambda p, s: trials.append(p | {"NDCG@10": round(s, 5)})
        )
        models.trials["blend"] = trials
    else:
        blend = make(params)
        measured = evaluate(blend)
    models.generators["blend"], models.measured["blend"] = blend, measured
    models.params["blend"] = params
    return params, blend


# Ranker features


@dataclass(frozen=True)
class ItemInfo:
    """Per-item facts shared by both stages (index = item id)."""

    brand: np.ndarray
    category: np.ndarray
    vectors: np.ndarray | None

    @staticmethod
    def from_attributes(
        attributes: dict[int, list[int]], n_items: int, vectors: np.ndarray | None
    ) -> ItemInfo:
        """Brand and L2 category codes from the unnamed attribute ids (-1 = unknown)."""
        from shoprank.datasets.amazon_beauty import split_attributes

        brand = np.full(n_items + 1, -1, dtype=np.int64)
        category = np.full(n_items + 1, -1, dtype=np.int64)
        table = split_attributes(attributes)
        if len(table):
            ids = table["item_id"].to_numpy()
            known = table["brand"] != "unknown"
            codes = pd.factorize(table["brand"])[0]
            brand[ids[known]] = codes[known.to_numpy()]
            category[ids] = pd.factorize(table["category_l2"])[0]
        return ItemInfo(brand=brand, category=category, vectors=vectors)


def union_candidates(lists: list[np.ndarray]) -> np.ndarray:
    """Per-row union of item-id lists, padded with 0 (each row's items unique, sorted)."""
    stacked = np.sort(np.concatenate(lists, axis=1), axis=1)
    duplicate = np.zeros_like(stacked, dtype=bool)
    duplicate[:, 1:] = stacked[:, 1:] == stacked[:, :-1]
    stacked = np.where(duplicate | (stacked <= 0), np.iinfo(np.int32).max, stacked)
    stacked = np.sort(stacked, axis=1)
    width = int((stacked < np.iinfo(np.int32).max).sum(axis=1).max(initial=1))
    out = stacked[:, :width]
    return np.where(out == np.iinfo(np.int32).max, 0, out).astype(np.int64)


def _gather(matrix: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    return np.take_along_axis(np.asarray(matrix), candidates, axis=1).astype(np.float32)


def generator_features(
    models: StageModels, rows: np.ndarray, position: np.ndarray, candidates: np.ndarray, n: int
) -> dict[str, np.ndarray]:
    """Each generator's score, gap to the user's best score and rank for every candidate."""
    feats: dict[str, np.ndarray] = {}
    index = np.arange(rows.size)[:, None]
    in_lists = np.zeros(candidates.shape, dtype=np.float32)
    for name, scorer in models.generators.items():
        scores = np.asarray(scorer.scores(rows), dtype=np.float32)
        top = models.measured[name].top[position[rows]]
        best = np.take_along_axis(scores, top[:, :1].astype(np.int64), axis=1)
        ranks = np.full(scores.shape, top.shape[1] + 1, dtype=np.float32)
        ranks[np.broadcast_to(index, top.shape), top] = np.arange(1, top.shape[1] + 1)
        feats[f"{name}_score"] = _gather(scores, candidates)
        feats[f"{name}_gap"] = best - feats[f"{name}_score"]
        feats[f"{name}_rank"] = _gather(ranks, candidates)
        if name not in ("blend", "popularity"):
            in_lists += feats[f"{name}_rank"] <= n
    feats["n_lists"] = in_lists
    return feats


def relation_features(
    models: StageModels, info: ItemInfo, rows: np.ndarray, candidates: np.ndarray
) -> dict[str, np.ndarray]:
    """How each candidate relates to the user's last items: transitions, EASE, content, brand."""
    feats: dict[str, np.ndarray] = {}
    recent = models.history.recent(rows, 5)
    transitions = models.generators["transitions"].matrix  # type: ignore[attr-defined]
    steps = np.stack([_gather(transitions[recent[:, j]].toarray(), candidates) for j in range(5)])
    for j in range(3):
        feats[f"trans_last{j + 1}"] = steps[j]
    reverse = transitions.T.tocsr()[recent[:, 0]].toarray()
    feats["trans_to_last"] = _gather(reverse, candidates)
    linked = steps > 0
    feats["trans_gap"] = np.where(linked.any(axis=0), linked.argmax(axis=0) + 1, 6).astype(
        np.float32
    )
    if "ease" in models.generators:
        weights = models.generators["ease"].weights  # type: ignore[attr-defined]
        feats["ease_last1"] = _gather(weights[recent[:, 0]], candidates)
    if info.vectors is not None:
        sims = np.stack(
            [_gather(info.vectors[recent[:, j]] @ info.vectors.T, candidates) for j in range(3)]
        )
        feats["content_last1"], feats["content_last2"] = sims[0], sims[1]
        feats["content_max3"] = sims.max(axis=0)
    feats |= attribute_features(models.history, info, rows, candidates, recent[:, 0])
    return feats


def attribute_features(
    history: History, info: ItemInfo, rows: np.ndarray, candidates: np.ndarray, last: np.ndarray
) -> dict[str, np.ndarray]:
    """Same brand / category as the last item, and the share of history in each."""
    feats: dict[str, np.ndarray] = {}
    lengths = np.maximum(history.lengths()[rows], 1).astype(np.float32)[:, None]
    binary = history.query(rows)
    for name, codes in (("brand", info.brand), ("category", info.category)):
        cand_codes = codes[candidates]
        known = cand_codes >= 0
        feats[f"same_{name}_last"] = (known & (cand_codes == codes[last][:, None])).astype(
            np.float32
        )
        n_codes = int(codes.max(initial=-1)) + 2
        onehot = sp.csr_matrix(
            (np.ones(codes.size, dtype=np.float32), (np.arange(codes.size), codes + 1)),
            shape=(codes.size, n_codes),
        )
        per_user = (binary @ onehot).toarray()
        share = np.take_along_axis(per_user, cand_codes + 1, axis=1) / lengths
        feats[f"{name}_share"] = np.where(known, share, 0.0).astype(np.float32)
    return feats


def recent_popularity(history: History, n_last: int = 3) -> np.ndarray:
    """How often each item is among the last ``n_last`` items of a history (a trend proxy)."""
    recent = history.recent(np.arange(history.n_users), n_last)
    return np.bincount(recent.ravel(), minlength=history.n_items + 1).astype(np.float32)


def candidate_frame(
    models: StageModels,
    info: ItemInfo,
    split: LooSplit,
    rows: np.ndarray,
    n: int,
    trend: np.ndarray,
) -> pd.DataFrame:
    """Candidates (union of every generator's top ``n``) and features for a batch of users.

    One row per (user, candidate): ``query_id`` (the user row), ``product_id`` (the item,
    not a feature), ``label`` (1 if it is the stage's target) and the features.
    """
    position = row_positions(models.measured["popularity"].user_rows, split.n_users)
    lists = [m.top[position[rows], :n] for g, m in models.measured.items() if g != "popularity"]
    candidates = union_candidates(lists)
    feats = generator_features(models, rows, position, candidates, n)
    feats |= relation_features(models, info, rows, candidates)
    feats["pop_recent"] = trend[candidates]
    feats["user_length"] = np.broadcast_to(
        models.history.lengths()[rows, None].astype(np.float32), candidates.shape
    )
    valid = candidates > 0
    targets = split.targets(models.stage)[rows]
    frame = pd.DataFrame(
        {
            "query_id": np.broadcast_to(rows[:, None], candidates.shape)[valid],
            "product_id": candidates[valid],
            "label": (candidates == targets[:, None])[valid].astype(np.int8),
        }
    )
    for name, values in feats.items():
        frame[name] = np.asarray(values, dtype=np.float32)[valid]
    return frame


def build_frames(
    models: StageModels,
    info: ItemInfo,
    split: LooSplit,
    n: int,
    batch_size: int,
    progress: bool,
) -> pd.DataFrame:
    """Candidate frames for every user with a target at the models' stage."""
    from rich.progress import track

    user_rows = models.measured["popularity"].user_rows
    trend = recent_popularity(models.history)
    batches = [user_rows[i : i + batch_size] for i in range(0, user_rows.size, batch_size)]
    frames = [
        candidate_frame(models, info, split, rows, n, trend)
        for rows in track(
            batches, description=f"ranker features ({models.label})", disable=not progress
        )
    ]
    return pd.concat(frames, ignore_index=True)


# Ranker


@dataclass(frozen=True)
class RankerSplit:
    """Validation users for the ranker: fit, early stopping, and the reported figure."""

    fit: np.ndarray
    stop: np.ndarray
    report: np.ndarray

    @staticmethod
    def of(user_rows: np.ndarray, seed: int = 0) -> RankerSplit:
        """80% fit, 10% early stopping, 10% held out for the reported validation figure."""
        shuffled = np.random.default_rng(seed).permutation(user_rows)
        a, b = int(0.8 * shuffled.size), int(0.9 * shuffled.size)
        return RankerSplit(np.sort(shuffled[:a]), np.sort(shuffled[a:b]), np.sort(shuffled[b:]))


def with_positives(frame: pd.DataFrame) -> pd.DataFrame:
    """Only queries that hold their target (the others carry no ranking signal)."""
    has = frame.groupby("query_id")["label"].transform("max") > 0
    return frame[has]


def shifted_split(split: LooSplit) -> LooSplit:
    """One step earlier: each training prefix without its last item, which becomes the target.

    Extra ranker training queries whose targets are training items, never validation or test
    items. Users with fewer than 2 training items get no target.
    """
    counts = np.diff(split.indptr)
    has = counts >= 2
    last = split.indptr[1:] - 1
    keep = np.ones(split.train_items.size, dtype=bool)
    keep[last[has]] = False
    indptr = np.zeros_like(split.indptr)
    np.cumsum(counts - has, out=indptr[1:])
    targets = np.zeros(split.n_users, dtype=np.int64)
    targets[has] = split.train_items[last[has]]
    return LooSplit(
        indptr=indptr,
        train_items=split.train_items[keep],
        validation_targets=targets,
        test_targets=np.zeros(split.n_users, dtype=np.int64),
        n_items=split.n_items,
    )


def fit_ranker(
    frame: pd.DataFrame, users: RankerSplit, params: Any, extra: pd.DataFrame | None = None
) -> Any:
    """Train XGBoost ``rank:ndcg`` on the fit users, stopping early on the stop users.

    ``extra`` (shifted queries, :func:`shifted_split`) joins the training set with its query
    ids moved past every user row.
    """
    from shoprank.ranking.model import train_ranker

    queries = frame["query_id"].to_numpy()
    train = with_positives(frame[np.isin(queries, users.fit)])
    if extra is not None:
        offset = int(queries.max(initial=0)) + 1
        extra = with_positives(extra).assign(query_id=lambda f: f["query_id"] + offset)
        train = pd.concat([train, extra], ignore_index=True)
    stop = with_positives(frame[np.isin(queries, users.stop)])
    return train_ranker(train, stop, params)


def frame_score_fn(
    frame: pd.DataFrame, predictions: np.ndarray, n_users: int, fallback: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """Full-catalog scores: ranker predictions for candidates, far below them the fallback."""
    order = np.argsort(frame["query_id"].to_numpy(), kind="stable")
    queries = frame["query_id"].to_numpy()[order]
    items = frame["product_id"].to_numpy()[order]
    values = np.asarray(predictions, dtype=np.float64)[order]
    starts = np.searchsorted(queries, np.arange(n_users + 1))
    base = (fallback / max(float(fallback.max()), 1.0) - 1e6).astype(np.float64)

    def score(rows: np.ndarray) -> np.ndarray:
        out = np.tile(base, (rows.size, 1))
        for i, row in enumerate(rows):
            lo, hi = starts[row], starts[row + 1]
            out[i, items[lo:hi]] = values[lo:hi]
        return out

    return score


def only_users(split: LooSplit, stage: Stage, users: np.ndarray) -> LooSplit:
    """The split with the ``stage`` targets of every user outside ``users`` removed."""
    keep = np.zeros(split.n_users, dtype=bool)
    keep[users] = True
    field_name = "validation_targets" if stage == "validation" else "test_targets"
    targets = np.where(keep, split.targets(stage), 0)
    return replace(split, **{field_name: targets})


# Whole run


@dataclass
class BeautyReport:
    """Everything :func:`write_reports` writes."""

    approaches: dict[str, dict[str, dict[str, float]]]
    hyperparameters: dict[str, Any]
    seconds: dict[str, float]
    notes: list[str]
    candidates: dict[str, float]
    trials: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary: ``approaches`` is approach -> stage -> metric."""
        return {
            "protocol": (
                "leave-one-out full ranking over all items, history masked "
                "(shoprank.evaluation.leave_one_out.evaluate_scores)"
            ),
            "approaches": self.approaches,
            "published": PUBLISHED,
            "hyperparameters": self.hyperparameters,
            "validation_search": self.trials,
            "candidates": self.candidates,
            "seconds": self.seconds,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class RunConfig:
    """Knobs of :func:`run_on_split` (the defaults are the real run's)."""

    grids: dict[str, dict[str, list]] = field(default_factory=lambda: DEFAULT_GRIDS)
    n_candidates: int = 50
    batch_size: int = 1024
    ranker_params: dict[str, Any] = field(
        default_factory=lambda: {
            "n_estimators": 500,
            "learning_rate": 0.08,
            "max_depth": 6,
            "min_child_weight": 10.0,
            "early_stopping_rounds": 30,
            "monotone": (),
        }
    )
    #: Also train on shifted queries (:func:`shifted_split`). Off: on the held-out validation
    #: users it scored NDCG@10 0.0801 against 0.0836 without them (docs/datasets.md).
    shifted_training: bool = False
    seed: int = 0


class _Clock:
    """Named wall-clock laps."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._start, 1)
        self._start = now

    def total(self) -> float:
        return round(sum(self.seconds.values()), 1)


@dataclass
class RankerRun:
    """The trained ranker and its validation measurements."""

    model: Any
    validation: Measured
    blend_on_held_out: Measured
    users: RankerSplit
    recall: float
    n_train_queries: int


def shifted_frames(
    split: LooSplit,
    info: ItemInfo,
    valid: StageModels,
    config: RunConfig,
    progress: bool,
    log: Callable[[str], None],
) -> pd.DataFrame:
    """Candidate frames one step earlier (:func:`shifted_split`), with the chosen parameters."""
    shifted = shifted_split(split)
    early = fit_stage(shifted, "validation", info.vectors, valid.params, {}, log, "shifted")
    fit_blend(shifted, early, valid.params["blend"], {})
    return build_frames(early, info, shifted, config.n_candidates, config.batch_size, progress)


def validation_ranker(
    split: LooSplit,
    info: ItemInfo,
    valid: StageModels,
    config: RunConfig,
    progress: bool,
    extra: pd.DataFrame | None,
) -> RankerRun:
    """Train the ranker on validation targets and measure it on the held-out 10% of users."""
    from shoprank.ranking.model import RankerParams

    frame = build_frames(valid, info, split, config.n_candidates, config.batch_size, progress)
    users = RankerSplit.of(valid.measured["popularity"].user_rows, config.seed)
    params = RankerParams(seed=config.seed, **config.ranker_params)
    model = fit_ranker(frame, users, params, extra)
    report_split = only_users(split, "validation", users.report)
    held_out = frame[np.isin(frame["query_id"].to_numpy(), users.report)]
    popularity = valid.generators["popularity"].counts  # type: ignore[attr-defined]
    score_fn = frame_score_fn(held_out, model.predict(held_out), split.n_users, popularity)
    has_target = frame.groupby("query_id")["label"].max()
    n_extra = 0 if extra is None else int(extra.groupby("query_id")["label"].max().sum())
    return RankerRun(
        model=model,
        validation=measure(score_fn, report_split, "validation"),
        blend_on_held_out=measure(valid.generators["blend"].scores, report_split, "validation"),
        users=users,
        recall=float(has_target.mean()),
        n_train_queries=int(has_target.reindex(users.fit, fill_value=0).sum()) + n_extra,
    )


def score_test(
    split: LooSplit,
    info: ItemInfo,
    test: StageModels,
    model: Any,
    config: RunConfig,
    progress: bool,
) -> tuple[Measured, dict[str, float]]:
    """Score the test targets once with the trained ranker; also candidate recall and count."""
    frame = build_frames(test, info, split, config.n_candidates, config.batch_size, progress)
    popularity = test.generators["popularity"].counts  # type: ignore[attr-defined]
    score_fn = frame_score_fn(frame, model.predict(frame), split.n_users, popularity)
    has_target = frame.groupby("query_id")["label"].max()
    stats = {
        "test_recall": round(float(has_target.mean()), 4),
        "mean_candidates_per_user": round(len(frame) / max(has_target.size, 1), 1),
    }
    return measure(score_fn, split, "test"), stats


def run_on_split(
    split: LooSplit,
    info: ItemInfo,
    config: RunConfig | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> BeautyReport:
    """Every approach on a leave-one-out split: tune on validation, refit, score test once.

    Args:
        split: From :func:`~shoprank.evaluation.leave_one_out.loo_split`.
        info: Item brand/category codes and title vectors (``vectors=None`` skips content).
        config: Grids, candidate list length, ranker settings.
        progress: Show progress bars.
        log: Where one-line progress messages go.

    Returns:
        Metrics per approach and stage, chosen hyper-parameters, timings and notes.
    """
    config = config or RunConfig()
    clock = _Clock()
    # Validation: search every generator and the blend
    valid = fit_stage(split, "validation", info.vectors, None, config.grids, log)
    fit_blend(split, valid, None, config.grids.get("blend", {}))
    log(f"validation blend: NDCG@10 {valid.measured['blend'].ndcg10:.4f} {valid.params['blend']}")
    clock.lap("validation generators and blend")
    extra = None
    if config.shifted_training:
        extra = shifted_frames(split, info, valid, config, progress, log)
        clock.lap("shifted training queries")
    ranker = validation_ranker(split, info, valid, config, progress, extra)
    log(f"validation ranker (held-out users): NDCG@10 {ranker.validation.ndcg10:.4f}")
    clock.lap("validation ranker")
    # Test: refit with the chosen parameters, score once
    test = fit_stage(split, "test", info.vectors, valid.params, {}, log)
    fit_blend(split, test, valid.params["blend"], {})
    ranker_test, stats = score_test(split, info, test, ranker.model, config, progress)
    log(f"test ranker: NDCG@10 {ranker_test.ndcg10:.4f}")
    clock.lap("test refit and scoring")
    return assemble_report(valid, test, ranker, ranker_test, stats, config, clock)


def assemble_report(
    valid: StageModels,
    test: StageModels,
    ranker: RankerRun,
    ranker_test: Measured,
    stats: dict[str, float],
    config: RunConfig,
    clock: _Clock,
) -> BeautyReport:
    """Metrics per approach and stage, chosen parameters, candidates, timings and notes."""
    approaches = {
        name: {"validation": measured.metrics, "test": test.measured[name].metrics}
        for name, measured in valid.measured.items()
    }
    approaches["ranker"] = {"validation": ranker.validation.metrics, "test": ranker_test.metrics}
    model = ranker.model
    hyper = dict(valid.params) | {
        "ranker": {
            "n_candidates_per_generator": config.n_candidates,
            "shifted_training": config.shifted_training,
            "n_train_queries": ranker.n_train_queries,
            "best_iteration": int(model.booster.best_iteration),
            "features": list(model.columns),
            **{k: v for k, v in config.ranker_params.items() if k != "monotone"},
        }
    }
    extra = " plus every user's shifted query (last training item from the prefix before it)"
    notes = [
        "Every hyper-parameter was chosen on validation NDCG@10 (one pass of coordinate search); "
        "test was scored once after refitting on training prefixes + validation items. The "
        "starting points are the winners of an earlier, wider validation-only search.",
        f"ranker validation is on {ranker.users.report.size} held-out users (10%); the blend "
        f"scores NDCG@10 {ranker.blend_on_held_out.ndcg10:.4f} on the same users.",
        "ranker fit on 80% of users' validation targets"
        f"{extra if config.shifted_training else ''}, early stopping on another 10%.",
    ]
    candidates = {"validation_recall": round(ranker.recall, 4)} | stats
    clock.seconds["total"] = clock.total()
    return BeautyReport(approaches, hyper, clock.seconds, notes, candidates, valid.trials)


def run_beauty(
    data_dir: Path, cache_dir: Path, progress: bool = True, log: Callable[[str], None] = print
) -> BeautyReport:
    """Load Amazon Beauty, embed titles (cached in ``cache_dir``) and run every approach."""
    from shoprank.datasets.amazon_beauty import load_beauty

    started = time.perf_counter()
    data = load_beauty(data_dir)
    split = loo_split(data.sequences(), data.n_items)
    vectors = title_vectors(data, cache_dir, progress)
    embed_seconds = round(time.perf_counter() - started, 1)
    log(f"loaded and embedded titles in {embed_seconds:.0f} s")
    info = ItemInfo.from_attributes(data.attributes, data.n_items, vectors)
    report = run_on_split(split, info, progress=progress, log=log)
    report.seconds = {"load and embed titles": embed_seconds} | report.seconds
    report.seconds["total"] = round(time.perf_counter() - started, 1)
    return report


# Reports


def markdown_table(report: BeautyReport) -> str:
    """Our rows (validation and test) beside the published rows (test)."""
    lines = [
        "| approach | source | stage | " + " | ".join(METRICS) + " |",
        "|---|---|---|" + "---|" * len(METRICS),
    ]
    for name, stages in report.approaches.items():
        for stage in ("validation", "test"):
            values = " | ".join(f"{stages[stage][m]:.4f}" for m in METRICS)
            lines.append(f"| {name} | shoprank | {stage} | {values} |")
    for name, metrics in PUBLISHED.items():
        values = " | ".join(f"{metrics[m]:.4f}" for m in METRICS)
        lines.append(f"| {name} | published | test | {values} |")
    return "\n".join(lines)


def write_reports(report: BeautyReport, out_dir: Path) -> tuple[Path, Path]:
    """Write ``beauty.json`` and ``beauty.md`` into ``out_dir``."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "beauty.json", out_dir / "beauty.md"
    json_path.write_text(json.dumps(report.to_dict(), indent=2, default=float) + "\n")
    params = "\n".join(f"- {name}: `{p}`" for name, p in report.hyperparameters.items())
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items())
    md_path.write_text(
        "# Amazon Beauty, leave-one-out full ranking\n\n"
        "Published rows are copied from the dataset README (test only). Ours: validation and "
        "test, every hyper-parameter chosen on validation.\n\n"
        f"{markdown_table(report)}\n\n## Chosen hyper-parameters\n\n{params}\n\n"
        f"## Candidates\n\n`{report.candidates}`\n\n## Wall time\n\n{timings}\n\n"
        "## Notes\n\n" + "\n".join(f"- {n}" for n in report.notes) + "\n"
    )
    return json_path, md_path
