"""Train the ranker on a Dask cluster with ``xgboost.dask`` (optional).

:func:`train_ranker_dask` fits the same model as
:func:`~shoprank.ranking.model.train_ranker` (same feature columns, category vocabularies,
hyper-parameters, monotone constraints and early stopping on a validation frame), with the
rows spread over the workers of a Dask cluster, and returns an ordinary
:class:`~shoprank.ranking.model.RankerModel`: its booster is a plain ``xgb.XGBRanker``, so
evaluation, ``predict`` and the model registry need no cluster.

Every query stays whole on one worker: a pandas frame is cut into partitions at query
boundaries, and a Dask frame must already keep each query's rows in one partition (checked).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xgboost as xgb

from shoprank.ranking.features import LABEL, feature_columns, to_matrix
from shoprank.ranking.model import (
    QUERY,
    RankerModel,
    RankerParams,
    _ranker_kwargs,
    _sorted,
    _vocabularies,
)

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client, LocalCluster


def local_cluster(n_workers: int = 2) -> LocalCluster:
    """A cluster of single-threaded workers in this process, on 127.0.0.1, without dashboard."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
        # The scheduler still serves health and metrics over HTTP: on a free loopback port,
        # not on 8787 (which another cluster may hold).
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )


@contextmanager
def dask_client(client: Client | None = None, scheduler: str | None = None) -> Iterator[Client]:
    """A Dask client: ``client`` itself, one connected to ``scheduler``, or a local cluster.

    Args:
        client: An existing client; used as is and left open.
        scheduler: A scheduler address (e.g. ``tcp://10.0.0.5:8786``, see
            ``Settings.dask_scheduler``); the connection is closed on exit.

    Yields:
        The client. Without ``client`` or ``scheduler``, a two-worker :func:`local_cluster`
        is started, and closed on exit.
    """
    from distributed import Client

    if client is not None:
        yield client
    elif scheduler:
        with Client(scheduler) as remote:
            yield remote
    else:
        with local_cluster() as cluster, Client(cluster) as local:
            yield local


def by_query(frame: pd.DataFrame, n_partitions: int) -> dd.DataFrame:
    """``frame`` as a Dask frame sorted by query, no query split between partitions."""
    import dask.dataframe as dd

    frame = _sorted(frame)
    # from_pandas never splits equal index values between partitions
    frame.index = pd.Index(frame[QUERY].to_numpy())
    return dd.from_pandas(frame, npartitions=n_partitions, sort=True)


def _distinct(series: dd.Series) -> dd.Series:
    """The distinct non-null values of each partition (no shuffle), one partition after another."""
    return series.map_partitions(lambda part: pd.Series(part.dropna().unique()))


def _query_codes(train: dd.DataFrame, valid: dd.DataFrame) -> np.ndarray:
    """Sorted query ids of both frames; ValueError if a query spans two partitions."""
    import dask

    ids = dask.compute(_distinct(train[QUERY]), _distinct(valid[QUERY]))
    for name, found in zip(("train", "valid"), ids, strict=True):
        if found.duplicated().any():
            raise ValueError(
                f"{name}: the rows of a query are spread over several partitions; "
                f"partition by {QUERY} (see by_query)"
            )
    return np.unique(pd.concat(ids).to_numpy())


def _text_vocabularies(frame: dd.DataFrame, columns: list[str]) -> dict[str, list]:
    """Vocabularies of a Dask frame's text columns, as ``to_matrix`` would make them."""
    import dask

    text = [
        c
        for c in columns
        if isinstance(frame.dtypes[c], pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(frame.dtypes[c])
    ]
    values = dask.compute(*(_distinct(frame[c]) for c in text))
    return {
        c: list(pd.Series(v.unique(), dtype=object).astype("category").cat.categories)
        for c, v in zip(text, values, strict=True)
    }


def _inputs(part: pd.DataFrame, model: RankerModel, queries: np.ndarray) -> pd.DataFrame:
    """One partition's feature matrix, label and query number (index in ``queries``)."""
    part = _sorted(part.astype({c: object for c in model.categories}))
    inputs = model.matrix(part)
    inputs[LABEL] = part[LABEL].to_numpy()
    inputs[QUERY] = np.searchsorted(queries, part[QUERY].to_numpy()).astype(np.uint32)
    return inputs


def _fit(
    client: Client, train: dd.DataFrame, valid: dd.DataFrame, kwargs: dict[str, Any]
) -> xgb.XGBRanker:
    """Train with ``DaskXGBRanker``; return the booster as a plain ``XGBRanker``."""
    from xgboost import dask as dxgb

    columns = [c for c in train.columns if c not in (LABEL, QUERY)]
    # Queries are whole in each partition, so xgboost need not re-partition one per query;
    # each worker uses its own threads (n_jobs=None).
    ranker = dxgb.DaskXGBRanker(**{**kwargs, "n_jobs": None}, allow_group_split=True)
    ranker.client = client
    ranker.fit(
        train[columns],
        train[LABEL],
        qid=train[QUERY],
        eval_set=[(valid[columns], valid[LABEL])],
        eval_qid=[valid[QUERY]],
        verbose=False,
    )
    local = xgb.XGBRanker(**kwargs)
    local.load_model(bytearray(ranker.get_booster().save_raw("ubj")))
    return local


def train_ranker_dask(
    train: pd.DataFrame | dd.DataFrame,
    valid: pd.DataFrame | dd.DataFrame,
    params: RankerParams | None = None,
    drop_groups: tuple[str, ...] = (),
    *,
    client: Client | None = None,
    scheduler: str | None = None,
    n_partitions: int | None = None,
) -> RankerModel:
    """Fit like :func:`~shoprank.ranking.model.train_ranker`, on a Dask cluster.

    Args:
        train: Training rows with query_id and label: a pandas frame, or a Dask frame whose
            partitions each hold whole queries.
        valid: Validation rows for early stopping, of the same kind as ``train``.
        params: XGBoost settings (default :class:`RankerParams`).
        drop_groups: Feature groups to leave out (``context``, ``sequence``).
        client: Cluster to train on; left open.
        scheduler: Scheduler address to connect to when ``client`` is None; with neither, a
            two-worker local cluster is started and closed.
        n_partitions: Partitions per pandas frame (default: one per worker).

    Returns:
        A ranker that predicts, reports importances and saves like a local one.

    Raises:
        ValueError: If a Dask frame splits a query between partitions.
    """
    from dask.dataframe.utils import make_meta

    params = params or RankerParams()
    with dask_client(client, scheduler) as active:
        columns = feature_columns(train, drop_groups)
        if isinstance(train, pd.DataFrame):
            categories = _vocabularies(to_matrix(train, columns))
            parts = n_partitions or len(active.nthreads())
            train, valid = by_query(train, parts), by_query(valid, parts)
        else:
            categories = _text_vocabularies(train, columns)
        model = RankerModel(booster=None, columns=columns, categories=categories)  # type: ignore[arg-type]
        queries = _query_codes(train, valid)
        meta = _inputs(make_meta(train), model, queries)
        train, valid = (
            f.map_partitions(_inputs, model, queries, meta=meta) for f in (train, valid)
        )
        model.booster = _fit(active, train, valid, _ranker_kwargs(params, columns))
    return model
