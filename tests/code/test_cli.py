"""Bad input gives a one-line error naming the file or field, and a non-zero exit."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shoprank.features.store import FeatureStoreConfigError, load_repo_config
from shoprank.settings import load_settings

SHOPRANK = str(Path(sys.executable).with_name("shoprank"))


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [SHOPRANK, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_every_command_has_help():
    for args in (
        ["--help"],
        ["generate", "--help"],
        ["dbt", "build", "--help"],
        ["features", "apply", "--help"],
        ["features", "training-set", "--help"],
        ["features", "materialize", "--help"],
        ["features", "check", "--help"],
        ["pipeline", "--help"],
        ["bench", "pipeline", "--help"],
        ["bench", "candidates", "--help"],
        ["bench", "serving", "--help"],
        ["tune", "rerank", "--help"],
    ):
        result = _run(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage" in result.stdout


def test_dbt_build_without_raw_data_names_the_missing_file(tmp_path):
    result = _run("--data-dir", str(tmp_path), "dbt", "build")
    assert result.returncode == 2
    assert f"{tmp_path}/raw/products.parquet: raw source missing" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_feast_steps_refuse_incomplete_marts(tmp_path):
    result = _run("--data-dir", str(tmp_path), "features", "apply")
    assert result.returncode == 2
    assert "_build.json: missing" in result.stderr


def test_candidate_bench_names_a_bad_cutoff_day(tmp_path):
    result = _run("--data-dir", str(tmp_path), "bench", "candidates", "--at", "2025-13-40")
    assert result.returncode == 2
    assert "'2025-13-40' is not a date" in result.stderr
    assert not (tmp_path / "reports").exists()


def test_bad_setting_names_the_environment_variable(tmp_path):
    result = _run("features", "apply", env={"SHOPRANK_ONLINE_STORE": "mongo"})
    assert result.returncode == 2
    assert "SHOPRANK_ONLINE_STORE" in result.stderr


def test_unknown_scale_is_rejected(tmp_path):
    result = _run("--data-dir", str(tmp_path), "generate", "--scale", "huge")
    assert result.returncode == 2
    assert "scale" in result.stderr
    assert not (tmp_path / "raw").exists()


def _project_copy(tmp_path: Path, feature_store_yaml: str) -> Path:
    root = Path(__file__).resolve().parents[2]
    shutil.copytree(
        root / "dbt_project",
        tmp_path / "dbt_project",
        ignore=shutil.ignore_patterns("target", "logs"),
    )
    (tmp_path / "feature_repo").mkdir()
    (tmp_path / "feature_repo" / "feature_store.yaml").write_text(feature_store_yaml)
    return tmp_path


def test_malformed_feature_store_yaml_names_the_file_and_field(tmp_path):
    root = _project_copy(
        tmp_path,
        "project: shoprank\nprovider: local\nregistry: ${SHOPRANK_DATA_DIR}/r.db\n"
        "online_store:\n  type: sqlite\n  path: x.db\nentity_key_serialization_version: seven\n",
    )
    settings = load_settings(project_root=root, data_dir=tmp_path / "data")
    with pytest.raises(
        FeatureStoreConfigError,
        match=r"feature_store\.yaml: invalid field: "
        r"entity_key_serialization_version",
    ):
        load_repo_config(settings)


def test_unparseable_feature_store_yaml_is_reported(tmp_path):
    root = _project_copy(tmp_path, "project: [unclosed\n")
    settings = load_settings(project_root=root, data_dir=tmp_path / "data")
    with pytest.raises(FeatureStoreConfigError, match=r"feature_store\.yaml: malformed"):
        load_repo_config(settings)
