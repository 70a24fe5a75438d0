"""Evaluation report: JSON round trip, markdown tables, bar chart, CI comparison."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from shoprank.evaluation.report import (
    EvaluationResults,
    format_ci,
    non_overlapping,
    plot_metric,
    write_markdown,
)


def _ci(value: float, half: float) -> dict[str, float]:
    return {"value": value, "ci_low": value - half, "ci_high": value + half}


@pytest.fixture()
def results() -> EvaluationResults:
    res = EvaluationResults(
        n_users={"all": 1000, "cold": 120}, timings={"als.fit": 3.5}, meta={"seed": 0}
    )
    scores = {"oracle": 0.40, "popularity": 0.10, "als": 0.20}
    for approach, ndcg in scores.items():
        res.add(approach, "all", {"ndcg@10": _ci(ndcg, 0.01), "recall@10": _ci(ndcg / 2, 0.02)})
        res.add(approach, "cold", {"ndcg@10": _ci(ndcg / 2, 0.05)})
    res.add("als", "cold", {"ndcg@10": _ci(0.1, 0.05), "mrr": _ci(math.nan, 0.0)})
    return res


def test_json_round_trip(results: EvaluationResults, tmp_path: Path) -> None:
    path = results.to_json(tmp_path / "reports" / "evaluation.json")
    payload = json.loads(path.read_text())
    assert set(payload) == {"results", "comparisons", "meta"}
    assert payload["results"]["als"]["all"]["ndcg@10"] == _ci(0.2, 0.01)
    assert payload["results"]["als"]["cold"]["mrr"]["value"] is None  # NaN -> null
    assert payload["meta"] == {
        "n_users": {"all": 1000, "cold": 120},
        "timings": {"als.fit": 3.5},
        "seed": 0,
    }
    back = EvaluationResults.from_json(path)
    assert back.n_users == results.n_users and back.timings == results.timings
    assert back.meta == results.meta
    assert back.approaches == ["oracle", "popularity", "als"]
    assert back.get("popularity", "all", "recall@10") == results.get(
        "popularity", "all", "recall@10"
    )
    assert math.isnan(back.get("als", "cold", "mrr")["value"])  # type: ignore[index]


def test_markdown_rows_and_oracle_share(results: EvaluationResults, tmp_path: Path) -> None:
    text = write_markdown(results, tmp_path / "eval.md", metrics=("ndcg@10", "recall@10"))
    assert (tmp_path / "eval.md").read_text() == text
    lines = text.splitlines()
    assert "### Segment `all` (1,000 users)" in lines
    header = "| approach | ndcg@10 | recall@10 | share of oracle NDCG@10 |"
    assert header in lines
    assert "| als | 0.2000 [0.1900, 0.2100] | 0.1000 [0.0800, 0.1200] | 0.5000 |" in lines
    assert "| oracle | 0.4000 [0.3900, 0.4100] | 0.2000 [0.1800, 0.2200] | 1.0000 |" in lines
    assert sum(line.startswith("| popularity |") for line in lines) == 1
    assert "cold" not in text


def test_markdown_all_segments_without_oracle(results: EvaluationResults, tmp_path: Path) -> None:
    del results.results["oracle"]
    text = write_markdown(results, tmp_path / "eval.md", segment=None, metrics=("ndcg@10", "mrr"))
    assert "### Segment `all`" in text and "### Segment `cold` (120 users)" in text
    assert "share of oracle" not in text
    assert "| popularity | 0.0500 [0.0000, 0.1000] | — |" in text
    assert "| als | 0.1000 [0.0500, 0.1500] | nan [nan, nan] |" in text


def test_markdown_starts_with_how_queries_were_drawn(
    results: EvaluationResults, tmp_path: Path
) -> None:
    from dataclasses import replace

    from shoprank.cli import _query_note
    from shoprank.ranking.config import load_ranker_config
    from shoprank.settings import load_settings

    root = Path(__file__).resolve().parents[2]
    config = load_ranker_config(root / "models/ranker_v1.yaml", load_settings().splits)
    note = _query_note(config)
    assert "every user who shows up at a test cutoff" in note and "sample" not in note
    assert "right after their first event" in note
    sampled = _query_note(replace(config, evaluation_users=8000))
    assert "random sample of 8,000" in sampled and "every cold-start user" in sampled
    text = write_markdown(results, tmp_path / "eval.md", segment=None, preamble=note)
    assert text.startswith(note) and text.index(note) < text.index("### Segment `all`")


def test_format_ci() -> None:
    assert format_ci(_ci(0.123456, 0.1)) == "0.1235 [0.0235, 0.2235]"
    assert format_ci(None) == "—"


def test_plot_metric_writes_png(results: EvaluationResults, tmp_path: Path) -> None:
    path = plot_metric(results, "ndcg@10", tmp_path / "plots" / "ndcg.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 5000
    plot_metric(results, "mrr", tmp_path / "mrr.png")  # missing values and NaN are skipped
    assert (tmp_path / "mrr.png").stat().st_size > 0


def test_non_overlapping(results: EvaluationResults) -> None:
    assert non_overlapping(results, "oracle", "als", "all", "ndcg@10")
    assert not non_overlapping(results, "als", "oracle", "all", "ndcg@10")
    # cold: als 0.10 +- 0.05 vs popularity 0.05 +- 0.05 overlap.
    assert not non_overlapping(results, "als", "popularity", "cold", "ndcg@10")
    assert not non_overlapping(results, "als", "als", "cold", "mrr")  # NaN never separates
    with pytest.raises(KeyError):
        non_overlapping(results, "als", "popularity", "cold", "mrr")


def test_paired_comparisons_round_trip_and_table(
    results: EvaluationResults, tmp_path: Path
) -> None:
    results.add_comparison("als", "popularity", "all", "ndcg@10", _ci(0.1, 0.004))
    back = EvaluationResults.from_json(results.to_json(tmp_path / "evaluation.json"))
    assert back.comparisons == {"als": {"all": {"popularity": {"ndcg@10": _ci(0.1, 0.004)}}}}
    text = write_markdown(back, tmp_path / "eval.md")
    assert "Paired differences: `als` minus each approach" in text
    # +0.1 over popularity's 0.10 is +100%
    assert "| all | popularity | ndcg@10 | 0.1000 [0.0960, 0.1040] | +100.0% |" in text


def test_paired_interval_excludes_zero_where_marginal_intervals_overlap() -> None:
    import numpy as np
    import pandas as pd

    from shoprank.evaluation.metrics import Relevance, bootstrap_ci, ndcg_at_k
    from shoprank.evaluation.offline import paired_differences

    rng = np.random.default_rng(0)
    n = 400
    relevant = rng.integers(1, 60, size=n)
    relevance = Relevance.from_frame(
        pd.DataFrame({"user_id": np.arange(n), "item_id": relevant, "grade": 1}), np.arange(n)
    )
    other = np.full((n, 50), -1)
    other[:, 1] = np.where(rng.random(n) < 0.3, relevant, 99)  # hit at position 2, 30%
    ranker = other.copy()
    # the ranker also finds 5% of the other's misses, at the top
    lucky = (rng.random(n) < 0.05) & (other[:, 1] != relevant)
    ranker[:, 0] = np.where(lucky, relevant, 98)
    rows = np.arange(n)
    found = {
        (name, metric): ci
        for name, metric, ci in paired_differences(
            {"ranker": ranker, "other": other, "same": ranker.copy()}, rows, relevance, 500
        )
    }
    better = found[("other", "ndcg@10")]
    assert better["ci_low"] > 0
    marginal = {
        name: bootstrap_ci(ndcg_at_k(recs, relevance, 10), 500)
        for name, recs in {"ranker": ranker, "other": other}.items()
    }
    assert marginal["ranker"][1] < marginal["other"][2]  # the plain intervals overlap
    assert found[("same", "ndcg@10")] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
