"""The Beauty evaluation on a tiny sequence set where item i is always followed by item i + 1."""

import json

import numpy as np
import pytest

from shoprank.evaluation.beauty import (
    PUBLISHED,
    History,
    ItemInfo,
    RunConfig,
    run_on_split,
    shifted_split,
    stage_history,
    transition_matrix,
    union_candidates,
    write_reports,
)
from shoprank.evaluation.leave_one_out import loo_split, popularity_scores

N_ITEMS = 60


def chain_sequences(n_users: int = 240, seed: int = 0) -> list[np.ndarray]:
    """Each user walks the chain s, s+1, ... for 5 to 9 steps from a random start.

    Chains stay below item N_ITEMS - 10, so every target also occurs in other users' training
    prefixes. 60 more users buy the five last items in random order: those are the most popular
    items and no chain reaches them, so popularity alone is a poor guess for the chain users.
    """
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(n_users):
        length = int(rng.integers(5, 10))
        start = int(rng.integers(1, N_ITEMS - 10 - length))
        sequences.append(np.arange(start, start + length, dtype=np.int64))
    popular = np.arange(N_ITEMS - 4, N_ITEMS + 1, dtype=np.int64)
    sequences += [rng.permutation(popular) for _ in range(60)]
    return sequences


def tiny_info(seed: int = 0) -> ItemInfo:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(N_ITEMS + 1, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[0] = 0.0
    attributes = {i: [100 + i % 7, 1, 10 + i % 3] for i in range(1, N_ITEMS + 1)}
    return ItemInfo.from_attributes(attributes, N_ITEMS, vectors)


SMALL = RunConfig(
    grids={
        "transitions": {"window": [1, 2]},
        "ease": {"lam": [1.0, 10.0]},
        "als": {"factors": [8]},
        "content": {"n_last": [1]},
        "blend": {"ease": [0.0, 1.0]},
    },
    n_candidates=10,
    batch_size=64,
    ranker_params={
        "n_estimators": 30,
        "learning_rate": 0.3,
        "max_depth": 3,
        "min_child_weight": 1.0,
        "early_stopping_rounds": 10,
        "monotone": (),
    },
)


@pytest.fixture(scope="module")
def report():
    split = loo_split(chain_sequences(), N_ITEMS)
    return run_on_split(split, tiny_info(), SMALL, progress=False, log=lambda _: None)


def test_test_history_appends_the_validation_item():
    split = loo_split([np.array([1, 2, 3, 4]), np.array([5, 6, 7])], 7)
    history = stage_history(split, "test")
    assert np.split(history.items, history.indptr[1:-1])[0].tolist() == [1, 2, 3]
    assert np.split(history.items, history.indptr[1:-1])[1].tolist() == [5, 6]
    assert history.recent(np.array([0, 1]), 3).tolist() == [[3, 2, 1], [6, 5, 0]]


def test_shifted_split_predicts_the_last_training_item_from_the_items_before():
    split = loo_split([np.array([1, 2, 3, 4, 5]), np.array([6, 7, 8])], 8)
    shifted = shifted_split(split)
    assert shifted.validation_targets.tolist() == [3, 0]
    assert shifted.train_sequence(0).tolist() == [1, 2]
    assert shifted.train_sequence(1).tolist() == [6]
    assert not shifted.test_targets.any()


def test_popularity_matches_the_protocol_baseline():
    split = loo_split(chain_sequences(), N_ITEMS)
    for stage in ("validation", "test"):
        history = stage_history(split, stage)
        counts = np.bincount(history.items, minlength=N_ITEMS + 1)
        np.testing.assert_array_equal(counts, popularity_scores(split, stage))


def test_transitions_are_row_normalised_and_directed():
    history = History(np.array([0, 3]), np.array([1, 2, 3]), 3)
    matrix = transition_matrix(history, window=1, backward=0.0, decay=1.0).toarray()
    assert matrix[1, 2] == pytest.approx(1.0)
    assert matrix[2, 1] == 0.0
    np.testing.assert_allclose(matrix.sum(axis=1)[1:3], 1.0)


def test_union_candidates_dedupes_and_pads():
    lists = [np.array([[3, 1], [2, 2]]), np.array([[1, 5], [0, 4]])]
    assert union_candidates(lists).tolist() == [[1, 3, 5], [2, 4, 0]]


def test_sequence_models_and_ranker_beat_popularity(report):
    test = {name: stages["test"]["NDCG@10"] for name, stages in report.approaches.items()}
    for name in ("transitions", "ease", "blend", "ranker"):
        assert test[name] > test["popularity"] + 0.2, (name, test)
    assert test["transitions"] > 0.9


def test_report_structure(report, tmp_path):
    json_path, md_path = write_reports(report, tmp_path)
    payload = json.loads(json_path.read_text())
    expected = {"popularity", "transitions", "ease", "als", "content", "blend", "ranker"}
    assert set(payload["approaches"]) == expected
    for stages in payload["approaches"].values():
        assert set(stages) == {"validation", "test"}
        for metrics in stages.values():
            assert {"HR@10", "NDCG@10", "HR@20", "NDCG@20", "n_users"} <= set(metrics)
            assert 0.0 <= metrics["NDCG@10"] <= metrics["HR@10"] <= 1.0
    assert payload["published"]["SASRec"]["NDCG@10"] == PUBLISHED["SASRec"]["NDCG@10"]
    assert set(payload["hyperparameters"]) >= {"transitions", "ease", "blend", "ranker"}
    features = payload["hyperparameters"]["ranker"]["features"]
    assert not any(f.endswith("_id") for f in features)
    markdown = md_path.read_text()
    assert "| SASRec | published | test |" in markdown
    assert "| ranker | shoprank | test |" in markdown
