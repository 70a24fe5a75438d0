"""What one model tag serves: the ranker and everything fitted with it.

A saved recommender is the XGBoost ranker (``bentoml.xgboost``) plus, as a custom object, a
:class:`ServingState`: the candidate generators fit at one moment, the catalog, the user
profiles, each user's recent products and purchases as of that moment, the repeat-purchase
categories, the candidate counts, the post-ranking configuration and the name of the Feast
feature service the ranker reads. Loading the tag restores exactly what the evaluation's
protocol ranks with at a cutoff, so the service cannot drift from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprank.candidates.base import CandidateGenerator, GeneratorFactory, fit_generators
from shoprank.candidates.data import Catalog, InteractionLog, recent_items
from shoprank.ranking.dataset import CandidateCounts
from shoprank.ranking.model import RankerModel
from shoprank.ranking.rerank import RerankConfig, purchased_pairs, repeat_categories
from shoprank.settings import Settings

#: Recent products kept per user (``Queries.recent_items``), as at evaluation cutoffs.
RECENT_LENGTH = 5
STATE_OBJECT = "serving_state"


@dataclass
class ServingState:
    """Everything fitted with the ranker that recommending needs, as of ``fitted_at``.

    Attributes:
        fitted_at: The generators know every event before this moment (aware UTC).
        generators: The fitted candidate generators, by name.
        catalog: The product catalog.
        users: User profiles indexed by user_id (segments for cold-start generators).
        recent: (max user id + 1, :data:`RECENT_LENGTH`) each user's last distinct products
            before ``fitted_at``, most recent first, -1 padded; row = user_id.
        bought: (user_id, product_id) pairs purchased before ``fitted_at``.
        repeat_categories: Leaves where buying the same product again is normal.
        candidates_per_generator: Top-k each generator proposes.
        rerank: The post-ranking rules, diversity and slots.
        feature_service: The Feast feature service the ranker reads.
        sessions: Each user's latest ``session_features`` row before ``fitted_at`` (the dbt
            mart), indexed by user_id: where the live session step continues from.
    """

    fitted_at: datetime
    generators: dict[str, CandidateGenerator]
    catalog: Catalog
    users: pd.DataFrame
    recent: np.ndarray
    bought: pd.DataFrame
    repeat_categories: frozenset[str]
    candidates_per_generator: CandidateCounts
    rerank: RerankConfig
    feature_service: str
    sessions: pd.DataFrame = field(default_factory=pd.DataFrame)

    def session_row(self, user_id: int) -> dict[str, object] | None:
        """The user's last session_features row before the fit, or None."""
        if user_id not in self.sessions.index:
            return None
        row = self.sessions.loc[user_id].to_dict()
        row["user_id"] = int(user_id)
        return {k: (None if _missing(v) else v) for k, v in row.items()}

    @property
    def vectors(self) -> np.ndarray | None:
        """Unit item vectors by product id (the content generator's), or None."""
        content = self.generators.get("content")
        return None if content is None else content.vectors  # type: ignore[attr-defined]

    def recent_of(self, user_ids: np.ndarray) -> np.ndarray:
        """Recent products of ``user_ids`` as of the fit (-1 rows for unknown users)."""
        out = np.full((len(user_ids), self.recent.shape[1]), -1, dtype=np.int64)
        known = (user_ids >= 0) & (user_ids < len(self.recent))
        out[known] = self.recent[user_ids[known]]
        return out


def build_serving_state(
    make_generators: GeneratorFactory,
    users: pd.DataFrame,
    history: InteractionLog,
    catalog: Catalog,
    at: datetime,
    config: Any,
    log=None,
    sessions: pd.DataFrame | None = None,
) -> ServingState:
    """Fit the generators on ``history`` (the log before ``at``) and derive the rest.

    Args:
        make_generators: Builds the unfitted generators (as at evaluation cutoffs).
        users: User profiles indexed by user_id.
        history: Every clean event before ``at``.
        catalog: The product catalog.
        at: The moment the service starts from (aware UTC).
        config: The ranker config (:class:`~shoprank.ranking.config.RankerConfig`).
        log: Progress lines (None: silent).
        sessions: The session_features mart's latest row per user before ``at``.

    Returns:
        The state, with no I/O done.
    """
    generators = fit_generators(make_generators, users, history, catalog, at, log)
    n_users = int(max(users.index.max(), history.user_id.max(initial=0))) + 1
    recent = recent_items(history, np.arange(n_users), length=RECENT_LENGTH)
    rerank = config.rerank
    return ServingState(
        fitted_at=at,
        generators=generators,
        catalog=catalog,
        users=users,
        recent=recent,
        bought=purchased_pairs(history),
        repeat_categories=repeat_categories(
            history, catalog, rerank.repeat_threshold, rerank.repeat_min_purchases
        ),
        candidates_per_generator=config.candidates_per_generator,
        rerank=rerank,
        feature_service=config.feature_service,
        sessions=pd.DataFrame() if sessions is None else sessions,
    )


