"""Offline ranking metrics, beyond-accuracy metrics and bootstrap confidence intervals.

Conventions shared by every function here:

* ``recs`` is an int ``(n_users, K)`` matrix of item ids ranked best-first; ``-1`` pads short
  lists and is ignored everywhere. Item ids are ``1..n_items`` (0 is reserved), so side arrays
  (``item_vectors``, ``item_categories``, ``item_popularity``) are indexed by item id and have
  ``n_items + 1`` rows.
* A repeated item in a list counts once for accuracy metrics (its first position).
* ``k`` larger than ``K`` uses the whole list.
* Per-user metrics return one float per row of ``recs`` (float64). Users without relevant items
  get 0 for every accuracy metric: the caller decides who is evaluated. Users whose list is
  empty (all padding) get 0 for the list-level metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Gains = Literal["grade", "purchase"]
PURCHASE = 3
_SHIFT = 32  # (user_row << _SHIFT) | item_id is the lookup key of a (user, item) pair
_CHUNK_ELEMENTS = 4_000_000  # elements per temporary block in the chunked computations


@dataclass(frozen=True)
class Relevance:
    """Relevant items per evaluated user, in a CSR layout.

    Row ``r`` describes user ``user_ids[r]``: its items are ``items[indptr[r]:indptr[r + 1]]``
    (sorted ascending), with the matching ``grades`` and ``revenue``.

    Attributes:
        user_ids: Evaluated user ids, in the row order of the recommendation matrix.
        indptr: CSR offsets, ``(n_users + 1,)`` int64.
        items: Relevant item ids, user after user, ascending within a user (int64).
        grades: Grade per relevant item: 1 view, 2 cart, 3 purchase (int64, >= 1).
        revenue: Money the user spent on the item in the test window (float64, 0 if unknown).
    """

    user_ids: np.ndarray
    indptr: np.ndarray
    items: np.ndarray
    grades: np.ndarray
    revenue: np.ndarray

    @property
    def n_users(self) -> int:
        """Number of evaluated users (rows)."""
        return int(self.user_ids.size)

    @property
    def n_relevant(self) -> np.ndarray:
        """Number of relevant items per user row (int64)."""
        return np.diff(self.indptr)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, user_ids: np.ndarray | Sequence[int]) -> Relevance:
        """Build the relevance of ``user_ids`` from a long frame of graded interactions.

        Rows of users not in ``user_ids`` and rows with ``grade <= 0`` are dropped. Duplicate
        ``(user_id, item_id)`` rows are merged: highest grade, summed revenue.

        Args:
            df: Columns ``user_id``, ``item_id``, ``grade`` (int) and optionally ``revenue``.
            user_ids: Unique ids of the evaluated users, in recommendation-matrix row order.

        Returns:
            The relevance, one row per entry of ``user_ids``.

        Raises:
            ValueError: If ``user_ids`` has duplicates or item ids are out of range.
        """
        users = np.asarray(user_ids, dtype=np.int64)
        index = pd.Index(users)
        if not index.is_unique:
            raise ValueError("user_ids must be unique")
        revenue = df["revenue"] if "revenue" in df.columns else np.zeros(len(df))
        frame = pd.DataFrame(
            {
                "row": index.get_indexer(df["user_id"].to_numpy()),
                "item": df["item_id"].to_numpy(np.int64),
                "grade": df["grade"].to_numpy(np.int64),
                "revenue": np.nan_to_num(np.asarray(revenue, dtype=np.float64)),
            }
        )
        frame = frame[(frame["row"] >= 0) & (frame["grade"] > 0)]
        _check_item_ids(frame["item"].to_numpy())
        merged = frame.groupby(["row", "item"], sort=True).agg(
            grade=("grade", "max"), revenue=("revenue", "sum")
        )
        rows = merged.index.get_level_values("row").to_numpy(np.int64)
        counts = np.bincount(rows, minlength=users.size)
        return cls(
            user_ids=users,
            indptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            items=merged.index.get_level_values("item").to_numpy(np.int64),
            grades=merged["grade"].to_numpy(np.int64),
            revenue=merged["revenue"].to_numpy(np.float64),
        )


def _check_item_ids(items: np.ndarray) -> None:
    """Raise ValueError unless every id fits the ``(row << 32) | item`` lookup key."""
    if items.size and (items.min() < 0 or items.max() >= 2**_SHIFT):
        raise ValueError(f"item ids must be in [0, 2**{_SHIFT}) (padding -1 only in recs)")


def _top(recs: np.ndarray, k: int | None = None) -> np.ndarray:
    """Validate ``recs`` and return its first ``k`` columns as int64 (all when ``k`` is None)."""
    top = np.asarray(recs)
    if top.ndim != 2 or top.dtype.kind not in "iu":
        raise ValueError(f"recs must be a 2-d integer array, got {top.dtype} {top.shape}")
    if k is not None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        top = top[:, :k]
    return top.astype(np.int64, copy=False)


def _user_rows(rel: Relevance) -> np.ndarray:
    """Row index of every relevant entry of ``rel`` (aligned with ``rel.items``)."""
    return np.repeat(np.arange(rel.n_users, dtype=np.int64), rel.n_relevant)


def _match(top: np.ndarray, rel: Relevance) -> np.ndarray:
    """Position in ``rel.items`` of every recommended item, -1 where it is not relevant.

    Padding and repeats of an item already listed earlier for the same user map to -1.
    """
    if top.shape[0] != rel.n_users:
        raise ValueError(f"recs has {top.shape[0]} rows but relevance has {rel.n_users} users")
    _check_item_ids(top[top >= 0])
    keys = (_user_rows(rel) << _SHIFT) | rel.items  # sorted: rows ascend, items ascend within
    if keys.size == 0:
        return np.full(top.shape, -1, dtype=np.int64)
    rows = np.arange(top.shape[0], dtype=np.int64)[:, None]
    query = (rows << _SHIFT) | np.maximum(top, 0)
    pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    found = np.flatnonzero((keys[pos] == query) & (top >= 0))
    _, first = np.unique(pos.ravel()[found], return_index=True)  # first listing of each pair
    out = np.full(top.size, -1, dtype=np.int64)
    out[found[first]] = pos.ravel()[found[first]]
    return out.reshape(top.shape)


def _hit_grades(match: np.ndarray, rel: Relevance) -> np.ndarray:
    """Grade of every recommended item (0 = not relevant), from :func:`_match` output."""
    if rel.items.size == 0:
        return np.zeros(match.shape, dtype=np.int64)
    return np.where(match >= 0, rel.grades[np.maximum(match, 0)], 0)


def _discounts(k: int) -> np.ndarray:
    """DCG position discounts ``1 / log2(rank + 1)`` for ranks 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _ideal_dcg(rel: Relevance, k: int, gains: Gains) -> np.ndarray:
    """Ideal DCG@k per user: the user's own relevant grades sorted best-first, capped at k."""
    cum = np.concatenate([[0.0], np.cumsum(_discounts(k))])
    rows = _user_rows(rel)
    if gains == "purchase":
        levels, weights = np.array([PURCHASE]), np.array([1.0])
    else:
        levels = np.unique(rel.grades)[::-1]
        weights = np.exp2(levels.astype(np.float64)) - 1.0
    filled = np.zeros(rel.n_users, dtype=np.int64)
    total = np.zeros(rel.n_users)
    for level, weight in zip(levels, weights, strict=True):  # a few distinct grades, best first
        count = np.bincount(rows[rel.grades == level], minlength=rel.n_users)
        upto = np.minimum(filled + count, k)
        total += weight * (cum[upto] - cum[filled])
        filled = upto
    return total


