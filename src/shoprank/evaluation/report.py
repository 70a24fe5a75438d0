"""Evaluation results per approach and segment: JSON, markdown tables and bar charts.

The results nest approach -> segment -> metric -> ``{"value", "ci_low", "ci_high"}`` (the
output of :func:`shoprank.evaluation.metrics.evaluate` for one approach on one segment).
``reports/evaluation.json`` holds that nesting under ``"results"``, paired differences under
``"comparisons"`` (reference approach -> segment -> other approach -> metric -> interval of
the per-query difference, reference minus other) and the metadata under ``"meta"``
(``n_users`` per segment, ``timings`` in seconds, and any extra keys).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoprank.evaluation.metrics import oracle_share

MetricCI = dict[str, float]
ORACLE = "oracle"
ORACLE_METRIC = "ndcg@10"
DEFAULT_METRICS: tuple[str, ...] = (
    "ndcg@10",
    "recall@10",
    "recall@50",
    "map@10",
    "mrr",
    "hit_rate@10",
    "purchase_ndcg@10",
    "revenue@10",
    "coverage@10",
    "diversity@10",
    "novelty@10",
    "popularity_bias@10",
)


@dataclass
class EvaluationResults:
    """Metric values with confidence intervals per approach and segment, plus metadata.

    Attributes:
        results: approach -> segment -> metric -> ``{"value", "ci_low", "ci_high"}``.
        n_users: Number of evaluated users per segment.
        timings: Wall seconds per named step (e.g. ``"als.recommend"``).
        meta: Any other JSON-ready metadata (seed, n_boot, data window...).
        comparisons: reference -> segment -> other -> metric -> interval of the mean
            per-query difference (reference minus other) over the same queries. Paired
            intervals are much narrower than the gap between two marginal intervals.
    """

    results: dict[str, dict[str, dict[str, MetricCI]]] = field(default_factory=dict)
    n_users: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    comparisons: dict[str, dict[str, dict[str, dict[str, MetricCI]]]] = field(default_factory=dict)

    def add_comparison(
        self, reference: str, other: str, segment: str, metric: str, ci: Mapping[str, float]
    ) -> None:
        """Store the paired difference ``reference - other`` of one metric on one segment."""
        by_other = self.comparisons.setdefault(reference, {}).setdefault(segment, {})
        by_other.setdefault(other, {})[metric] = {
            key: float(ci[key]) for key in ("value", "ci_low", "ci_high")
        }

    def add(self, approach: str, segment: str, metrics: Mapping[str, Mapping[str, float]]) -> None:
        """Store (or replace) the metrics of one approach on one segment."""
        self.results.setdefault(approach, {})[segment] = {
            name: {key: float(ci[key]) for key in ("value", "ci_low", "ci_high")}
            for name, ci in metrics.items()
        }

    def merge(self, other: EvaluationResults) -> None:
        """Add ``other``'s scores, paired differences and segment sizes to these results."""
        for approach, by_segment in other.results.items():
            for segment, metrics in by_segment.items():
                self.add(approach, segment, metrics)
        for reference, by_segment in other.comparisons.items():
            for segment, by_other in by_segment.items():
                for name, by_metric in by_other.items():
                    for metric, ci in by_metric.items():
                        self.add_comparison(reference, name, segment, metric, ci)
        self.n_users.update(other.n_users)

    @property
    def approaches(self) -> list[str]:
        """Approach names, in insertion order."""
        return list(self.results)

    @property
    def segments(self) -> list[str]:
        """Segment names over all approaches, in first-seen order."""
        seen: dict[str, None] = {}
        for by_segment in self.results.values():
            seen.update(dict.fromkeys(by_segment))
        return list(seen)

    def get(self, approach: str, segment: str, metric: str) -> MetricCI | None:
        """The ``{"value", "ci_low", "ci_high"}`` of a metric, or None if it is missing."""
        return self.results.get(approach, {}).get(segment, {}).get(metric)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"results": ..., "meta": ...}``, NaN written as null."""
        meta = {"n_users": dict(self.n_users), "timings": dict(self.timings), **self.meta}
        return {
            "results": _nan_to_none(self.results),
            "comparisons": _nan_to_none(self.comparisons),
            "meta": _nan_to_none(meta),
        }

    def to_json(self, path: Path | str) -> Path:
        """Write the results as JSON (parent folders are created); returns the path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return out

    @classmethod
    def from_json(cls, path: Path | str) -> EvaluationResults:
        """Read results written by :meth:`to_json` (null metric values come back as NaN)."""
        payload = json.loads(Path(path).read_text())
        meta = dict(payload.get("meta", {}))
        results = cls(
            n_users={k: int(v) for k, v in meta.pop("n_users", {}).items()},
            timings={k: float(v) for k, v in meta.pop("timings", {}).items()},
            meta=meta,
        )
        for approach, by_segment in payload.get("results", {}).items():
            for segment, metrics in by_segment.items():
                results.add(approach, segment, _none_to_nan(metrics))
        for reference, by_segment in payload.get("comparisons", {}).items():
            for segment, by_other in by_segment.items():
                for other, metrics in by_other.items():
                    for metric, ci in _none_to_nan(metrics).items():
                        results.add_comparison(reference, other, segment, metric, ci)
        return results


