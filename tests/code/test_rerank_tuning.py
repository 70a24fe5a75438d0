"""The post-ranking tuning protocol's helpers: the Pareto front and the choice rule."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from shoprank.evaluation.metrics import Relevance
from shoprank.evaluation.rerank_tuning import (
    Choice,
    ListScorer,
    Point,
    TuningReport,
    choose,
    label_of,
    pareto_front,
    pick,
    rules_only,
    setting_grid,
    slot_variants,
)
from shoprank.ranking.rerank import RerankConfig

SHOPRANK = str(Path(sys.executable).with_name("shoprank"))
BASE = RerankConfig()


def _point(label: str, ndcg: float, diversity: float, slot: tuple[int, ...] = (4,)) -> Point:
    setting = RerankConfig(new_arrival_positions=slot)
    return Point(label, ndcg, diversity, setting=setting)


def test_the_front_drops_every_dominated_point():
    points = [
        _point("best ndcg", 0.040, 0.30),
        _point("dominated by best ndcg", 0.039, 0.30),
        _point("middle", 0.038, 0.50),
        _point("dominated by middle", 0.037, 0.45),
        _point("most diverse", 0.030, 0.90),
        _point("dominated twice", 0.029, 0.40),
    ]
    front = pareto_front(points)
    assert [p.label for p in front] == ["best ndcg", "middle", "most diverse"]


def test_exact_duplicates_appear_once_on_the_front():
    points = [_point("a", 0.04, 0.3), _point("b", 0.04, 0.3), _point("c", 0.03, 0.5)]
    assert [p.label for p in pareto_front(points)] == ["a", "c"]


def test_choice_is_the_most_diverse_point_within_three_percent():
    reference = 0.0400  # the plain ranker; 3% of it leaves 0.0388
    points = [
        _point("costs 1%", 0.0396, 0.40),
        _point("costs exactly 3%", 0.0388, 0.55),
        _point("costs 3.1%", 0.03876, 0.80),
        _point("costs 2%, less diverse", 0.0392, 0.50),
    ]
    assert choose(points, reference).label == "costs exactly 3%"
    assert choose(points, reference, budget=0.01).label == "costs 1%"
    assert choose(points, reference, budget=0.001) is None


def test_choice_breaks_diversity_ties_by_ndcg_so_it_lies_on_the_front():
    points = [_point("lower", 0.0390, 0.6), _point("higher", 0.0395, 0.6)]
    chosen = choose(points, 0.04)
    assert chosen.label == "higher"
    assert chosen in pareto_front(points)


def test_the_configured_slot_is_kept_when_a_setting_with_it_meets_the_budget():
    points = [
        _point("slot, within", 0.0390, 0.5, slot=(4,)),
        _point("no slot, more diverse", 0.0392, 0.7, slot=()),
    ]
    choice = pick(points, 0.04, (4,))
    assert (choice.point.label, choice.slot_kept, choice.within_budget) == (
        "slot, within",
        True,
        True,
    )


def test_without_a_slotted_setting_in_budget_every_setting_competes():
    points = [
        _point("slot, over budget", 0.0350, 0.9, slot=(4,)),
        _point("no slot, within", 0.0392, 0.4, slot=()),
    ]
    choice = pick(points, 0.04, (4,))
    assert (choice.point.label, choice.slot_kept, choice.within_budget) == (
        "no slot, within",
        False,
        True,
    )


def test_when_nothing_meets_the_budget_the_cheapest_setting_is_flagged():
    points = [
        _point("slot, 5%", 0.0380, 0.5, slot=(4,)),
        _point("no slot, 3.5%", 0.0386, 0.4, slot=()),
        _point("no slot, 20%", 0.0320, 0.9, slot=()),
    ]
    choice = pick(points, 0.04, (4,))
    assert (choice.point.label, choice.slot_kept, choice.within_budget) == (
        "no slot, 3.5%",
        False,
        False,
    )
    assert pick([], 0.04, (4,)) is None


def test_grid_crosses_lambdas_caps_and_slots_on_top_of_the_base():
    base = RerankConfig(new_arrival_days=7)
    grid = setting_grid(base, lambdas=(1.0, 0.9, 0.9), caps=(None, 3), slots=[(4,), ()])
    assert len(grid) == 2 * 2 * 2
    assert {g.new_arrival_days for g in grid} == {7}
    assert sum(rules_only(g) for g in grid) == 1
    assert label_of(grid[-1]) == "mmr 0.90 / cap 3 / no slot"
    assert slot_variants((4,), [10, 4]) == [(4,), (10,), ()]
    # With the slot off in the config, the default slot is still measured
    assert slot_variants((), []) == [(), RerankConfig().new_arrival_positions]


def test_list_scorer_measures_ndcg_diversity_and_new_arrivals_of_the_top_ten():
    # Two queries; items 1-3 in leaf 0, 4 in leaf 1; item 4 launched the day before the cutoff.
    relevance = Relevance.from_frame(
        pd.DataFrame({"user_id": [1, 2], "item_id": [1, 4], "grade": [1, 3]}), np.array([1, 2])
    )
    cutoff = np.datetime64("2025-11-01T00:00", "us")
    launched = np.full(5, np.datetime64("2025-01-01", "us"))
    launched[4] = cutoff - np.timedelta64(1, "D")
    plain = np.array([[1, 2, 3, -1], [1, 2, 4, -1]])
    scorer = ListScorer(
        relevance,
        categories=np.array([-1, 0, 0, 0, 1]),
        launched=launched,
        cutoffs=np.array([cutoff, cutoff]),
        new_days=14,
        plain=np.zeros(2),
    )
    point = scorer.point(plain, "plain", None)
    assert point.diversity == pytest.approx((0.0 + 4 / 6) / 2)  # 4 of 6 ordered pairs differ
    assert point.new_arrivals == 0.5
    assert point.paired is None
    shown = scorer.point(np.array([[1, 2, 3, -1], [4, 1, 2, -1]]), "shown", BASE, n_boot=20)
    assert shown.ndcg > point.ndcg  # the purchase moved to the top
    assert shown.paired[0] < 0  # "plain" (all zeros here) minus shown


def test_report_json_states_the_cost_against_the_plain_ranker_and_the_rules():
    plain_order = RerankConfig(mmr_lambda=1.0, max_per_category=None, new_arrival_positions=())
    rules = Point("rules", 0.0390, 0.36, setting=plain_order)
    slotted = _point("slot", 0.0380, 0.50)
    report = TuningReport(
        reference=Point("ranker (plain)", 0.0400, 0.35),
        points=[rules, slotted],
        chosen=Choice(rules, slot_kept=False, within_budget=True),
        budget=0.03,
        protocol={"queries": 2},
        configured=BASE,
    )
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["chosen"]["ndcg_cost"] == pytest.approx(0.025)
    assert payload["points"][1]["ndcg_cost_beyond_rules"] == pytest.approx(1 - 0.038 / 0.039)
    assert payload["chosen"]["max_per_category"] is None
    assert payload["chosen"]["within_budget"] is True
    assert payload["front"] == ["rules", "slot"]


def _tune(data_dir: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SHOPRANK, "--data-dir", str(data_dir), "tune", "rerank", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_tune_rerank_names_an_unreadable_config_file(tmp_path):
    bad = tmp_path / "ranker.yaml"
    bad.write_text("feature_service: ranker_v1\ntraining: [unclosed\n")
    result = _tune(tmp_path, bad)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {bad}: cannot read")  # then YAML's own message
    missing = _tune(tmp_path, tmp_path / "absent.yaml")
    assert missing.returncode == 2
    assert f"{tmp_path / 'absent.yaml'}: cannot read" in missing.stderr


def test_tune_rerank_names_a_bad_rerank_key(tmp_path):
    committed = Path(__file__).resolve().parents[2] / "models" / "ranker_v1.yaml"
    doc = yaml.safe_load(committed.read_text())
    doc["rerank"] = {"mmr_lamda": 0.9}
    bad = tmp_path / "ranker.yaml"
    bad.write_text(yaml.safe_dump(doc))
    result = _tune(tmp_path, bad)
    assert result.returncode == 2
    assert f"{bad}: rerank.mmr_lamda is not a known setting" in result.stderr
