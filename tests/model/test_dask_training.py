"""Training the ranker with xgboost.dask on a real local Dask cluster, against local training."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from distributed import Client
from distributed.core import Status

from shoprank.ranking import distributed as dask_training
from shoprank.ranking.distributed import by_query, local_cluster, train_ranker_dask
from shoprank.ranking.model import RankerModel, RankerParams, _ranker_kwargs, train_ranker
from shoprank.ranking.registry import load_ranker, save_ranker

pytestmark = pytest.mark.timeout(180)

CANDIDATES = 30
PARAMS = RankerParams(
    n_estimators=60, early_stopping_rounds=10, max_depth=4, monotone=(("signal", 1),)
)


def _synthetic(n_queries: int, seed: int) -> pd.DataFrame:
    """Shuffled candidate rows whose graded label follows ``signal``; ``channel`` is text."""
    rng = np.random.default_rng(seed)
    rows = n_queries * CANDIDATES
    signal = rng.normal(size=rows)
    relevance = signal + rng.normal(scale=0.5, size=rows)
    frame = pd.DataFrame(
        {
            # int64 ids far beyond uint32, like shoprank's (user, cutoff) query ids
            "query_id": np.repeat(10**15 + seed * 10**6 + np.arange(n_queries), CANDIDATES),
            "user_id": np.repeat(np.arange(n_queries), CANDIDATES),
            "product_id": rng.integers(1, 5000, rows),
            "signal": signal,
            "noise": rng.normal(size=rows),
            "channel": rng.choice(["app", "email", "web"], rows),
            "label": np.select([relevance > 1.5, relevance > 0.8], [2, 1], 0),
        }
    )
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _ndcg_at_10(frame: pd.DataFrame, scores: np.ndarray) -> float:
    """Mean NDCG@10 over queries with a relevant row (gain 2**label - 1)."""
    discounts = 1.0 / np.log2(np.arange(2, 12))
    values = []
    for _, group in frame.assign(score=scores).groupby("query_id"):
        gains = 2.0 ** group["label"].to_numpy() - 1.0
        ideal = np.sort(gains)[::-1][:10] @ discounts[: min(10, len(gains))]
        if ideal > 0:
            ranked = gains[np.argsort(-group["score"].to_numpy(), kind="stable")][:10]
            values.append(ranked @ discounts[: len(ranked)] / ideal)
    return float(np.mean(values))


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with local_cluster() as cluster, Client(cluster) as client:
        yield client
    assert client.status == "closed" and cluster.status == Status.closed


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return {"train": _synthetic(300, 1), "valid": _synthetic(100, 2), "test": _synthetic(100, 3)}


@pytest.fixture(scope="module")
def local_model(frames) -> RankerModel:
    return train_ranker(frames["train"], frames["valid"], PARAMS)


@pytest.fixture(scope="module")
def dask_model(frames, client) -> RankerModel:
    return train_ranker_dask(frames["train"], frames["valid"], PARAMS, client=client)


def test_dask_ranker_ranks_about_as_well_as_the_local_one(frames, local_model, dask_model):
    test = frames["test"]
    scores = dask_model.predict(test)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()

    random = _ndcg_at_10(test, np.random.default_rng(0).random(len(test)))
    local = _ndcg_at_10(test, local_model.predict(test))
    distributed = _ndcg_at_10(test, scores)
    assert distributed > random + 0.2
    assert abs(distributed - local) < 0.05


def test_dask_ranker_has_the_local_model_contract(local_model, dask_model, client):
    assert dask_model.columns == local_model.columns == ["signal", "noise", "channel"]
    assert dask_model.categories == local_model.categories == {"channel": ["app", "email", "web"]}
    assert type(dask_model.booster) is type(local_model.booster)
    hyper_parameters = _ranker_kwargs(PARAMS, local_model.columns)
    for params in (dask_model.booster.get_params(), local_model.booster.get_params()):
        assert {k: params[k] for k in hyper_parameters} == hyper_parameters
    assert 0 <= dask_model.booster.best_iteration < PARAMS.n_estimators
    importance = dask_model.importance()
    assert importance.index[0] == "signal"
    assert set(importance.index) <= set(dask_model.columns)
    assert client.status == "running"  # a caller's client is left open


def test_more_signal_never_lowers_a_score(frames, dask_model):
    rows = frames["test"].head(1000)
    base = dask_model.predict(rows)
    for delta in (0.1, 0.5, 2.0):
        raised = dask_model.predict(rows.assign(signal=rows["signal"] + delta))
        assert (raised >= base).all()
        assert (raised > base).any()


def test_saved_dask_ranker_scores_identically_after_loading(
    frames, dask_model, tmp_path, monkeypatch
):
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "true")
    tag = save_ranker(
        dask_model,
        training_window={"train": "synthetic"},
        data_version="synthetic-dask",
        metrics={"ndcg@10": 0.5},
        home=tmp_path,
    )
    loaded = load_ranker(tag, home=tmp_path)
    test = frames["test"]
    np.testing.assert_array_equal(loaded.predict(test), dask_model.predict(test))


def test_dask_frames_partitioned_by_query_are_accepted(frames, local_model, client):
    train, valid, test = (frames[k] for k in ("train", "valid", "test"))
    model = train_ranker_dask(by_query(train, 3), by_query(valid, 2), PARAMS, client=client)
    assert model.columns == local_model.columns
    assert model.categories == local_model.categories
    assert (
        _ndcg_at_10(test, model.predict(test)) > _ndcg_at_10(test, local_model.predict(test)) - 0.05
    )


def test_a_query_split_between_partitions_is_refused(frames, client):
    ordered = frames["train"].sort_values("query_id", kind="stable").reset_index(drop=True)
    split = dd.from_pandas(ordered.iloc[:45], npartitions=3, sort=False)  # 15 rows each
    valid = by_query(frames["valid"], 2)
    with pytest.raises(ValueError, match="spread over several partitions"):
        train_ranker_dask(split, valid, PARAMS, client=client)


def test_training_without_a_client_closes_its_own_cluster(frames, monkeypatch):
    seen: list[Client] = []
    original = dask_training.dask_client

    @contextmanager
    def spy(client=None, scheduler=None):
        with original(client, scheduler) as active:
            seen.append(active)
            yield active

    monkeypatch.setattr(dask_training, "dask_client", spy)
    model = train_ranker_dask(frames["train"].head(3000), frames["valid"].head(900), PARAMS)
    assert model.predict(frames["test"].head(30)).shape == (30,)
    [active] = seen
    assert active.status == "closed"
    assert active.cluster.status == Status.closed
