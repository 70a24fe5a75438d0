"""Feast registers what dbt documents, and dbt/Feast drift is caught."""

import json

import pytest

from shoprank.features.contract import compare_with_files, compare_with_registry
from shoprank.features.definitions import FEATURE_SERVICES, load_feast_models, manifest_path
from shoprank.features.store import open_store

pytestmark = pytest.mark.slow


def test_registry_matches_dbt_manifest_and_files(tiny_platform, tiny_settings):
    models = load_feast_models(manifest_path(tiny_settings))
    views = open_store(tiny_settings).list_feature_views()
    assert {v.name for v in views} == {m.name for m in models}
    assert compare_with_registry(models, views) == []
    assert compare_with_files(models, tiny_settings.marts_dir) == []


def _mutated_manifest(tiny_settings, tmp_path, mutate):
    manifest = json.loads(manifest_path(tiny_settings).read_text())
    node = manifest["nodes"]["model.shoprank.user_features"]
    mutate(node["columns"])
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return load_feast_models(path)


def test_a_column_added_in_dbt_only_fails_the_contract(tiny_platform, tiny_settings, tmp_path):
    def add(columns):
        columns["loyalty_tier"] = {**columns["region"], "name": "loyalty_tier"}

    models = _mutated_manifest(tiny_settings, tmp_path, add)
    problems = compare_with_registry(models, open_store(tiny_settings).list_feature_views())
    assert problems == ["user_features.loyalty_tier: in dbt but not in Feast"]


def test_a_column_dropped_from_dbt_fails_the_contract(tiny_platform, tiny_settings, tmp_path):
    models = _mutated_manifest(tiny_settings, tmp_path, lambda columns: columns.pop("region"))
    problems = compare_with_registry(models, open_store(tiny_settings).list_feature_views())
    assert problems == ["user_features.region: in Feast but not in dbt"]


def test_feature_service_is_named_per_model_version(tiny_platform, tiny_settings):
    store = open_store(tiny_settings)
    service = store.get_feature_service("ranker_v1")
    assert {p.name for p in service.feature_view_projections} == set(FEATURE_SERVICES["ranker_v1"])


def test_sources_point_at_the_dbt_marts_and_carry_the_dbt_model(tiny_platform, tiny_settings):
    store = open_store(tiny_settings)
    for view in store.list_feature_views():
        assert view.batch_source.path == str(tiny_settings.marts_dir / f"{view.name}.parquet")
        assert view.tags["dbt.model"] == view.name


def test_session_features_have_a_push_source(tiny_platform, tiny_settings):
    store = open_store(tiny_settings)
    view = store.get_feature_view("session_features")
    assert view.stream_source is not None and view.stream_source.name == "session_events_push"


def test_online_store_serves_the_latest_snapshot(tiny_platform, tiny_settings):
    import pandas as pd

    feats = pd.read_parquet(tiny_settings.marts_dir / "user_features.parquet")
    latest = feats.sort_values("event_timestamp").groupby("user_id").last()
    users = latest.index[:20].tolist()
    online = (
        open_store(tiny_settings)
        .get_online_features(
            features=["user_features:events_total", "user_features:age_band"],
            entity_rows=[{"user_id": int(u)} for u in users],
        )
        .to_df()
    )
    assert online["events_total"].tolist() == latest.loc[users, "events_total"].tolist()
    assert online["age_band"].tolist() == latest.loc[users, "age_band"].tolist()


def test_expired_values_are_not_loaded_online(tiny_platform, tiny_settings):
    """Online reads ignore TTL, so materialize skips rows already expired at its end."""
    import pandas as pd

    sessions = pd.read_parquet(tiny_settings.marts_dir / "session_features.parquet")
    last = sessions.groupby("user_id")["event_timestamp"].max()
    end = pd.Timestamp(tiny_settings.splits.data_end).tz_localize(None)
    fresh = last[last >= end - pd.Timedelta(days=1)].index[:5].tolist()
    stale = last[last < end - pd.Timedelta(days=2)].index[:5].tolist()
    assert fresh and stale
    online = (
        open_store(tiny_settings)
        .get_online_features(
            features=["session_features:last_product_id"],
            entity_rows=[{"user_id": int(u)} for u in fresh + stale],
        )
        .to_dict()["last_product_id"]
    )
    assert all(v is not None for v in online[: len(fresh)])
    assert all(v is None for v in online[len(fresh) :])


def test_second_materialize_is_incremental(tiny_platform, tiny_settings):
    from shoprank.features import store

    result = store.materialize(tiny_settings, end=tiny_settings.splits.data_end)
    assert result["mode"] == "incremental"