def latest_sessions(settings: Settings, at: datetime) -> pd.DataFrame:
    """Each user's latest row of the session_features mart before ``at``, by user_id."""
    import duckdb

    path = settings.marts_dir / "session_features.parquet"
    query = (
        "select * from read_parquet($path) where event_timestamp < $at"
        " qualify row_number() over (partition by user_id order by event_timestamp desc) = 1"
    )
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        frame = con.execute(query, {"path": str(path), "at": at}).df()
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame.set_index("user_id")


def fit_serving_state(
    settings: Settings, config: Any, at: datetime | None = None, log=None
) -> ServingState:
    """Load the log before ``at`` (default: the end of the data) and fit the serving state.

    The end of the data is what the online store is materialized to by the pipeline.
    """
    from shoprank.candidates.data import load_catalog, load_log
    from shoprank.ranking.examples import load_users
    from shoprank.training.generators import catalog_generators

    at = at or settings.splits.data_end
    catalog = load_catalog(settings.warehouse_path)
    history = load_log(settings.warehouse_path, settings.splits.data_start, at)
    factory, _ = catalog_generators(settings, catalog)
    sessions = latest_sessions(settings, at)
    users = load_users(settings)
    return build_serving_state(factory, users, history, catalog, at, config, log, sessions)


def save_recommender(
    model: RankerModel,
    state: ServingState,
    *,
    name: str,
    training_window: dict[str, str],
    data_version: str,
    metrics: dict[str, float],
    home: Path | None = None,
) -> str:
    """Save the ranker with its serving state under one new exact tag."""
    from shoprank.ranking.registry import save_ranker

    return save_ranker(
        model,
        name=name,
        model_version=state.feature_service,
        feature_service=state.feature_service,
        training_window={**training_window, "fitted_at": state.fitted_at.isoformat()},
        data_version=data_version,
        metrics=metrics,
        home=home,
        extra_objects={STATE_OBJECT: state},
    )


def load_recommender(tag: str, home: Path | None = None) -> tuple[RankerModel, ServingState]:
    """The ranker and serving state saved under the exact ``tag``.

    Raises:
        ValueError: If the tag floats or was saved without a serving state.
    """
    from shoprank.ranking.registry import load_objects, load_ranker

    model = load_ranker(tag, home)
    state = load_objects(tag, home).get(STATE_OBJECT)
    if not isinstance(state, ServingState):
        raise ValueError(
            f"model {tag} has no serving state: it was saved before serving existed; "
            "re-run `shoprank train` (or `shoprank evaluate`) to save one"
        )
    return model, state


def save_trained(
    settings: Settings,
    config: Any,
    models: dict[str, RankerModel],
    metrics: dict[str, dict[str, float]],
    state: ServingState,
) -> list[str]:
    """Save the ranker (and the session ranker, when trained) with the serving state.

    ``shoprank_ranker`` is the ranker; ``shoprank_session_ranker`` the session ranker.
    ``metrics`` holds each one's test metrics by approach name (empty when not evaluated).
    Returns the exact tags, the ranker's first.
    """
    from shoprank.training.rankers import SESSION_RANKER

    names = {"ranker": "shoprank_ranker", SESSION_RANKER: "shoprank_session_ranker"}
    return [
        save_recommender(
            models[approach],
            state,
            name=name,
            training_window=training_window(settings, config),
            data_version=data_version(settings),
            metrics=metrics.get(approach, {}),
            home=settings.bentoml_home,
        )
        for approach, name in names.items()
        if approach in models
    ]


def training_window(settings: Settings, config: Any) -> dict[str, str]:
    """The data intervals a ranker of ``config`` was trained and tested on."""
    splits = settings.splits.as_dict()
    return {
        "training_cutoffs": ",".join(f"{c:%Y-%m-%d}" for c in config.training_cutoffs),
        "horizon_days": str(config.horizon_days),
        "validation": splits["validation"],
        "test": splits["test"],
    }


def data_version(settings: Settings) -> str:
    """When the marts the model was trained on were built."""
    build = json.loads((settings.marts_dir / "_build.json").read_text())
    return f"marts built {build['built_at']}"


def _missing(value: object) -> bool:
    """Whether a frame cell is a missing value (None, NaN, NaT, pd.NA)."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
