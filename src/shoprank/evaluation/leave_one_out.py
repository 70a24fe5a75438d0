"""Leave-one-out full-ranking evaluation for sequence data (the Amazon Beauty protocol).

For every user the last item is the test target, the second-to-last the validation target and the
rest training (:func:`loo_split`). A model scores all items; :func:`evaluate_scores` masks the
user's history, ranks the target against every other item and reports HR@K and NDCG@K averaged
over users. :func:`popularity_scores` is the leak-free popularity baseline used to check the
protocol against the published numbers (docs/datasets.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Stage = Literal["validation", "test"]
ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class LooSplit:
    """A leave-one-out split of user sequences.

    Attributes:
        indptr: CSR offsets of the training prefixes, ``(n_users + 1,)`` int64.
        train_items: Training item ids, user after user, chronological (int64).
        validation_targets: Validation target per user row; 0 = none (int64).
        test_targets: Test target per user row; 0 = none (int64).
        n_items: Largest item id; item ids run 1..n_items and index 0 is unused.
    """

    indptr: np.ndarray
    train_items: np.ndarray
    validation_targets: np.ndarray
    test_targets: np.ndarray
    n_items: int

    @property
    def n_users(self) -> int:
        """Number of user rows (including users without targets)."""
        return int(self.validation_targets.size)

    def train_sequence(self, row: int) -> np.ndarray:
        """Training prefix of user row ``row``."""
        return self.train_items[self.indptr[row] : self.indptr[row + 1]]

    def targets(self, stage: Stage) -> np.ndarray:
        """Targets of ``stage`` per user row (0 = the user has none)."""
        if stage not in ("validation", "test"):
            raise ValueError(f"stage must be 'validation' or 'test', got {stage!r}")
        return self.validation_targets if stage == "validation" else self.test_targets


def loo_split(sequences: Sequence[np.ndarray], n_items: int | None = None) -> LooSplit:
    """Split each chronological sequence into training prefix, validation and test target.

    Users with fewer than 3 items get no targets (0) and their whole sequence is training, as in
    SASRec's ``data_partition``; they are skipped by :func:`evaluate_scores` but their items count
    as history (and as popularity). Amazon Beauty has no such user (every user has >= 5 items).

    Args:
        sequences: Item-id arrays per user row, oldest first; ids in 1..n_items.
        n_items: Largest item id; default the largest id seen.

    Returns:
        The split, with one row per input sequence in the same order.
    """
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    has_targets = lengths >= 3
    n_train = np.where(has_targets, lengths - 2, lengths)
    indptr = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(n_train, out=indptr[1:])
    flat = [np.asarray(s, dtype=np.int64) for s in sequences]
    train = [s[:m] for s, m in zip(flat, n_train, strict=True)]
    train_items = np.concatenate(train) if train else np.zeros(0, dtype=np.int64)
    validation = np.array([s[-2] if ok else 0 for s, ok in zip(flat, has_targets, strict=True)])
    test = np.array([s[-1] if ok else 0 for s, ok in zip(flat, has_targets, strict=True)])
    if n_items is None:
        n_items = int(max((int(s.max()) for s in flat if s.size), default=0))
    return LooSplit(
        indptr=indptr,
        train_items=train_items,
        validation_targets=validation.astype(np.int64),
        test_targets=test.astype(np.int64),
        n_items=int(n_items),
    )


def mask_history(scores: np.ndarray, split: LooSplit, rows: np.ndarray, stage: Stage) -> None:
    """Set, in place, the scores of items the user already has to ``-inf``.

    Masked per row: column 0 (no item), the training prefix, and for ``stage="test"`` also the
    validation target. A target that is itself in the history is masked too and so is a miss
    (no Beauty user repeats an item).

    Args:
        scores: ``(len(rows), n_items + 1)`` float scores, changed in place.
        split: The split.
        rows: User rows of the batch.
        stage: ``"validation"`` or ``"test"``.
    """
    starts, stops = split.indptr[rows], split.indptr[rows + 1]
    counts = stops - starts
    batch_pos = np.repeat(np.arange(rows.size), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    scores[batch_pos, split.train_items[np.repeat(starts, counts) + offsets]] = -np.inf
    scores[:, 0] = -np.inf
    if stage == "test":
        validation = split.validation_targets[rows]
        has = validation > 0
        scores[np.flatnonzero(has), validation[has]] = -np.inf


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of each row's target, ties split evenly.

    ``rank = 1 + #(scores > target score) + #(other items with an equal score) / 2``: the expected
    rank when ties are broken uniformly at random (half-integers are possible), neither optimistic
    nor pessimistic. Masked (``-inf``) items never outrank a finite target.

    Args:
        scores: ``(n, n_items + 1)`` scores after masking.
        targets: ``(n,)`` target item ids.

    Returns:
        ``(n,)`` float64 ranks.
    """
    target_scores = scores[np.arange(targets.size), targets][:, None]
    greater = (scores > target_scores).sum(axis=1)
    equal = (scores == target_scores).sum(axis=1) - 1
    return 1.0 + greater + 0.5 * equal


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """HR@K and NDCG@K (``1 / log2(rank + 1)`` if ``rank <= K`` else 0), averaged over users."""
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks <= k
        out[f"HR@{k}"] = float(hit.mean()) if ranks.size else 0.0
        gain = np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0)
        out[f"NDCG@{k}"] = float(gain.mean()) if ranks.size else 0.0
    return out


