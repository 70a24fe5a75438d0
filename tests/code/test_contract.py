"""The dbt <-> Feast <-> Parquet contract checker, on hand-made objects."""

from datetime import timedelta

import pandas as pd
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.dbt.parser import DbtColumn, DbtModel
from feast.types import Float64, Int64, String

from shoprank.features.contract import compare_with_files, compare_with_registry


def _model(*columns: tuple[str, str]) -> DbtModel:
    return DbtModel(
        name="user_features",
        unique_id="model.shoprank.user_features",
        database="db",
        schema="main",
        alias="user_features",
        columns=[DbtColumn(name=n, data_type=t) for n, t in columns],
        tags=["feast"],
    )


def _view(*fields: Field) -> FeatureView:
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    source = FileSource(name="s", path="/tmp/x.parquet", timestamp_field="event_timestamp")
    return FeatureView(
        name="user_features",
        entities=[user],
        schema=[Field(name="user_id", dtype=Int64), *fields],
        source=source,
        ttl=timedelta(0),
    )


BASE = (("user_id", "bigint"), ("event_timestamp", "timestamp"), ("views_7d", "bigint"))


def test_agreeing_definitions_have_no_problems():
    assert (
        compare_with_registry([_model(*BASE)], [_view(Field(name="views_7d", dtype=Int64))]) == []
    )


def test_column_added_in_dbt_but_missing_in_feast_is_reported():
    model = _model(*BASE, ("region", "varchar"))
    problems = compare_with_registry([model], [_view(Field(name="views_7d", dtype=Int64))])
    assert problems == ["user_features.region: in dbt but not in Feast"]


def test_column_only_in_feast_and_type_drift_are_reported():
    view = _view(Field(name="views_7d", dtype=Float64), Field(name="legacy", dtype=String))
    problems = compare_with_registry([_model(*BASE)], [view])
    assert "user_features.legacy: in Feast but not in dbt" in problems
    assert any(p.startswith("user_features.views_7d: dbt type bigint") for p in problems)


def test_view_without_model_is_reported():
    problems = compare_with_registry([], [_view()])
    assert problems == ["user_features: Feast feature view has no dbt model tagged feast"]


def test_file_schema_drift_is_reported(tmp_path):
    pd.DataFrame(
        {
            "user_id": pd.Series([1], dtype="int64"),
            "event_timestamp": pd.to_datetime(["2025-01-01"]),
            "views_7d": pd.Series([1.5], dtype="float64"),
            "surprise": ["x"],
        }
    ).to_parquet(tmp_path / "user_features.parquet")
    problems = compare_with_files([_model(*BASE)], tmp_path)
    assert "user_features.surprise: in user_features.parquet but not documented in dbt" in problems
    assert "user_features.views_7d: documented bigint, file has double" in problems
