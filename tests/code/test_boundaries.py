"""The generator's latent truth is never an input to features (only the oracle reads it)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_dbt_sources_read_only_the_raw_folder():
    sources = yaml.safe_load((ROOT / "dbt_project/models/staging/_sources.yml").read_text())
    location = sources["sources"][0]["meta"]["external_location"]
    assert "SHOPRANK_RAW_DIR" in location and "/raw" in location
    for path in (ROOT / "dbt_project").rglob("*.sql"):
        assert "truth" not in path.read_text(), path


def test_feature_code_never_touches_the_truth():
    for package in ("features", "transform"):
        for path in (ROOT / "src/shoprank" / package).rglob("*.py"):
            text = path.read_text()
            assert "truth_dir" not in text and "oracle" not in text, path
    for path in (ROOT / "feature_repo").glob("*.py"):
        assert "truth" not in path.read_text(), path