def _ndcg(grades: np.ndarray, rel: Relevance, k: int, gains: Gains) -> np.ndarray:
    """NDCG@k from a hit-grade matrix (see :func:`ndcg_at_k`)."""
    if gains not in ("grade", "purchase"):
        raise ValueError(f"gains must be 'grade' or 'purchase', got {gains!r}")
    top = grades[:, :k]
    if gains == "purchase":
        gain = (top == PURCHASE).astype(np.float64)
    else:
        gain = np.exp2(top.astype(np.float64)) - 1.0
    dcg = gain @ _discounts(k)[: top.shape[1]]
    ideal = _ideal_dcg(rel, k, gains)
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def ndcg_at_k(recs: np.ndarray, rel: Relevance, k: int, gains: Gains = "grade") -> np.ndarray:
    """Normalised discounted cumulative gain at k, per user.

    With ``gains="grade"`` an item of grade g has gain ``2**g - 1``; the ideal DCG ranks the
    user's own relevant grades best-first, capped at k items. With ``gains="purchase"`` only
    purchases (grade 3) are relevant, with gain 1 (purchase NDCG).

    Args:
        recs: ``(n_users, K)`` ranked item ids, -1 padding.
        rel: Relevance of the same users, same row order.
        k: Cut-off.
        gains: ``"grade"`` (graded) or ``"purchase"`` (purchases only).

    Returns:
        NDCG@k per user in [0, 1]; 0 for users with no relevant (purchased) items.
    """
    top = _top(recs, k)
    return _ndcg(_hit_grades(_match(top, rel), rel), rel, k, gains)