def _nan_to_none(value: Any) -> Any:
    """Copy of nested dicts/lists with NaN and infinite floats replaced by None."""
    if isinstance(value, Mapping):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _none_to_nan(metrics: Mapping[str, Mapping[str, float | None]]) -> dict[str, MetricCI]:
    """Metric intervals with None (JSON null) read back as NaN."""
    return {
        name: {key: math.nan if v is None else float(v) for key, v in ci.items()}
        for name, ci in metrics.items()
    }


def format_ci(ci: Mapping[str, float] | None) -> str:
    """``"value [low, high]"`` with 4 decimals; an em dash when the metric is missing."""
    if ci is None:
        return "—"
    return f"{ci['value']:.4f} [{ci['ci_low']:.4f}, {ci['ci_high']:.4f}]"


def _share_cell(results: EvaluationResults, approach: str, segment: str) -> str:
    """Share of the oracle's NDCG@10 reached by ``approach`` on ``segment``, 4 decimals."""
    mine = results.get(approach, segment, ORACLE_METRIC)
    oracle = results.get(ORACLE, segment, ORACLE_METRIC)
    if mine is None or oracle is None:
        return "—"
    share = oracle_share(mine["value"], oracle["value"])
    return "—" if math.isnan(share) else f"{share:.4f}"


