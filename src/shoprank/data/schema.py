"""The raw-file contract: what the dbt sources expect in ``$SHOPRANK_DATA_DIR/raw/``.

The generator writes these schemas, an adapter for a real shop must too, and
:func:`validate_raw_dir` checks a raw folder against them before dbt runs, so a wrong file or
column type fails early with the file and column named instead of deep inside dbt.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TIMESTAMP = pa.timestamp("us", tz="UTC")


class RawSchemaError(ValueError):
    """A raw file is missing or does not match the contract."""


def raw_schemas() -> dict[str, pa.Schema]:
    """The raw-file contract (dbt sources): column names and Arrow types per file."""
    return {
        "products": pa.schema(
            [
                ("product_id", pa.int64()),
                ("title", pa.string()),
                ("description", pa.string()),
                ("category_l1", pa.string()),
                ("category_l2", pa.string()),
                ("brand", pa.string()),
                ("color", pa.string()),
                ("material", pa.string()),
                ("price", pa.float64()),
                ("in_stock", pa.bool_()),
                ("launched_at", TIMESTAMP),
            ]
        ),
        "users": pa.schema(
            [
                ("user_id", pa.int64()),
                ("signup_at", TIMESTAMP),
                ("age_band", pa.string()),
                ("region", pa.string()),
                ("device_preference", pa.string()),
            ]
        ),
        "sessions": pa.schema(
            [
                ("session_id", pa.string()),
                ("user_id", pa.int64()),
                ("started_at", TIMESTAMP),
                ("ended_at", TIMESTAMP),
                ("device", pa.string()),
                ("traffic_source", pa.string()),
            ]
        ),
        "events": pa.schema(
            [
                ("event_id", pa.string()),
                ("event_timestamp", TIMESTAMP),
                ("user_id", pa.int64()),
                ("product_id", pa.int64()),
                ("session_id", pa.string()),
                ("event_type", pa.string()),
                ("price", pa.float64()),
                ("quantity", pa.int32()),
                ("device", pa.string()),
            ]
        ),
    }


def _family(dtype: pa.DataType) -> str:
    """Coarse type family: integer, floating, string, timestamp, boolean or the type itself."""
    checks = (
        (pa.types.is_integer, "integer"),
        (pa.types.is_floating, "floating"),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "string"),
        (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_boolean, "boolean"),
    )
    return next((name for check, name in checks if check(dtype)), str(dtype))


def validate_raw_file(path: Path, expected: pa.Schema) -> None:
    """Check one raw Parquet file: present, readable, every contract column of the right family.

    Extra columns are allowed (a real shop's export may carry more).

    Raises:
        RawSchemaError: naming the file and the column.
    """
    if not path.is_file():
        raise RawSchemaError(f"{path}: raw source missing; run `shoprank generate` first")
    try:
        actual = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise RawSchemaError(f"{path}: not a readable Parquet file ({exc})") from exc
    for field in expected:
        if field.name not in actual.names:
            raise RawSchemaError(f"{path}: column {field.name} is missing")
        got = actual.field(field.name).type
        if _family(got) != _family(field.type):
            raise RawSchemaError(
                f"{path}: column {field.name} has type {got}, expected {field.type}"
            )


def validate_raw_dir(raw_dir: Path) -> None:
    """Validate every raw source file in ``raw_dir`` (see :func:`validate_raw_file`)."""
    for name, schema in raw_schemas().items():
        validate_raw_file(raw_dir / f"{name}.parquet", schema)
