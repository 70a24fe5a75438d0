"""A served tiny shop: online store materialized to a cutoff, a ranker saved with its state."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from shoprank.settings import Settings

REPO = Path(__file__).resolve().parents[2]
#: The recommendation service, as ``make serve`` runs it.
SERVICE_TARGET = "bentos/recommender/service.py:Recommender"

#: The serving cutoff is this many days before the data's end (a busy December day of the
#: tiny shop, with days after it to replay).
SERVED_DAYS_BEFORE_END = 12
SERVE_CONFIG = """
feature_service: ranker_v1
candidates_per_generator: {default: 50, category: 80}
training:
  cutoffs: ["2025-08-20", "2025-09-15", "2025-10-03"]
  horizon_days: 28
  users_per_cutoff: null
  negatives_per_query: 40
validation:
  users: null
evaluation:
  step_days: 14
  users: null
xgboost:
  n_estimators: 60
  early_stopping_rounds: 20
"""


@pytest.fixture(scope="session")
def served_cutoff(tiny_settings: Settings) -> datetime:
    """The moment the served shop's online store and model stop: the serving cutoff."""
    return tiny_settings.splits.data_end - timedelta(days=SERVED_DAYS_BEFORE_END)


@pytest.fixture(scope="session")
def served(tiny_platform, tiny_settings: Settings, served_cutoff, tmp_path_factory) -> Settings:
    """A copy of the tiny shop served as of :data:`SERVED_DAYS_BEFORE_END` days before its end.

    The online store holds what ``materialize`` wrote up to that moment (the serving
    cutoff, midnight UTC), the model store a
    ranker saved with its serving state fit there, so that the last days of the log can be
    replayed through the service as live events. The settings carry the exact tag.
    """
    from shoprank.candidates.data import load_catalog
    from shoprank.features import store
    from shoprank.ranking.config import load_ranker_config
    from shoprank.training.bundle import fit_serving_state, save_trained
    from shoprank.training.generators import catalog_generators
    from shoprank.training.rankers import train_rankers

    root = tmp_path_factory.mktemp("served")
    shutil.copytree(tiny_settings.data_path, root / "data", ignore=shutil.ignore_patterns("feast"))
    settings = tiny_settings.model_copy(
        update={"data_dir": root / "data", "bentoml_home": root / "bentoml"}
    )
    store.apply(settings)
    store.materialize(settings, end=served_cutoff, fresh=True)
    config_path = root / "ranker.yaml"
    config_path.write_text(SERVE_CONFIG)
    config = load_ranker_config(config_path, settings.splits)
    catalog = load_catalog(settings.warehouse_path)
    factory, _ = catalog_generators(settings, catalog)
    rankers = train_rankers(settings, config, catalog, factory)
    state = fit_serving_state(settings, config, at=served_cutoff)
    tag = save_trained(settings, config, {"ranker": rankers.models["ranker"]}, {}, state)[0]
    return settings.model_copy(update={"model_tag": tag})


@pytest.fixture(scope="session")
def served_copy(served: Settings, tmp_path_factory) -> Callable[..., Settings]:
    """``served_copy(name, online=True, **update)``: a private copy of the served shop.

    What a test's service may change: the copy has its own event log and, with ``online``,
    its own SQLite online store and registry (else the test applies and materializes its
    own store). The model store is shared: services only read it.
    """

    def copy(name: str, online: bool = True, **update) -> Settings:
        root = tmp_path_factory.mktemp(name)
        skip = ["events"] if online else ["events", "feast"]
        shutil.copytree(served.data_path, root / "data", ignore=shutil.ignore_patterns(*skip))
        return served.model_copy(
            update={"data_dir": root / "data", "event_log": root / "events.jsonl", **update}
        )

    return copy


def service_env(settings: Settings) -> dict[str, str]:
    """The environment under which ``bentoml serve`` serves ``settings``."""
    return {
        "BENTOML_DO_NOT_TRACK": "true",
        "BENTOML_HOME": str(settings.bentoml_home),
        "SHOPRANK_DATA_DIR": str(settings.data_path),
        "SHOPRANK_BENTOML_HOME": str(settings.bentoml_home),
        "SHOPRANK_MODEL_TAG": str(settings.model_tag),
        "SHOPRANK_EVENT_LOG": str(settings.event_log_path),
        "SHOPRANK_ONLINE_STORE": settings.online_store,
        "SHOPRANK_REDIS_URL": settings.redis_url,
        "SHOPRANK_SERVING_WORKERS": str(settings.serving_workers),
    }


@pytest.fixture(scope="session")
def serve() -> Callable[..., AbstractContextManager]:
    """``with serve(settings) as server:`` runs the real service under ``bentoml serve``.

    On 127.0.0.1 and a free port, with the settings' worker count (what production runs)
    unless ``workers`` says otherwise; the whole process tree is stopped when the block
    ends, also on failure. ``server.base_url`` is where to send requests.
    """
    from shoprank.serving.bench import bentoml_server

    @contextmanager
    def run(settings: Settings, workers: int | None = None) -> Iterator:
        count = workers or settings.serving_workers
        env = service_env(settings) | {"SHOPRANK_SERVING_WORKERS": str(count)}
        with bentoml_server(
            SERVICE_TARGET, working_dir=REPO, env=env, workers=count, ready_timeout_s=240
        ) as server:
            yield server

    return run