def _recall(grades: np.ndarray, rel: Relevance, k: int) -> np.ndarray:
    """Recall@k from a hit-grade matrix."""
    hits = (grades[:, :k] > 0).sum(axis=1).astype(np.float64)
    n_rel = rel.n_relevant.astype(np.float64)
    return np.divide(hits, n_rel, out=np.zeros_like(hits), where=n_rel > 0)


def recall_at_k(recs: np.ndarray, rel: Relevance, k: int) -> np.ndarray:
    """Share of the user's relevant items (any grade) found in the top k, per user.

    Args:
        recs: ``(n_users, K)`` ranked item ids, -1 padding.
        rel: Relevance of the same users, same row order.
        k: Cut-off.

    Returns:
        Recall@k per user in [0, 1]; 0 for users without relevant items.
    """
    top = _top(recs, k)
    return _recall(_hit_grades(_match(top, rel), rel), rel, k)


def hit_rate_at_k(recs: np.ndarray, rel: Relevance, k: int) -> np.ndarray:
    """1 if any relevant item (any grade) is in the user's top k, else 0, per user.

    Args:
        recs: ``(n_users, K)`` ranked item ids, -1 padding.
        rel: Relevance of the same users, same row order.
        k: Cut-off.

    Returns:
        Hit rate per user (0.0 or 1.0).
    """
    top = _top(recs, k)
    return (_match(top, rel) >= 0).any(axis=1).astype(np.float64)


def _average_precision(grades: np.ndarray, rel: Relevance, k: int) -> np.ndarray:
    """AP@k with binary relevance from a hit-grade matrix."""
    hit = (grades[:, :k] > 0).astype(np.float64)
    ranks = np.arange(1, hit.shape[1] + 1, dtype=np.float64)
    precision_sum = (np.cumsum(hit, axis=1) / ranks * hit).sum(axis=1)
    norm = np.minimum(rel.n_relevant, k).astype(np.float64)
    return np.divide(precision_sum, norm, out=np.zeros_like(precision_sum), where=norm > 0)


def map_at_k(recs: np.ndarray, rel: Relevance, k: int) -> np.ndarray:
    """Average precision at k with binary relevance (any grade), per user.

    AP@k = sum over relevant ranks i <= k of precision@i, divided by min(k, n_relevant).

    Args:
        recs: ``(n_users, K)`` ranked item ids, -1 padding.
        rel: Relevance of the same users, same row order.
        k: Cut-off.

    Returns:
        AP@k per user in [0, 1] (its mean is MAP@k); 0 for users without relevant items.
    """
    top = _top(recs, k)
    return _average_precision(_hit_grades(_match(top, rel), rel), rel, k)


def _reciprocal_rank(grades: np.ndarray) -> np.ndarray:
    """Reciprocal rank of the first relevant item from a hit-grade matrix (0 if none)."""
    hit = grades > 0
    first = hit.argmax(axis=1)
    return np.where(hit.any(axis=1), 1.0 / (first + 1.0), 0.0)


def mrr(recs: np.ndarray, rel: Relevance) -> np.ndarray:
    """Reciprocal rank of the first relevant item (any grade) in the whole list, per user.

    Args:
        recs: ``(n_users, K)`` ranked item ids, -1 padding.
        rel: Relevance of the same users, same row order.

    Returns:
        1 / rank of the first hit per user (its mean is MRR); 0 if the list has no hit.
    """
    top = _top(recs)
    return _reciprocal_rank(_hit_grades(_match(top, rel), rel))


def _revenue(match: np.ndarray, rel: Relevance, k: int) -> np.ndarray:
    """Revenue@k from a :func:`_match` matrix."""
    top = match[:, :k]
    if rel.items.size == 0:
        return np.zeros(top.shape[0])
    safe = np.maximum(top, 0)
    bought = (top >= 0) & (rel.grades[safe] == PURCHASE)
    return np.where(bought, rel.revenue[safe], 0.0).sum(axis=1)


