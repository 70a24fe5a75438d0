"""Train and apply the XGBoost learning-to-rank model."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from shoprank.ranking.features import LABEL, feature_columns, to_matrix

QUERY = "query_id"


@dataclass(frozen=True)
class RankerParams:
    """XGBoost settings; models/ranker_v1.yaml sets them for ranker v1."""

    objective: str = "rank:ndcg"
    n_estimators: int = 600
    learning_rate: float = 0.05
    max_depth: int = 7
    min_child_weight: float = 5.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    early_stopping_rounds: int = 40
    eval_metric: str = "ndcg@10"
    seed: int = 0
    #: Features whose increase must never lower a score (+1) or never raise it (-1): more
    #: interest in a category must not push that category down.
    monotone: tuple[tuple[str, int], ...] = (
        ("user_category_affinity__category_score_90d", 1),
        ("user_category_affinity__category_share_90d", 1),
        ("user_category_affinity__category_rank_90d", -1),
        ("in_top_category", 1),
    )


@dataclass
class RankerModel:
    """A fitted ranker with the exact columns and category vocabularies it was trained on."""

    booster: xgb.XGBRanker
    columns: list[str]
    categories: dict[str, list] = field(default_factory=dict)

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature matrix, categoricals re-coded to the training vocabularies."""
        matrix = to_matrix(frame, self.columns)
        for column, vocabulary in self.categories.items():
            matrix[column] = pd.Categorical(frame[column].astype(object), categories=vocabulary)
        return matrix

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The feature matrix as float32 numbers: categoricals as their vocabulary codes.

        What XGBoost reads from :meth:`matrix` (a code per category, NaN for missing or
        unseen values); the service builds the same array directly (see
        :mod:`shoprank.serving.request`).
        """
        matrix = self.matrix(frame)
        out = np.empty((len(frame), len(self.columns)), dtype=np.float32)
        for j, column in enumerate(self.columns):
            values = matrix[column]
            if isinstance(values.dtype, pd.CategoricalDtype):
                codes = values.cat.codes.to_numpy().astype(np.float32)
                codes[codes < 0] = np.nan
                out[:, j] = codes
            else:
                out[:, j] = values.to_numpy(np.float32)
        return out

    @cached_property
    def feature_info(self) -> tuple[list[str] | None, list[str] | None]:
        """The booster's feature names and types (read from XGBoost once, not per call)."""
        core = self.booster.get_booster()
        return core.feature_names, core.feature_types

    @property
    def rounds(self) -> tuple[int, int]:
        """The trees predictions use: up to the early-stopping best iteration."""
        core = self.booster.get_booster()
        try:
            return (0, int(core.best_iteration) + 1)
        except AttributeError:
            return (0, 0)

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Scores for an :meth:`encode`-d matrix (the service's one request)."""
        if len(matrix) == 0:
            return np.zeros(0, dtype=np.float32)
        core = self.booster.get_booster()
        return core.inplace_predict(matrix, iteration_range=self.rounds)

    def predict(self, frame: pd.DataFrame, batch_rows: int = 500_000) -> np.ndarray:
        """Relevance scores for rows of ``frame`` (higher is better).

        Scored ``batch_rows`` at a time, so the feature matrix of a large frame never exists
        in memory all at once.
        """
        parts = [
            self.predict_matrix(self.encode(frame.iloc[start : start + batch_rows]))
            for start in range(0, len(frame), batch_rows)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def importance(self, kind: str = "total_gain") -> pd.Series:
        """Feature importances, largest first."""
        scores = self.booster.get_booster().get_score(importance_type=kind)
        return pd.Series(scores, dtype=float).sort_values(ascending=False)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by query, as XGBoost requires."""
    return frame.sort_values(QUERY, kind="stable").reset_index(drop=True)


def _group_ids(frame: pd.DataFrame) -> np.ndarray:
    """Dense 0..n query numbers in row order (XGBoost stores qid as uint32)."""
    return pd.factorize(frame[QUERY])[0].astype(np.uint32)


def _ranker_kwargs(params: RankerParams, columns: list[str]) -> dict[str, Any]:
    """``XGBRanker`` keyword arguments for ``params`` (constraints on present columns only)."""
    return {
        "objective": params.objective,
        "n_estimators": params.n_estimators,
        "learning_rate": params.learning_rate,
        "max_depth": params.max_depth,
        "min_child_weight": params.min_child_weight,
        "subsample": params.subsample,
        "colsample_bytree": params.colsample_bytree,
        "early_stopping_rounds": params.early_stopping_rounds,
        "eval_metric": params.eval_metric,
        "tree_method": "hist",
        "enable_categorical": True,
        "random_state": params.seed,
        "n_jobs": 2,
        "monotone_constraints": {name: sign for name, sign in params.monotone if name in columns},
    }


def _vocabularies(matrix: pd.DataFrame) -> dict[str, list]:
    """The category vocabulary of each categorical column of a feature matrix."""
    return {
        c: list(matrix[c].cat.categories)
        for c in matrix.columns
        if isinstance(matrix[c].dtype, pd.CategoricalDtype)
    }


def train_ranker(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    params: RankerParams | None = None,
    drop_groups: tuple[str, ...] = (),
) -> RankerModel:
    """Fit on ``train`` with early stopping on ``valid`` (both need query_id and label)."""
    params = params or RankerParams()
    train, valid = _sorted(train), _sorted(valid)
    columns = feature_columns(train, drop_groups)
    categories = _vocabularies(to_matrix(train, columns))
    model = RankerModel(booster=None, columns=columns, categories=categories)  # type: ignore[arg-type]
    ranker = xgb.XGBRanker(**_ranker_kwargs(params, columns))
    ranker.fit(
        model.matrix(train),
        train[LABEL],
        qid=_group_ids(train),
        eval_set=[(model.matrix(valid), valid[LABEL])],
        eval_qid=[_group_ids(valid)],
        verbose=False,
    )
    model.booster = ranker
    return model


def plot_importance(model: RankerModel, path, top: int = 25, kind: str = "total_gain"):
    """A horizontal bar chart of the ``top`` most important features (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scores = model.importance(kind).head(top)[::-1]
    figure = Figure(figsize=(9, 0.32 * len(scores) + 1.2))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.barh(scores.index, scores.to_numpy(), color="#4c72b0")
    axes.set_xlabel(kind.replace("_", " "))
    axes.set_title(f"Ranker feature importance (top {len(scores)})")
    axes.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path