def evaluate_scores(
    score_fn: ScoreFn,
    split: LooSplit,
    stage: Stage = "test",
    ks: Sequence[int] = (10, 20),
    batch_size: int = 1024,
) -> dict[str, object]:
    """Full-ranking leave-one-out evaluation of a scoring function.

    Args:
        score_fn: Maps user rows ``(b,)`` to float scores ``(b, n_items + 1)`` over all item ids
            (column 0 unused). It must only use the history allowed for ``stage``: the training
            prefix for validation, training prefix + validation target for test.
        split: From :func:`loo_split`.
        stage: ``"validation"`` or ``"test"``.
        ks: Cut-offs.
        batch_size: Users per call of ``score_fn``.

    Returns:
        ``{"stage", "n_users", "HR@K", "NDCG@K" for each K, "user_rows", "ranks"}`` where
        ``ranks[i]`` is the rank of the target of user row ``user_rows[i]`` (users with a target).

    Raises:
        ValueError: on a bad stage, batch size or score shape.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    targets = split.targets(stage)
    user_rows = np.flatnonzero(targets > 0)
    ranks = np.empty(user_rows.size, dtype=np.float64)
    for lo in range(0, user_rows.size, batch_size):
        rows = user_rows[lo : lo + batch_size]
        scores = np.array(score_fn(rows), dtype=np.float64, copy=True)
        if scores.shape != (rows.size, split.n_items + 1):
            raise ValueError(
                f"score_fn returned shape {scores.shape}, expected {(rows.size, split.n_items + 1)}"
            )
        mask_history(scores, split, rows, stage)
        ranks[lo : lo + rows.size] = target_ranks(scores, targets[rows])
    result: dict[str, object] = {"stage": stage, "n_users": int(user_rows.size)}
    result.update(metrics_from_ranks(ranks, ks))
    result.update(user_rows=user_rows, ranks=ranks)
    return result


def popularity_scores(split: LooSplit, stage: Stage) -> np.ndarray:
    """Leak-free item popularity: interaction counts from the history available at ``stage``.

    Validation counts the training prefixes of all users; test counts the training prefixes
    plus every user's validation target. Targets of the stage being scored are never counted.

    Returns:
        ``(n_items + 1,)`` float64 counts (index 0 is 0).
    """
    items = split.train_items
    if split.targets(stage) is split.test_targets:
        items = np.concatenate([items, split.validation_targets[split.validation_targets > 0]])
    return np.bincount(items, minlength=split.n_items + 1).astype(np.float64)


def constant_score_fn(scores: np.ndarray) -> ScoreFn:
    """A ``score_fn`` that gives every user the same item scores (e.g. popularity)."""

    def score(rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(scores, (rows.size, scores.size))

    return score
