"""Checks that dbt, Feast and the Parquet marts agree on every feature table.

Three descriptions of one table must match: the columns dbt documents (manifest, with
``data_type``), the schema Feast registered, and the file dbt actually wrote. A column added
in dbt but not registered in Feast (or the reverse), or a file whose columns drift from the
docs, is reported by name.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureView
from feast.dbt.mapper import map_dbt_type_to_feast_type
from feast.dbt.parser import DbtModel

from shoprank.features.definitions import TIMESTAMP_FIELD

#: Arrow types a documented dbt type may be written as.
_ARROW_TYPES: dict[str, tuple[pa.DataType, ...]] = {
    "bigint": (pa.int64(),),
    "integer": (pa.int32(), pa.int64()),
    "double": (pa.float64(),),
    "varchar": (pa.string(), pa.large_string()),
    "boolean": (pa.bool_(),),
}


def compare_with_registry(models: list[DbtModel], views: list[FeatureView]) -> list[str]:
    """Differences between dbt's documented columns and Feast's registered schemas."""
    problems: list[str] = []
    by_name = {view.name: view for view in views}
    for model in models:
        view = by_name.get(model.name)
        if view is None:
            problems.append(f"{model.name}: dbt model tagged feast has no Feast feature view")
            continue
        feast_fields = {f.name: f.dtype for f in [*view.features, *view.entity_columns]}
        dbt_fields = {c.name: c for c in model.columns if c.name != TIMESTAMP_FIELD}
        for name in sorted(dbt_fields.keys() - feast_fields.keys()):
            problems.append(f"{model.name}.{name}: in dbt but not in Feast")
        for name in sorted(feast_fields.keys() - dbt_fields.keys()):
            problems.append(f"{model.name}.{name}: in Feast but not in dbt")
        for name in sorted(dbt_fields.keys() & feast_fields.keys()):
            expected = map_dbt_type_to_feast_type(dbt_fields[name].data_type)
            if expected != feast_fields[name]:
                problems.append(
                    f"{model.name}.{name}: dbt type {dbt_fields[name].data_type} is "
                    f"{expected} in Feast terms, registered as {feast_fields[name]}"
                )
    for name in sorted(by_name.keys() - {m.name for m in models}):
        problems.append(f"{name}: Feast feature view has no dbt model tagged feast")
    return problems


def compare_with_files(models: list[DbtModel], marts_dir: Path) -> list[str]:
    """Differences between dbt's documented columns and the Parquet files dbt wrote."""
    problems: list[str] = []
    for model in models:
        path = marts_dir / f"{model.name}.parquet"
        if not path.is_file():
            problems.append(f"{model.name}: {path} does not exist")
            continue
        schema = pq.read_schema(path)
        documented = {c.name: c.data_type.lower() for c in model.columns}
        for name in sorted(set(schema.names) - documented.keys()):
            problems.append(f"{model.name}.{name}: in {path.name} but not documented in dbt")
        for name in sorted(documented.keys() - set(schema.names)):
            problems.append(f"{model.name}.{name}: documented in dbt but not in {path.name}")
        for name in sorted(documented.keys() & set(schema.names)):
            allowed = _ARROW_TYPES.get(documented[name])
            actual = schema.field(name).type
            if allowed is not None and actual not in allowed:
                problems.append(
                    f"{model.name}.{name}: documented {documented[name]}, file has {actual}"
                )
    return problems
