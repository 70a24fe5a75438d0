"""The Redis online store, selected by configuration, serves what SQLite serves."""

import shutil

import pytest

from shoprank.features import store
from shoprank.settings import load_settings

pytestmark = pytest.mark.slow


def test_redis_online_store_matches_sqlite(tiny_platform, tiny_settings, redis_server, tmp_path):
    redis_settings = load_settings(data_dir=tmp_path, online_store="redis", redis_url=redis_server)
    shutil.copytree(tiny_settings.marts_dir, redis_settings.marts_dir)
    store.apply(redis_settings)
    result = store.materialize(redis_settings, end=redis_settings.splits.data_end)
    assert result["mode"] == "backfill"
    assert set(result["seconds_by_view"]) == {
        v.name for v in store.open_store(redis_settings).list_feature_views()
    }
    redis_store = store.open_store(redis_settings)
    assert type(redis_store.config.online_store).__name__ == "RedisOnlineStoreConfig"

    features = ["user_features:events_total", "user_features:region", "product_features:price"]
    rows = [{"user_id": u, "product_id": u} for u in range(1, 40)]
    from_redis = redis_store.get_online_features(features=features, entity_rows=rows).to_dict()
    from_sqlite = (
        store.open_store(tiny_settings)
        .get_online_features(features=features, entity_rows=rows)
        .to_dict()
    )
    assert from_redis == from_sqlite
    assert sum(v is not None for v in from_redis["events_total"]) > 10