def revenue_at_k(recs: np.ndarray, rel: Relevance, k: int) -> np.ndarray:
    """Revenue of the user's purchased (grade 3) items that appear in the top k, per user.

    Args:
        recs: ``(n_users, K)`` ranked item ids, -1 padding.
        rel: Relevance of the same users, same row order (``revenue`` column).
        k: Cut-off.

    Returns:
        Captured revenue per user (0 when nothing purchased is recommended).
    """
    top = _top(recs, k)
    return _revenue(_match(top, rel), rel, k)


def catalog_coverage(recs: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalog (item ids 1..n_items) that appears in at least one top-k list.

    Args:
        recs: ``(n_users, K)`` ranked item ids, -1 padding.
        n_items: Catalog size.
        k: Cut-off.

    Returns:
        Coverage in [0, 1]; ids outside 1..n_items are ignored.
    """
    top = _top(recs, k).ravel()
    valid = top[(top >= 1) & (top <= n_items)]
    return float(np.unique(valid).size / n_items) if n_items > 0 else 0.0


def _category_diversity(top: np.ndarray, item_categories: np.ndarray) -> np.ndarray:
    """Share of within-list item pairs whose categories differ, per user."""
    valid = top >= 0
    cats = np.asarray(item_categories, dtype=np.int64)[np.maximum(top, 0)]
    rows = np.broadcast_to(np.arange(top.shape[0], dtype=np.int64)[:, None], top.shape)
    offset = cats[valid].min(initial=0)
    keys = (rows[valid] << _SHIFT) | (cats[valid] - offset)
    unique, counts = np.unique(keys, return_counts=True)
    same = np.bincount(unique >> _SHIFT, weights=counts * (counts - 1.0), minlength=top.shape[0])
    m = valid.sum(axis=1).astype(np.float64)
    pairs = m * (m - 1.0)  # ordered pairs, like ``same``
    return np.divide(pairs - same, pairs, out=np.zeros_like(pairs), where=pairs > 0)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32."""
    vec = np.asarray(vectors, dtype=np.float32)
    norm = np.linalg.norm(vec, axis=1, keepdims=True)
    return np.divide(vec, norm, out=np.zeros_like(vec), where=norm > 0)


def _vector_diversity(top: np.ndarray, item_vectors: np.ndarray) -> np.ndarray:
    """Mean pairwise cosine distance within each list, in user chunks.

    Uses sum_{i != j} u_i.u_j = |sum u_i|^2 - sum |u_i|^2 over unit vectors u; zero vectors are
    orthogonal to everything (distance 1).
    """
    unit = _unit_rows(item_vectors)
    n, k = top.shape
    out = np.zeros(n)
    step = max(1, _CHUNK_ELEMENTS // max(1, k * unit.shape[1]))
    for start in range(0, n, step):  # chunks bound the (users, k, d) temporary
        block = top[start : start + step]
        valid = block >= 0
        vec = unit[np.maximum(block, 0)] * valid[..., None]
        total = vec.sum(axis=1, dtype=np.float64)
        self_dot = (vec.astype(np.float64) ** 2).sum(axis=(1, 2))
        m = valid.sum(axis=1).astype(np.float64)
        pairs = m * (m - 1.0)
        cross = (total**2).sum(axis=1) - self_dot
        mean_cos = np.divide(cross, pairs, out=np.zeros_like(cross), where=pairs > 0)
        out[start : start + step] = np.where(pairs > 0, 1.0 - mean_cos, 0.0)
    return out


def intra_list_diversity(
    recs: np.ndarray,
    item_vectors: np.ndarray | None = None,
    k: int = 10,
    *,
    item_categories: np.ndarray | None = None,
) -> np.ndarray:
    """Mean pairwise distance between the items of each top-k list, per user.

    Give exactly one of ``item_vectors`` (distance = cosine distance, 1 - cos) or
    ``item_categories`` (distance = 1 if the categories differ, else 0).

    Args:
        recs: ``(n_users, K)`` ranked item ids, -1 padding.
        item_vectors: ``(n_items + 1, d)`` float array indexed by item id.
        k: Cut-off.
        item_categories: ``(n_items + 1,)`` int category per item id.

    Returns:
        Diversity per user; 0 for lists with fewer than two items.

    Raises:
        ValueError: Unless exactly one of ``item_vectors`` and ``item_categories`` is given.
    """
    if (item_vectors is None) == (item_categories is None):
        raise ValueError("give exactly one of item_vectors and item_categories")
    top = _top(recs, k)
    if item_categories is not None:
        return _category_diversity(top, item_categories)
    return _vector_diversity(top, item_vectors)


def _mean_over_list(top: np.ndarray, per_item: np.ndarray) -> np.ndarray:
    """Mean of ``per_item[item]`` over the valid items of each list (0 for empty lists)."""
    valid = top >= 0
    values = np.where(valid, per_item[np.maximum(top, 0)], 0.0).sum(axis=1)
    m = valid.sum(axis=1).astype(np.float64)
    return np.divide(values, m, out=np.zeros_like(values), where=m > 0)


def novelty(recs: np.ndarray, item_popularity: np.ndarray, k: int) -> np.ndarray:
    """Mean self-information ``-log2 p(item)`` of each top-k list, per user.

    ``p(item)`` is the item's training-window interaction count over the total count. Items
    never interacted with are counted as one interaction, so their novelty is finite (maximal).

    Args:
        recs: ``(n_users, K)`` ranked item ids, -1 padding.
        item_popularity: Interaction count per item id, ``(n_items + 1,)``.
        k: Cut-off.

    Returns:
        Novelty per user in bits; 0 for empty lists.
    """
    counts = np.maximum(np.asarray(item_popularity, dtype=np.float64), 1.0)
    total = max(float(np.asarray(item_popularity, dtype=np.float64).sum()), 1.0)
    info = -np.log2(np.minimum(counts / total, 1.0))
    return _mean_over_list(_top(recs, k), info)


def popularity_percentile(item_popularity: np.ndarray) -> np.ndarray:
    """Popularity percentile of every item id: share of other catalog items strictly less popular.

    Index 0 is not an item: it gets 0 and does not count among the catalog.

    Args:
        item_popularity: Interaction count per item id, ``(n_items + 1,)``.

    Returns:
        ``(n_items + 1,)`` floats in [0, 1]: 0 = least popular (tail), 1 = most popular (head).
    """
    pop = np.asarray(item_popularity, dtype=np.float64)
    catalog = np.sort(pop[1:])
    below = np.searchsorted(catalog, pop, side="left")
    pct = below / max(catalog.size - 1, 1)
    pct[0] = 0.0
    return pct


def popularity_bias(recs: np.ndarray, item_popularity: np.ndarray, k: int) -> np.ndarray:
    """Mean popularity percentile of the items of each top-k list, per user.

    See :func:`popularity_percentile`: 0 means only tail items, 1 only the most popular one.

    Args:
        recs: ``(n_users, K)`` ranked item ids, -1 padding.
        item_popularity: Interaction count per item id, ``(n_items + 1,)``.
        k: Cut-off.

    Returns:
        Popularity bias per user in [0, 1]; 0 for empty lists.
    """
    return _mean_over_list(_top(recs, k), popularity_percentile(item_popularity))


def _bootstrap_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap means of each column of ``values`` ``(n, m)`` -> ``(n_boot, m)``.

    Each replicate resamples the n rows with replacement; all columns share the replicate
    (paired), and the work is one matrix product per chunk of multinomial count vectors.
    """
    n = values.shape[0]
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    out = np.empty((n_boot, values.shape[1]))
    for start in range(0, n_boot, step):  # chunks of replicates bound the count matrix
        size = min(step, n_boot - start)
        draws = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        counts = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n)
        out[start : start + size] = counts @ values / n
    return out


def _intervals(
    values: np.ndarray, n_boot: int, alpha: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means and percentile-bootstrap bounds of the columns of ``values`` ``(n, m)``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    m = values.shape[1]
    if values.shape[0] == 0:
        nan = np.full(m, np.nan)
        return nan, nan.copy(), nan.copy()
    mean = values.mean(axis=0)
    if n_boot <= 0:
        return mean, mean.copy(), mean.copy()
    boots = _bootstrap_means(values, n_boot, seed)
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2], axis=0)
    return mean, low, high


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of per-user values with a percentile bootstrap confidence interval.

    Users are resampled with replacement ``n_boot`` times. The same ``seed`` and number of
    users give the same resamples, so intervals of approaches on the same users are paired.

    Args:
        values: Per-user metric values, ``(n_users,)``.
        n_boot: Bootstrap replicates; 0 gives a degenerate interval (low = high = mean).
        alpha: 1 - confidence level.
        seed: Random seed.

    Returns:
        ``(mean, low, high)``; all NaN when ``values`` is empty.
    """
    column = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    mean, low, high = _intervals(column, n_boot, alpha, seed)
    return float(mean[0]), float(low[0]), float(high[0])


def _accuracy_columns(recs: np.ndarray, rel: Relevance, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-user accuracy metrics of :func:`evaluate`, sharing one item lookup."""
    k = ks[0]
    top = _top(recs)
    match = _match(top, rel)
    grades = _hit_grades(match, rel)
    columns = {f"ndcg@{k}": _ndcg(grades, rel, k, "grade")}
    columns.update({f"recall@{kk}": _recall(grades, rel, kk) for kk in ks})
    columns[f"map@{k}"] = _average_precision(grades, rel, k)
    columns["mrr"] = _reciprocal_rank(grades)
    columns[f"hit_rate@{k}"] = (grades[:, :k] > 0).any(axis=1).astype(np.float64)
    columns[f"purchase_ndcg@{k}"] = _ndcg(grades, rel, k, "purchase")
    columns[f"revenue@{k}"] = _revenue(match, rel, k)
    return columns


def evaluate(
    recs: np.ndarray,
    rel: Relevance,
    *,
    ks: Sequence[int] = (10, 50),
    n_items: int,
    item_popularity: np.ndarray,
    item_categories: np.ndarray | None = None,
    item_vectors: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Every offline metric of one approach on one set of users, with bootstrap CIs.

    ``k = ks[0]`` is the cut-off of ndcg, map, hit_rate, purchase_ndcg, revenue, coverage,
    diversity, novelty and popularity_bias; recall is reported at every k in ``ks``; mrr uses
    the whole list. With the defaults the names are ndcg@10, recall@10, recall@50, map@10, mrr,
    hit_rate@10, purchase_ndcg@10, revenue@10, coverage@10, diversity@10, novelty@10 and
    popularity_bias@10. diversity is omitted when neither ``item_categories`` nor
    ``item_vectors`` is given. Values are means over the users (users without relevant items
    count as 0 for accuracy metrics); coverage is list-level and has ``ci_low = ci_high =
    value``. All CIs share the same bootstrap resamples.

    Args:
        recs: ``(n_users, K)`` ranked item ids, -1 padding.
        rel: Relevance of the same users, same row order.
        ks: Cut-offs; the first is the main one.
        n_items: Catalog size (item ids 1..n_items).
        item_popularity: Training interaction count per item id, ``(n_items + 1,)``.
        item_categories: Category per item id, for category diversity.
        item_vectors: ``(n_items + 1, d)`` item vectors, for cosine diversity.
        n_boot: Bootstrap replicates (0 = no CI: bounds equal the value).
        seed: Bootstrap seed.

    Returns:
        Metric name -> ``{"value", "ci_low", "ci_high"}``.
    """
    ks = tuple(int(kk) for kk in ks)
    if not ks:
        raise ValueError("ks must not be empty")
    k = ks[0]
    columns = _accuracy_columns(recs, rel, ks)
    if item_categories is not None or item_vectors is not None:
        columns[f"diversity@{k}"] = intra_list_diversity(
            recs, item_vectors, k, item_categories=item_categories
        )
    columns[f"novelty@{k}"] = novelty(recs, item_popularity, k)
    columns[f"popularity_bias@{k}"] = popularity_bias(recs, item_popularity, k)
    names = list(columns)
    mean, low, high = _intervals(np.column_stack(list(columns.values())), n_boot, 0.05, seed)
    out = {
        name: {"value": float(mean[i]), "ci_low": float(low[i]), "ci_high": float(high[i])}
        for i, name in enumerate(names)
    }
    coverage = catalog_coverage(recs, n_items, k)
    out[f"coverage@{k}"] = {"value": coverage, "ci_low": coverage, "ci_high": coverage}
    return out


def oracle_share(approach_value: float, oracle_value: float) -> float:
    """Share of the oracle's metric value an approach reaches (approach / oracle).

    Args:
        approach_value: The approach's metric value.
        oracle_value: The oracle's value of the same metric on the same users.

    Returns:
        The ratio; NaN when the oracle value is 0 or not finite.
    """
    if not np.isfinite(oracle_value) or oracle_value == 0:
        return float("nan")
    return float(approach_value) / float(oracle_value)
