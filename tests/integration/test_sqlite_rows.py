"""The service's direct SQLite read returns exactly Feast's ``online_read`` rows."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from shoprank.candidates.data import load_catalog
from shoprank.features.online import OnlineFeatures, entity_key
from shoprank.features.store import open_store
from shoprank.ranking.examples import load_users
from shoprank.serving.app import preload_keys

pytestmark = pytest.mark.slow


def _keys(served, names: tuple[str, ...]) -> list[tuple]:
    """Real and missing values for each join key, all combinations (bounded)."""
    catalog = load_catalog(served.warehouse_path).frame
    users = [int(u) for u in load_users(served).index[:40]] + [0, 10**9]
    days = preload_keys_days(served)
    values = {
        "user_id": users,
        "product_id": [int(p) for p in catalog.index[:300]] + [10**9],
        "category_l1": sorted(catalog["category_l1"].dropna().unique()) + ["no such"],
        "brand": sorted(catalog["brand"].dropna().unique())[:60] + ["no such é"],
        "calendar_date": days,
    }
    return list(itertools.islice(itertools.product(*(values[n] for n in names)), 3000))


def preload_keys_days(served) -> list[str]:
    from shoprank.training.bundle import load_recommender

    _, state = load_recommender(served.model_tag, served.bentoml_home)
    return preload_keys(state)["calendar_date"][::7]


def test_direct_rows_equal_feasts_online_read(served):
    store = open_store(served, serving=True)
    online = OnlineFeatures(store, "ranker_v1")
    assert online._direct is not None  # SQLite, and its keys are Feast's
    provider = store._get_provider()
    found_any = 0
    for group in online.groups:
        keys = _keys(served, group.keys)
        protos = [entity_key(group.keys, k) for k in keys]
        feast = provider.online_read(store.config, group.view, protos, list(group.features))
        direct = online._direct.read(group.view, group.keys, keys, list(group.features))
        assert len(direct) == len(feast)
        for key, ours, theirs in zip(keys, direct, feast, strict=True):
            if theirs[1] is None:
                assert ours is None, (group.view.name, key)
                continue
            found_any += 1
            assert ours is not None, (group.view.name, key)
            assert ours[0] == theirs[0], (group.view.name, key)
            assert ours[1] == {n: v for n, v in theirs[1].items() if n in group.features}
    assert found_any > 100


def test_bulk_scan_equals_feasts_online_read(served):
    """The in-process user x attribute tables hold exactly what ``online_read`` returns."""
    from feast.type_map import feast_value_type_to_python_type

    from shoprank.features.online import user_attribute

    store = open_store(served, serving=True)
    online = OnlineFeatures(store, "ranker_v1")
    provider = store._get_provider()
    groups = [g for g in online.groups if user_attribute(g)]
    assert {g.keys[1] for g in groups} == {"brand", "category_l1"}
    for group in groups:
        frame = online.scan(group)
        assert frame is not None and len(frame) > 100, group.view.name
        keys = list(frame.index)
        sample = keys[:: max(len(keys) // 400, 1)]
        protos = [entity_key(group.keys, k) for k in sample]
        feast = provider.online_read(store.config, group.view, protos, list(group.features))
        for key, (stamp, values) in zip(sample, feast, strict=True):
            assert values is not None, (group.view.name, key)
            row = frame.loc[key]
            stamp = pd.Timestamp(stamp)
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
            assert row["_feature_ts"] == stamp, key
            for name in group.features:
                expected = feast_value_type_to_python_type(values[name]) if name in values else None
                got = row[f"{group.view.name}__{name}"]
                if expected is None:
                    assert pd.isna(got), (key, name)
                else:
                    assert got == pytest.approx(expected), (key, name)
