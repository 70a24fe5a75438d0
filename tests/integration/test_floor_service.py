"""The framework floor under a real ``bentoml serve``, driven by the serving benchmark."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import psutil
import pytest

from shoprank.serving.bench import (
    FLOOR_TARGET,
    BenchSettings,
    bentoml_server,
    recommend_only,
    run_serving_bench,
    sample_tree,
)
from shoprank.serving.loadgen import default_mix

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
def bentoml_env(tmp_path: Path) -> dict[str, str]:
    return {"BENTOML_DO_NOT_TRACK": "true", "BENTOML_HOME": str(tmp_path / "bentoml")}


def test_floor_server_answers_and_its_process_tree_stops(bentoml_env):
    with bentoml_server(FLOOR_TARGET, working_dir=REPO, env=bentoml_env, workers=2) as server:
        tree = sample_tree(server.process.pid)
        request = urllib.request.Request(
            f"{server.base_url}/recommend",
            data=json.dumps({"user_id": 3, "session_id": None, "k": 2}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.loads(response.read())
    assert len(tree.workers) == 2
    assert answer["degraded"] is False and len(answer["items"]) == 2
    assert answer["user_id"] == 3
    assert not [pid for pid in tree.cpu_seconds if _running(pid)]


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_bench_on_the_floor_writes_a_report(bentoml_env, tmp_path):
    mix = recommend_only(default_mix(range(1, 101), range(1, 51)))
    settings = BenchSettings(
        rates=(50.0,),
        duration_s=3.0,
        warmup_s=0.5,
        search_steps=1,
        search_duration_s=2.0,
        timeout_s=10.0,
        ready_timeout_s=120.0,
    )
    path = tmp_path / "bench_serving.json"
    run_serving_bench(
        FLOOR_TARGET, path, mix=mix, working_dir=REPO, env=bentoml_env, settings=settings
    )
    report = json.loads(path.read_text())
    assert report["machine"]["cpu_count"] >= 1
    assert report["settings"]["rates"] == [50.0]
    for name in ("service", "floor"):
        (fixed,) = report[name]["fixed"]
        assert fixed["sent"] == 150 and fixed["errors"]["total"] == 0
        assert fixed["achieved_rps"] > 40
        assert fixed["latency_ms"]["p99"] is not None
        assert fixed["server"]["workers"] == 1
        assert fixed["server"]["cpu_ms_per_request"] > 0
        assert fixed["server"]["rss_mb_per_worker"][0] > 10
    (step,) = report["service"]["search"]["steps"]
    passed = report["service"]["fixed"][0]["meets_slo"]
    assert step["target_rps"] == (75.0 if passed else 25.0)
    assert step["errors"]["total"] == 0
    assert report["floor"]["search"] is None
