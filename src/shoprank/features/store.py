"""Open, apply and materialize the Feast store with shoprank's settings.

``feature_repo/feature_store.yaml`` is the one config file; its ``${SHOPRANK_DATA_DIR}`` is
filled from the settings, and ``SHOPRANK_ONLINE_STORE=redis`` swaps its SQLite online store for
Redis at ``SHOPRANK_REDIS_URL`` without a second YAML file.
"""

from __future__ import annotations

import contextlib
import os
import string
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from feast import FeatureStore
from feast.repo_config import RepoConfig

from shoprank.settings import Settings

FEATURE_STORE_YAML = "feature_store.yaml"


class FeatureStoreConfigError(ValueError):
    """feature_store.yaml is missing or malformed."""


def _quiet_known_warnings() -> None:
    """Hide a deprecation that ibis (inside Feast's duckdb store) triggers on every query.

    Feast installs its own warning filters when imported, so ours must come after.
    """
    warnings.filterwarnings("ignore", message="fetch_arrow_table", category=DeprecationWarning)


def load_repo_config(settings: Settings, serving: bool = False) -> RepoConfig:
    """Read feature_store.yaml, fill in the data directory and apply the online-store choice.

    With ``serving``, Redis connections time out after ``settings.online_timeout_ms`` so a
    stalled Redis costs a request its budget, not a worker thread forever, and a failed
    command is not retried: redis-py's default (3 retries with exponential backoff from 1 s)
    holds a request 5 to 15 s when Redis is down, past BentoML's timeout (a 504), where the
    service should answer from its fallback at once. A pooled connection that Redis closed
    (a restart) is still replaced when it is next taken from the pool.

    Raises:
        FeatureStoreConfigError: naming the file and the bad field.

    """
    path = settings.feature_repo_dir / FEATURE_STORE_YAML
    try:
        text = path.read_text()
    except OSError as exc:
        raise FeatureStoreConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        filled = string.Template(text).substitute(settings.tool_env())
        raw = yaml.safe_load(filled)
    except (KeyError, ValueError, yaml.YAMLError) as exc:
        raise FeatureStoreConfigError(f"{path}: malformed: {exc}") from exc
    if not isinstance(raw, dict):
        raise FeatureStoreConfigError(f"{path}: expected a mapping of settings")
    if settings.online_store == "redis":
        connection = settings.redis_url
        if serving and "socket_timeout" not in connection:
            seconds = settings.online_timeout_ms / 1000
            connection += f",socket_timeout={seconds},socket_connect_timeout={seconds}"
        if serving and "retry=" not in connection:
            connection += ",retry=null"  # Feast JSON-decodes values: redis.Redis(retry=None)
        raw["online_store"] = {"type": "redis", "connection_string": connection}
    try:
        config = RepoConfig(**raw)
    except Exception as exc:  # pydantic's ValidationError names the field
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise FeatureStoreConfigError(f"{path}: invalid field: {first[0].strip()}") from exc
    config.repo_path = settings.feature_repo_dir
    return config


def open_store(settings: Settings, serving: bool = False) -> FeatureStore:
    """A FeatureStore for the project's feature repo and data directory."""
    _quiet_known_warnings()
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    config = load_repo_config(settings, serving=serving)
    return FeatureStore(repo_path=str(settings.feature_repo_dir), config=config)


@contextlib.contextmanager
def _tool_environment(settings: Settings) -> Iterator[None]:
    """Let Feast import the repo modules with these settings, then restore the process.

    Exports the settings' paths, puts the repo first on ``sys.path`` and forgets previously
    imported repo modules (their objects were built for whatever settings came first).
    """
    repo = settings.feature_repo_dir
    module_names = {p.stem for p in repo.glob("*.py")}
    saved_env, saved_cwd, saved_path = dict(os.environ), Path.cwd(), list(sys.path)

    def forget_repo_modules() -> None:
        for name in module_names:
            sys.modules.pop(name, None)

    os.environ.update(settings.tool_env())
    sys.path.insert(0, str(repo))
    forget_repo_modules()
    try:
        yield
    finally:
        forget_repo_modules()
        sys.path[:] = saved_path
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)


def apply(settings: Settings) -> None:
    """Register the feature repo's objects (what ``feast apply`` does), deleting stale ones."""
    from feast.repo_operations import apply_total

    from shoprank.transform.dbt import require_complete_marts

    require_complete_marts(settings)
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    config = load_repo_config(settings)
    _quiet_known_warnings()
    with _tool_environment(settings):
        apply_total(config, settings.feature_repo_dir, skip_source_validation=False)


def reset(settings: Settings) -> None:
    """Delete the registry and SQLite online store (a rebuilt data set starts from nothing)."""
    import shutil

    shutil.rmtree(settings.feast_dir, ignore_errors=True)


def materialize(
    settings: Settings, end: datetime, start: datetime | None = None, fresh: bool = False
) -> dict:
    """Load the latest feature values up to ``end`` into the online store.

    A fresh store (no view materialized yet, or ``fresh=True``) is backfilled, because
    ``materialize_incremental`` writes nothing there. Each view is backfilled from the later of
    ``start`` (default: 30 days before the data window) and ``end`` minus its TTL: online reads
    ignore TTL, so loading values that have already expired would serve them as current.
    Later runs are incremental from where the last one stopped.

    Returns:
        ``{"mode": "backfill" | "incremental", "seconds_by_view": {...}}`` (per view for a
        backfill).
    """
    from shoprank.transform.dbt import require_complete_marts

    require_complete_marts(settings)
    store = open_store(settings)
    views = store.list_feature_views()
    if not views:
        raise FeatureStoreConfigError("no feature views registered: run `shoprank features apply`")
    if not (fresh or all(not view.materialization_intervals for view in views)):
        started = time.perf_counter()
        store.materialize_incremental(end_date=end)
        return {"mode": "incremental", "seconds": round(time.perf_counter() - started, 2)}
    begin = start or settings.splits.data_start - timedelta(days=30)
    seconds: dict[str, float] = {}
    for view in sorted(views, key=lambda v: v.name):
        view_start = max(begin, end - view.ttl) if view.ttl else begin
        started = time.perf_counter()
        store.materialize(start_date=view_start, end_date=end, feature_views=[view.name])
        seconds[view.name] = round(time.perf_counter() - started, 2)
    return {"mode": "backfill", "seconds_by_view": seconds}
