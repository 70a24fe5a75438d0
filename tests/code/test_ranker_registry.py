"""Saving the ranker in BentoML's model store and loading it back, in temporary stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from shoprank.ranking.model import RankerModel, RankerParams, train_ranker
from shoprank.ranking.registry import latest_tag, list_rankers, load_ranker, save_ranker

WINDOW = {"train": "[2025-01-01, 2025-05-01)", "validation": "[2025-05-01, 2025-06-01)"}


@pytest.fixture(scope="module", autouse=True)
def _no_usage_tracking() -> Iterator[None]:
    # BentoML posts a usage event on every save unless told not to; tests stay offline.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_DO_NOT_TRACK", "true")
        yield


def _synthetic(n_queries: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = n_queries * 20
    signal = rng.normal(size=rows)
    return pd.DataFrame(
        {
            "query_id": np.repeat(np.arange(n_queries), 20),
            "user_id": np.repeat(np.arange(n_queries), 20),
            "product_id": rng.integers(1, 1000, rows),
            "signal": signal,
            "noise": rng.normal(size=rows),
            "colour": rng.choice(["red", "blue"], rows),
            "label": (signal + rng.normal(scale=0.5, size=rows) > 1.2).astype(int) * 2,
        }
    )


@pytest.fixture(scope="module")
def ranker() -> RankerModel:
    params = RankerParams(n_estimators=30, early_stopping_rounds=5)
    return train_ranker(_synthetic(60, 0), _synthetic(20, 1), params)


def _save(model: RankerModel, home: Path, **overrides) -> str:
    kwargs = {
        "training_window": WINDOW,
        "data_version": "tiny-seed7",
        "metrics": {"ndcg@10": 0.25, "recall@50": 0.5},
        "home": home,
    }
    return save_ranker(model, **{**kwargs, **overrides})


def test_saved_ranker_scores_identically_including_unseen_categories(ranker, tmp_path):
    tag = _save(ranker, tmp_path)
    name, _, version = tag.partition(":")
    assert name == "shoprank_ranker" and version and version != "latest"
    assert (tmp_path / "models" / name / version / "model.yaml").is_file()

    loaded = load_ranker(tag, home=tmp_path)
    frame = _synthetic(10, 2)
    frame["colour"] = np.where(frame["colour"] == "red", "red", "green")  # green: unseen
    np.testing.assert_array_equal(loaded.predict(frame), ranker.predict(frame))
    assert loaded.columns == ranker.columns
    assert loaded.categories == ranker.categories == {"colour": ["blue", "red"]}
    assert loaded.booster.best_iteration == ranker.booster.best_iteration


def test_labels_and_metadata_round_trip(ranker, tmp_path):
    tag = _save(ranker, tmp_path, model_version="ranker_v2", feature_service="ranker_fs")
    [entry] = list_rankers(home=tmp_path)
    assert entry["tag"] == tag
    assert entry["labels"] == {"model_version": "ranker_v2", "feature_service": "ranker_fs"}
    assert entry["metrics"] == {"ndcg@10": 0.25, "recall@50": 0.5}
    assert entry["creation_time"].tzinfo is not None

    name, _, version = tag.partition(":")
    info = yaml.safe_load((tmp_path / "models" / name / version / "model.yaml").read_text())
    metadata = info["metadata"]
    assert info["module"] == "bentoml.xgboost"
    assert metadata["training_window"] == WINDOW
    assert metadata["data_version"] == "tiny-seed7"
    assert metadata["n_features"] == len(ranker.columns)
    assert metadata["best_iteration"] == ranker.booster.best_iteration
    assert metadata["xgboost_params"]["objective"] == "rank:ndcg"
    assert metadata["xgboost_params"]["n_estimators"] == 30


def test_floating_tags_are_refused(ranker, tmp_path):
    tag = _save(ranker, tmp_path)
    for floating in ("shoprank_ranker", "shoprank_ranker:latest", "shoprank_ranker:LATEST"):
        with pytest.raises(ValueError, match="pins an exact tag"):
            load_ranker(floating, home=tmp_path)
    with pytest.raises(ValueError, match="not an exact tag"):
        load_ranker(tag[:-3], home=tmp_path)  # a version prefix BentoML would resolve
    assert latest_tag(home=tmp_path) == tag


def test_two_saves_get_distinct_tags_listed_newest_first(ranker, tmp_path):
    first = _save(ranker, tmp_path, metrics={"ndcg@10": 0.1})
    second = _save(ranker, tmp_path, metrics={"ndcg@10": 0.2})
    assert first != second
    listed = list_rankers(home=tmp_path)
    assert [entry["tag"] for entry in listed] == [second, first]
    assert [entry["metrics"]["ndcg@10"] for entry in listed] == [0.2, 0.1]
    assert latest_tag(home=tmp_path) == second
    assert list_rankers("no_such_ranker", home=tmp_path) == []


def test_different_homes_in_one_process_stay_separate(ranker, tmp_path):
    from bentoml.exceptions import NotFound

    home_a, home_b = tmp_path / "a", tmp_path / "b"
    tag_a = _save(ranker, home_a)
    tag_b = _save(ranker, home_b, name="other_ranker")
    tag_a2 = _save(ranker, home_a)
    assert [e["tag"] for e in list_rankers(home=home_a)] == [tag_a2, tag_a]
    assert list_rankers(home=home_b) == []
    assert [e["tag"] for e in list_rankers("other_ranker", home=home_b)] == [tag_b]
    with pytest.raises(NotFound):
        load_ranker(tag_a, home=home_b)
    assert load_ranker(tag_b, home=home_b).columns == ranker.columns


def test_a_failed_save_leaves_later_saves_where_they_belong(ranker, tmp_path):
    with pytest.raises(Exception, match="not a valid BentoML tag"):
        _save(ranker, tmp_path / "a", name="Not A Valid Name!")
    tag = _save(ranker, tmp_path / "b")
    assert [e["tag"] for e in list_rankers(home=tmp_path / "b")] == [tag]
    assert not (tmp_path / "a" / "models" / "shoprank_ranker").exists()