def segment_table(
    results: EvaluationResults, segment: str, metrics: Sequence[str] = DEFAULT_METRICS
) -> str:
    """Markdown table of one segment: one row per approach, one column per metric.

    A last column "share of oracle NDCG@10" is added when an approach named ``oracle`` has
    results on the segment.

    Args:
        results: The results.
        segment: Segment name.
        metrics: Metric columns, in order.

    Returns:
        The table (header, separator and rows), without a trailing newline.
    """
    approaches = [a for a in results.approaches if segment in results.results[a]]
    with_oracle = ORACLE in approaches
    header = ["approach", *metrics] + (["share of oracle NDCG@10"] if with_oracle else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for approach in approaches:
        cells = [approach] + [format_ci(results.get(approach, segment, m)) for m in metrics]
        if with_oracle:
            cells.append(_share_cell(results, approach, segment))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(
    results: EvaluationResults,
    path: Path | str,
    segment: str | Sequence[str] | None = "all",
    metrics: Sequence[str] = DEFAULT_METRICS,
    preamble: str = "",
) -> str:
    """Write markdown tables of the results, one table per segment.

    Args:
        results: The results.
        path: Output ``.md`` file (parent folders are created).
        segment: One segment name, several, or None for every segment in ``results``.
        metrics: Metric columns, in order.
        preamble: Text put before the tables (e.g. how the queries were drawn).

    Returns:
        The markdown text written.
    """
    if segment is None:
        segments = results.segments
    elif isinstance(segment, str):
        segments = [segment]
    else:
        segments = list(segment)
    parts = [preamble] if preamble else []
    for name in segments:
        users = results.n_users.get(name)
        title = f"### Segment `{name}`" + (f" ({users:,} users)" if users is not None else "")
        parts.append(f"{title}\n\n{segment_table(results, name, metrics)}\n")
    for reference in results.comparisons:
        parts.append(comparison_table(results, reference, segments) + "\n")
    text = "\n".join(parts)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


def comparison_table(
    results: EvaluationResults, reference: str, segments: Sequence[str] | None = None
) -> str:
    """Markdown table of paired differences: ``reference`` minus each approach, per segment.

    One row per (segment, other approach, metric): the mean per-query difference with its
    bootstrap 95% interval, and the relative difference against the other approach's value.
    """
    by_segment = results.comparisons.get(reference, {})
    wanted = [s for s in (segments or list(by_segment)) if s in by_segment]
    lines = [
        f"### Paired differences: `{reference}` minus each approach (same queries)",
        "",
        "| segment | approach | metric | difference [95% CI] | relative |",
        "|---|---|---|---|---|",
    ]
    for segment in wanted:
        for other, metrics in by_segment[segment].items():
            for metric, ci in metrics.items():
                base = results.get(other, segment, metric)
                relative = (
                    f"{ci['value'] / base['value']:+.1%}" if base and base["value"] > 0 else "—"
                )
                lines.append(f"| {segment} | {other} | {metric} | {format_ci(ci)} | {relative} |")
    return "\n".join(lines)


def _bar_series(
    results: EvaluationResults, metric: str, segments: Sequence[str], approach: str
) -> tuple[list[float], list[list[float]]]:
    """Bar heights and ``[lower, upper]`` error lengths of one approach across segments."""
    heights: list[float] = []
    errors: list[list[float]] = [[], []]
    for segment in segments:
        ci = results.get(approach, segment, metric)
        value = math.nan if ci is None else ci["value"]
        heights.append(value)
        errors[0].append(0.0 if ci is None else max(value - ci["ci_low"], 0.0))
        errors[1].append(0.0 if ci is None else max(ci["ci_high"] - value, 0.0))
    return heights, errors


def plot_metric(results: EvaluationResults, metric: str, path: Path | str) -> Path:
    """Bar chart of one metric: a group per segment, a bar per approach, CI error bars.

    Uses the Agg canvas directly (no pyplot, no global backend switch).

    Args:
        results: The results.
        metric: Metric name, e.g. ``"ndcg@10"``.
        path: Output PNG file (parent folders are created).

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    segments, approaches = results.segments, results.approaches
    width = 0.8 / max(len(approaches), 1)
    bars = len(segments) * max(len(approaches), 1)
    fig = Figure(figsize=(min(14.0, max(6.0, 2.5 + 0.45 * bars)), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, approach in enumerate(approaches):
        heights, errors = _bar_series(results, metric, segments, approach)
        xs = [s + (i - (len(approaches) - 1) / 2) * width for s in range(len(segments))]
        ax.bar(xs, heights, width, yerr=errors, capsize=3, label=approach)
    ax.set_xticks(range(len(segments)), segments)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by segment (95% bootstrap CI)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out


def non_overlapping(results: EvaluationResults, a: str, b: str, segment: str, metric: str) -> bool:
    """True when approach ``a``'s CI lies entirely above approach ``b``'s CI.

    Args:
        results: The results.
        a: Approach expected to be better.
        b: Approach compared against.
        segment: Segment name.
        metric: Metric name.

    Returns:
        ``a.ci_low > b.ci_high`` (False when either is NaN).

    Raises:
        KeyError: If either approach lacks the metric on the segment.
    """
    ci_a, ci_b = results.get(a, segment, metric), results.get(b, segment, metric)
    if ci_a is None or ci_b is None:
        raise KeyError(f"{metric!r} missing for {a!r} or {b!r} on segment {segment!r}")
    return bool(ci_a["ci_low"] > ci_b["ci_high"])
