"""`shoprank bench serving` end to end on the served tiny shop: every figure of the report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHOPRANK = str(Path(sys.executable).with_name("shoprank"))
KINDS = {"known_user", "unknown_user", "in_session", "event"}

pytestmark = pytest.mark.slow


def _shoprank(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the CLI from the repo root; it must succeed."""
    result = subprocess.run(
        [SHOPRANK, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_bench_serving_command_writes_rates_floor_and_event_delay(served, tmp_path):
    # the bench's events push session features: keep them out of the shared served copy
    data = tmp_path / "data"
    shutil.copytree(served.data_path, data, ignore=shutil.ignore_patterns("events"))
    out = tmp_path / "bench_serving.json"
    env = {**os.environ, "SHOPRANK_BENTOML_HOME": str(served.bentoml_home)}
    env.pop("SHOPRANK_MODEL_TAG", None)  # the command picks the newest ranker, as `make serve`
    args = ["--data-dir", str(data), "bench", "serving", "--quick", "--rates", "20"]
    args += ["--duration", "2", "--no-search", "--workers", "1", "--delay-trials", "5"]
    result = _shoprank([*args, "--out", str(out)], env)
    assert "Recommender: 20 rps for 2 s" in result.stdout

    report = json.loads(out.read_text())
    assert report["settings"]["rates"] == [20.0] and report["settings"]["workers"] == 1
    assert report["service"]["search"] is None
    for name in ("service", "floor"):
        (rate,) = report[name]["fixed"]
        assert rate["target_rps"] == 20.0 and rate["sent"] == 40
        assert rate["ok"] > 0 and rate["achieved_rps"] > 0
        assert all(rate["latency_ms"][q] is not None for q in ("p50", "p95", "p99"))
        assert {"total", "by_kind"} <= set(rate["errors"])
        assert rate["server"]["cpu_ms_per_request"] > 0
        assert len(rate["server"]["rss_mb_per_worker"]) == 1
        assert rate["drain_s"] >= 0
    assert set(report["service"]["fixed"][0]["by_kind"]) <= KINDS
    assert "known_user" in report["service"]["fixed"][0]["by_kind"]
    assert "event" not in report["floor"]["fixed"][0]["by_kind"]
    assert report["floor"]["fixed"][0]["errors"]["total"] == 0

    delay = report["event_delay"]
    assert delay["trials"] == 5 and delay["failed"] == 0, delay["per_trial"]
    # the worker follows the event log before answering: it sees the view at once, and keeps it
    assert delay["visible"] == delay["visible_within"] == delay["first_poll_visible"] == 5
    assert delay["visible_within_and_stable"] == 5
    assert delay["trials_with_regressions"] == 0 and delay["pushed"] == 5
    assert 0 < delay["delay_ms"]["p50"] <= delay["delay_ms"]["p95"] <= delay["delay_ms"]["max"]

    reads = report["online_read"]  # the three ways of reading a request's rows
    assert reads["store"] == "SqliteOnlineStore" and reads["direct_sqlite"]
    for workload in ("user_rows", "brand_affinities"):
        for way in ("get_online_features", "online_read", "service"):
            assert reads[workload][way]["median_ms"] > 0


def test_bench_content_index_compares_the_saved_index_with_a_scan(served, tmp_path):
    """The served tag carries its content index; on the tiny catalog qdrant searches exactly."""
    out = tmp_path / "bench_content_index.json"
    env = {**os.environ, "SHOPRANK_BENTOML_HOME": str(served.bentoml_home)}
    env["SHOPRANK_MODEL_TAG"] = served.model_tag
    args = ["--data-dir", str(served.data_path), "bench", "content-index", "--queries", "40"]
    _shoprank([*args, "--out", str(out)], env)
    report = json.loads(out.read_text())
    assert report["tag"] == served.model_tag and report["queries"] > 0
    assert report["scan"]["median_ms"] > 0
    for ef, found in report["hnsw_ef"].items():
        assert found["recall_mean"] == found["share_exact_top_k"] == 1.0, ef
        assert found["median_ms"] > 0
