"""The ranker config file: loaded with clear errors naming the key."""

from pathlib import Path

import numpy as np
import pytest

from shoprank.ranking.config import RankerConfigError, load_ranker_config
from shoprank.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_loads():
    config = load_ranker_config(ROOT / "models/ranker_v1.yaml", load_settings().splits)
    assert config.feature_service == "ranker_v1"
    assert config.params.objective == "rank:ndcg"
    assert len(config.training_cutoffs) >= 1


def _write(tmp_path, text):
    path = tmp_path / "ranker.yaml"
    path.write_text(text)
    return path


def test_cutoff_running_into_validation_is_rejected(tmp_path):
    text = (ROOT / "models/ranker_v1.yaml").read_text().replace('"2025-10-20"', '"2025-10-28"')
    with pytest.raises(RankerConfigError, match="training.cutoffs: 2025-10-28"):
        load_ranker_config(_write(tmp_path, text), load_settings().splits)


def test_unknown_xgboost_key_and_missing_key_are_named(tmp_path):
    text = (ROOT / "models/ranker_v1.yaml").read_text()
    with pytest.raises(RankerConfigError, match="xgboost.depth is not a known setting"):
        load_ranker_config(_write(tmp_path, text + "  depth: 3\n"), load_settings().splits)
    with pytest.raises(RankerConfigError, match="feature_service is missing"):
        load_ranker_config(
            _write(tmp_path, text.replace("feature_service: ranker_v1\n", "")),
            load_settings().splits,
        )


def test_rolling_step_days_are_optional_and_checked(tmp_path):
    text = (ROOT / "models/ranker_v1.yaml").read_text()
    config = load_ranker_config(_write(tmp_path, text), load_settings().splits)
    assert config.evaluation_step_days == 7
    bad = text.replace("  step_days: 7\n", "  step_days: -3\n")
    with pytest.raises(RankerConfigError, match="evaluation.step_days must be a positive"):
        load_ranker_config(_write(tmp_path, bad), load_settings().splits)


def test_validation_negatives_are_optional_and_checked(tmp_path):
    text = (ROOT / "models/ranker_v1.yaml").read_text()
    config = load_ranker_config(_write(tmp_path, text), load_settings().splits)
    assert config.validation_negatives_per_query == 200
    unset = text.replace("  negatives_per_query: 200\n", "")
    assert (
        load_ranker_config(
            _write(tmp_path, unset), load_settings().splits
        ).validation_negatives_per_query
        is None
    )
    bad = text.replace("  negatives_per_query: 200\n", "  negatives_per_query: many\n")
    with pytest.raises(
        RankerConfigError, match="validation.negatives_per_query must be a positive"
    ):
        load_ranker_config(_write(tmp_path, bad), load_settings().splits)


def test_all_cold_users_is_a_checked_flag(tmp_path):
    text = (ROOT / "models/ranker_v1.yaml").read_text()
    config = load_ranker_config(_write(tmp_path, text), load_settings().splits)
    assert config.evaluation_all_cold_users is True
    unset = text.replace("  all_cold_users: true\n", "")
    assert not load_ranker_config(
        _write(tmp_path, unset), load_settings().splits
    ).evaluation_all_cold_users
    bad = text.replace("  all_cold_users: true\n", "  all_cold_users: yes please\n")
    with pytest.raises(RankerConfigError, match="evaluation.all_cold_users must be true or false"):
        load_ranker_config(_write(tmp_path, bad), load_settings().splits)


def _with_counts(counts: str) -> str:
    """The shipped config with ``candidates_per_generator`` replaced by ``counts``."""
    text = (ROOT / "models/ranker_v1.yaml").read_text()
    start = text.index("candidates_per_generator:")
    end = text.index("training:")
    return text[:start] + f"candidates_per_generator: {counts}\n" + text[end:]


def test_candidate_counts_per_generator_are_checked(tmp_path):
    splits = load_settings().splits
    config = load_ranker_config(_write(tmp_path, _with_counts("120")), splits)
    assert config.candidates_per_generator == 120
    mixed = _with_counts("{default: 60, category: 300}")
    assert load_ranker_config(_write(tmp_path, mixed), splits).candidates_per_generator == {
        "default": 60,
        "category": 300,
    }
    with pytest.raises(RankerConfigError, match="candidates_per_generator.catgory is not a"):
        load_ranker_config(_write(tmp_path, _with_counts("{default: 60, catgory: 300}")), splits)
    with pytest.raises(RankerConfigError, match="needs a default"):
        load_ranker_config(_write(tmp_path, _with_counts("{category: 300}")), splits)
    # Every generator is also evaluated alone on 50-item lists: fewer candidates cut them.
    with pytest.raises(RankerConfigError, match=r"candidates_per_generator.als must be .*>= 50"):
        load_ranker_config(_write(tmp_path, _with_counts("{default: 60, als: 20}")), splits)


def test_generator_names_match_the_shipped_generators():
    import pandas as pd

    from shoprank.ranking.config import GENERATORS
    from shoprank.training.generators import default_generators

    users = pd.DataFrame({"age_band": ["25-34"], "region": ["north"]}, index=[1])
    assert tuple(default_generators(users, np.zeros((2, 4), np.float32))) == GENERATORS
