"""Raw inputs are checked against the contract before dbt runs."""

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoprank.data.generator import generate
from shoprank.data.schema import RawSchemaError, raw_schemas, validate_raw_dir


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shop")
    generate(
        scale="tiny",
        seed=3,
        out_dir=out,
        start=datetime(2025, 1, 1, tzinfo=UTC),
        end=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return out / "raw"


def test_generated_files_satisfy_the_contract(raw_dir):
    validate_raw_dir(raw_dir)
    assert set(raw_schemas()) == {"events", "users", "products", "sessions"}


def _rewrite(raw_dir, tmp_path, name, change):
    target = tmp_path / "raw"
    target.mkdir()
    for other in raw_schemas():
        table = pq.read_table(raw_dir / f"{other}.parquet")
        pq.write_table(change(table) if other == name else table, target / f"{other}.parquet")
    return target


def test_wrong_column_type_names_file_and_column(raw_dir, tmp_path):
    def ids_as_text(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index("user_id")
        return table.set_column(index, "user_id", table["user_id"].cast(pa.string()))

    target = _rewrite(raw_dir, tmp_path, "events", ids_as_text)
    with pytest.raises(
        RawSchemaError,
        match=r"events\.parquet: column user_id has type string, "
        r"expected int64",
    ):
        validate_raw_dir(target)


def test_missing_column_and_unreadable_file_are_named(raw_dir, tmp_path):
    target = _rewrite(raw_dir, tmp_path, "users", lambda t: t.drop_columns(["region"]))
    with pytest.raises(RawSchemaError, match=r"users\.parquet: column region is missing"):
        validate_raw_dir(target)
    (target / "users.parquet").write_text("not parquet")
    with pytest.raises(RawSchemaError, match=r"users\.parquet: not a readable Parquet file"):
        validate_raw_dir(target)
