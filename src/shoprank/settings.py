"""One typed settings object for all of shoprank's Python code.

Every value has a documented default and can be overridden by an environment variable
``SHOPRANK_<FIELD>`` (for example ``SHOPRANK_DATA_DIR=/tmp/shop``). The temporal split
(data window, validation and test boundaries) is *not* defined here: it lives once, as
vars in ``dbt_project/dbt_project.yml``, and :func:`Settings.splits` reads it from there so
dbt and Python can never disagree.

Load once at the edge (the CLI, a service) with :func:`load_settings` and pass it down.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Scale = Literal["tiny", "small", "seed"]


def _find_project_root() -> Path:
    """Return the shoprank checkout that holds ``dbt_project/`` (cwd first, then the package)."""
    candidates = [Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents]
    for candidate in candidates:
        if (candidate / "dbt_project" / "dbt_project.yml").is_file() and (
            candidate / "feature_repo"
        ).is_dir():
            return candidate
    return Path.cwd()


@dataclass(frozen=True)
class Splits:
    """Temporal boundaries of the data set; every interval is [start, end)."""

    data_start: datetime
    validation_start: datetime
    test_start: datetime
    data_end: datetime

    def as_dict(self) -> dict[str, str]:
        """Return the boundaries as ISO strings (for reports and JSON)."""
        return {
            "train": f"[{self.data_start:%Y-%m-%d}, {self.validation_start:%Y-%m-%d})",
            "validation": f"[{self.validation_start:%Y-%m-%d}, {self.test_start:%Y-%m-%d})",
            "test": f"[{self.test_start:%Y-%m-%d}, {self.data_end:%Y-%m-%d})",
        }


class Settings(BaseSettings):
    """Paths and knobs shared by the CLI, the pipeline stages and the services."""

    model_config = SettingsConfigDict(env_prefix="SHOPRANK_", extra="ignore")

    project_root: Path = Field(
        default_factory=_find_project_root,
        description="Checkout holding dbt_project/ and feature_repo/.",
    )
    data_dir: Path | None = Field(
        default=None, description="Where generated data, marts and stores go (default: ./data)."
    )
    scale: Scale = Field(default="seed", description="Default generator scale.")
    seed: int = Field(default=42, description="Default random seed for the generator.")
    dbt_target: str = Field(default="dev", description="dbt target in profiles.yml.")
    online_store: Literal["sqlite", "redis"] = Field(
        default="sqlite", description="Feast online store: sqlite (default) or redis."
    )
    redis_url: str = Field(
        default="127.0.0.1:6379", description="Redis connection string when online_store=redis."
    )
    qdrant_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("qdrant_url", "SHOPRANK_QDRANT_URL", "QDRANT_URL"),
        description="Qdrant server URL (env QDRANT_URL); unset = the in-process qdrant-edge index.",
    )
    bentoml_home: Path | None = Field(
        default=None,
        description="BentoML home for the model store (default: $BENTOML_HOME or ~/bentoml).",
    )
    feature_service: str = Field(
        default="ranker_v1", description="Feast feature service used for training and serving."
    )
    model_tag: str | None = Field(
        default=None,
        description="Exact BentoML tag the service serves (name:version, never :latest); "
        "unset = `bentoml serve` refuses to start and names the tags it could serve.",
    )
    serving_clock: Literal["data", "wall"] = Field(
        default="data",
        description="What `now` is for requests without a timestamp: `data` = the moment "
        "the served model was fit (the end of the data) plus the time since the service "
        "started, for a synthetic shop whose log ends in the past; `wall` = the real clock.",
    )
    online_timeout_ms: float = Field(
        default=50.0,
        description="Budget for one online-store read when serving; slower or failing reads "
        "get the fallback answer (degraded: true). Also Redis' socket timeouts when serving.",
    )
    serving_workers: int = Field(
        default=2, ge=1, description="BentoML worker processes of the service (one per core)."
    )
    serving_max_concurrency: int = Field(
        default=64, ge=1, description="Requests a worker takes at once before answering 503."
    )
    event_log: Path | None = Field(
        default=None,
        description="The service's append-only event log (default: data/events/events.jsonl).",
    )
    serving_refresh_s: float = Field(
        default=60.0,
        ge=0.0,
        description="How often each worker checks Feast's registry for a new materialization "
        "of the item views (products, calendar) and reloads them; 0 = never.",
    )
    max_request_bytes: int = Field(
        default=65_536, description="Largest request body the service accepts (413 above)."
    )
    dask_scheduler: str | None = Field(
        default=None,
        description="Dask scheduler address (e.g. tcp://10.0.0.5:8786): when set, `shoprank "
        "evaluate` fits the rankers with xgboost.dask there; unset = in-process XGBoost.",
    )

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.resolve() if value is not None else None

    # Derived paths
    @property
    def data_path(self) -> Path:
        """Root of all generated and derived data."""
        return (self.data_dir or self.project_root / "data").resolve()

    @property
    def raw_dir(self) -> Path:
        """Raw Parquet logs written by the generator (dbt sources)."""
        return self.data_path / "raw"

    @property
    def truth_dir(self) -> Path:
        """The generator's latent truth; never read by features or models."""
        return self.data_path / "truth"

    @property
    def marts_dir(self) -> Path:
        """Parquet feature marts written by dbt (Feast FileSources)."""
        return self.data_path / "marts"

    @property
    def warehouse_path(self) -> Path:
        """DuckDB file dbt builds into."""
        return self.data_path / "warehouse.duckdb"

    @property
    def feast_dir(self) -> Path:
        """Feast registry and SQLite online store."""
        return self.data_path / "feast"

    @property
    def event_log_path(self) -> Path:
        """The service's append-only log of the events posted to it (JSON lines)."""
        return self.event_log or self.data_path / "events" / "events.jsonl"

    @property
    def dbt_project_dir(self) -> Path:
        """The dbt project (also holds profiles.yml)."""
        return self.project_root / "dbt_project"

    @property
    def feature_repo_dir(self) -> Path:
        """The Feast feature repository."""
        return self.project_root / "feature_repo"

    @property
    def reports_dir(self) -> Path:
        """Benchmarks and evaluation outputs."""
        return self.project_root / "reports"

    @property
    def beauty_dir(self) -> Path:
        """The team's Amazon Beauty copy: ``shared/datasets/amazon_beauty`` beside the project."""
        return self.project_root.parent / "shared" / "datasets" / "amazon_beauty"

    @cached_property
    def splits(self) -> Splits:
        """Temporal split, read from the vars in ``dbt_project/dbt_project.yml``."""
        return read_splits(self.dbt_project_dir / "dbt_project.yml")

    def tool_env(self) -> dict[str, str]:
        """Environment for dbt and Feast (profiles.yml and feature_store.yaml read it)."""
        env = dict(os.environ)
        env.update(
            SHOPRANK_DATA_DIR=str(self.data_path),
            SHOPRANK_RAW_DIR=str(self.raw_dir),
            SHOPRANK_MARTS_DIR=str(self.marts_dir),
            SHOPRANK_WAREHOUSE=str(self.warehouse_path),
            DBT_PROFILES_DIR=str(self.dbt_project_dir),
        )
        return env


def _parse_day(value: object, key: str, path: Path) -> datetime:
    try:
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"{path}: vars.{key} is not an ISO date: {value!r}") from exc


def read_splits(dbt_project_yml: Path) -> Splits:
    """Read the temporal split vars from a dbt_project.yml.

    Raises:
        ValueError: naming the file and var when one is missing, malformed or out of order.

    """
    try:
        doc = yaml.safe_load(dbt_project_yml.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{dbt_project_yml}: cannot read: {exc}") from exc
    project_vars = (doc or {}).get("vars") or {}
    keys = ("data_start", "validation_start", "test_start", "data_end")
    missing = [k for k in keys if k not in project_vars]
    if missing:
        raise ValueError(f"{dbt_project_yml}: vars.{missing[0]} is missing")
    splits = Splits(**{k: _parse_day(project_vars[k], k, dbt_project_yml) for k in keys})
    if not splits.data_start < splits.validation_start < splits.test_start < splits.data_end:
        raise ValueError(
            f"{dbt_project_yml}: vars must satisfy "
            "data_start < validation_start < test_start < data_end"
        )
    return splits


def load_settings(**overrides: object) -> Settings:
    """Build the settings from defaults, ``SHOPRANK_*`` environment variables and overrides."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
