"""Candidate-union recall (``shoprank bench candidates``) on the tiny shop."""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from shoprank.candidates.data import load_catalog, load_log
from shoprank.evaluation.candidates import _recall, _union_codes, candidate_recall
from shoprank.ranking.dataset import Cutoff, build_queries, candidate_frame, label_frame
from shoprank.ranking.examples import _as_datetime, in_stock_mask, load_users
from shoprank.training.generators import generator_factory

pytestmark = pytest.mark.slow


def test_union_recall_counts_touched_pairs_any_generator_proposed():
    tops = {"a": np.array([[1, 2, 3], [4, 5, 6]]), "b": np.array([[3, 7, -1], [6, -1, -1]])}
    codes = _union_codes(tops, {"default": 1, "a": 2}, n_items=10)
    assert codes.tolist() == [1, 2, 3, 14, 15, 16]
    touched = pd.DataFrame({"code": [2, 7, 16, 19], "label": [1, 3, 3, 2]})
    out = _recall(codes, touched, n_queries=2)
    assert out["recall"] == 0.5 and out["candidates_per_query"] == 3.0
    assert (out["recall_view"], out["recall_cart"], out["recall_purchase"]) == (1.0, 0.0, 0.5)


def test_recall_matches_the_candidates_the_ranker_is_given(tiny_platform, tiny_settings):
    cutoff = Cutoff(tiny_settings.splits.validation_start, 28)
    factory = generator_factory(None)
    counts = {"fifty": 50, "deeper": {"default": 50, "category": 150, "als": 120}}
    report = candidate_recall(tiny_settings, cutoff, factory, counts, n_users=None)
    fifty, deeper = report.settings["fifty"], report.settings["deeper"]
    assert 0 < fifty["recall"] <= deeper["recall"] <= 1
    assert fifty["candidates_per_query"] < deeper["candidates_per_query"]
    for name, alone in report.generators.items():
        assert alone["recall"] <= fifty["recall"], name

    # The same share, counted on the candidate frame the ranker's examples are built from.
    settings = tiny_settings
    catalog = load_catalog(settings.warehouse_path)
    users = load_users(settings)
    history = load_log(settings.warehouse_path, settings.splits.data_start, cutoff.at)
    end = _as_datetime(cutoff.end)
    labels = label_frame(load_log(settings.warehouse_path, cutoff.at, end), cutoff)
    query_users = np.sort(labels["user_id"].unique())
    generators = factory(users)
    for generator in generators.values():
        generator.fit(history, catalog, cutoff.at)
    queries = build_queries(history, users, query_users, cutoff)
    allowed = catalog.launched_mask(end) & in_stock_mask(catalog)
    union = candidate_frame(generators, queries, counts["deeper"], allowed)
    held = labels.merge(union[["user_id", "product_id"]], on=["user_id", "product_id"])
    assert report.touched_pairs == len(labels)
    assert deeper["recall"] == round(len(held) / len(labels), 4)
    assert deeper["candidates_per_query"] == round(len(union) / len(query_users), 1)
    assert cutoff.at + timedelta(days=28) <= settings.splits.test_start
