from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from shoprank.settings import load_settings, read_splits


def test_split_is_read_from_dbt_project_vars():
    splits = load_settings().splits
    assert splits.data_start == datetime(2025, 1, 1, tzinfo=UTC)
    assert splits.validation_start == datetime(2025, 11, 1, tzinfo=UTC)
    assert splits.test_start == datetime(2025, 12, 1, tzinfo=UTC)
    assert splits.data_end == datetime(2026, 1, 1, tzinfo=UTC)


def test_env_overrides_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SHOPRANK_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.data_path == tmp_path.resolve()
    assert settings.raw_dir == tmp_path.resolve() / "raw"
    assert settings.tool_env()["SHOPRANK_MARTS_DIR"] == str(tmp_path.resolve() / "marts")


def test_bad_online_store_names_the_setting(monkeypatch):
    monkeypatch.setenv("SHOPRANK_ONLINE_STORE", "mongo")
    with pytest.raises(ValidationError, match="online_store"):
        load_settings()


def _project_yml(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "dbt_project.yml"
    path.write_text(body)
    return path


def test_missing_split_var_names_file_and_var(tmp_path):
    path = _project_yml(
        tmp_path,
        "vars:\n  data_start: '2025-01-01'\n  validation_start: '2025-11-01'\n"
        "  data_end: '2026-01-01'\n",
    )
    with pytest.raises(ValueError, match=r"dbt_project\.yml: vars\.test_start is missing"):
        read_splits(path)


def test_malformed_and_unordered_split_vars_are_rejected(tmp_path):
    bad_date = _project_yml(
        tmp_path,
        "vars: {data_start: 'soon', validation_start: '2025-11-01', test_start: '2025-12-01',"
        " data_end: '2026-01-01'}\n",
    )
    with pytest.raises(ValueError, match="vars.data_start is not an ISO date"):
        read_splits(bad_date)
    unordered = _project_yml(
        tmp_path,
        "vars: {data_start: '2025-01-01', validation_start: '2025-12-15', test_start: '2025-12-01',"
        " data_end: '2026-01-01'}\n",
    )
    with pytest.raises(ValueError, match="data_start < validation_start"):
        read_splits(unordered)


def test_qdrant_url_comes_from_the_standard_variable(monkeypatch):
    assert load_settings().qdrant_url is None
    monkeypatch.setenv("QDRANT_URL", "http://127.0.0.1:6333")
    assert load_settings().qdrant_url == "http://127.0.0.1:6333"


def test_serving_redis_fails_fast_instead_of_retrying(tmp_path):
    """Serving: socket timeouts of online_timeout_ms and no retries (redis-py's default
    backs off for seconds per command when Redis is down: see tests/integration/
    test_redis_outage.py)."""
    import time

    import redis
    from feast.infra.online_stores.redis import RedisOnlineStore

    from shoprank.features.store import load_repo_config

    settings = load_settings(
        data_dir=tmp_path, online_store="redis", redis_url="127.0.0.1:1", online_timeout_ms=50
    )
    client = RedisOnlineStore()._get_client(load_repo_config(settings, serving=True).online_store)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.05
    assert kwargs["retry"] is None
    started = time.perf_counter()
    with pytest.raises(redis.ConnectionError):
        client.ping()  # nothing listens on port 1
    assert time.perf_counter() - started < 0.5
    # batch jobs (materialize) keep redis-py's retries
    assert "retry" not in load_repo_config(settings).online_store.connection_string
