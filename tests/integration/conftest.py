"""A served tiny shop: online store materialized to a cutoff, a ranker saved with its state."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from shoprank.settings import Settings

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
def served(tiny_platform, tiny_settings: Settings, tmp_path_factory) -> Settings:
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
    from shoprank.training.generators import generator_factory, load_item_vectors
    from shoprank.training.rankers import train_rankers

    root = tmp_path_factory.mktemp("served")
    shutil.copytree(tiny_settings.data_path, root / "data", ignore=shutil.ignore_patterns("feast"))
    settings = tiny_settings.model_copy(
        update={"data_dir": root / "data", "bentoml_home": root / "bentoml"}
    )
    cutoff = settings.splits.data_end - timedelta(days=SERVED_DAYS_BEFORE_END)
    store.apply(settings)
    store.materialize(settings, end=cutoff, fresh=True)
    config_path = root / "ranker.yaml"
    config_path.write_text(SERVE_CONFIG)
    config = load_ranker_config(config_path, settings.splits)
    catalog = load_catalog(settings.warehouse_path)
    factory = generator_factory(load_item_vectors(settings, catalog))
    rankers = train_rankers(settings, config, catalog, factory)
    state = fit_serving_state(settings, config, at=cutoff)
    tag = save_trained(settings, config, {"ranker": rankers.models["ranker"]}, {}, state)[0]
    return settings.model_copy(update={"model_tag": tag})
