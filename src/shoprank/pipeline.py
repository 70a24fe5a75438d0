"""The whole data platform, stage by stage.

Generate, dbt build, feast apply, materialize, training set. Used by ``shoprank pipeline``
(``make demo``) and ``shoprank bench pipeline``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from shoprank.metering import StageMeasure, measure
from shoprank.settings import Settings

MART_TABLES = (
    "user_features",
    "product_features",
    "user_category_affinity",
    "user_brand_affinity",
    "calendar_features",
    "session_features",
)


@dataclass
class PipelineReport:
    """What a pipeline run built and what each stage cost."""

    scale: str
    seed: int
    stages: list[StageMeasure] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    quarantine: dict[str, int] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)
    generation: dict = field(default_factory=dict)
    training_set: dict = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        """Sum of stage wall times."""
        return round(sum(s.wall_seconds for s in self.stages), 2)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "scale": self.scale,
            "seed": self.seed,
            "total_seconds": self.total_seconds,
            "stages": [s.to_dict() for s in self.stages],
            "row_counts": self.row_counts,
            "quarantine": self.quarantine,
            "splits": self.splits,
            "generation": self.generation,
            "training_set": self.training_set,
        }

    def write(self, path: Path) -> Path:
        """Write the report as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str))
        return path


def table_counts(settings: Settings) -> tuple[dict[str, int], dict[str, int]]:
    """Row counts of raw files, clean events, quarantine and marts; quarantined rows by reason."""
    counts: dict[str, int] = {}
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        for name in ("events", "users", "products", "sessions"):
            path = settings.raw_dir / f"{name}.parquet"
            counts[f"raw.{name}"] = con.execute(f"select count(*) from '{path}'").fetchone()[0]
        for table in ("fct_events", "quarantine_events"):
            counts[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
        for mart in MART_TABLES:
            path = settings.marts_dir / f"{mart}.parquet"
            counts[f"marts.{mart}"] = con.execute(f"select count(*) from '{path}'").fetchone()[0]
        reasons = con.execute(
            "select reject_reason, count(*) from quarantine_events group by 1 order by 2 desc"
        ).fetchall()
    return counts, dict(reasons)


def _announcer(enabled: bool, total: int):
    """A function printing a rule per stage ("[2/5] dbt build: ...") when ``enabled``."""
    from rich.console import Console

    console = Console()
    count = [0]

    def announce(stage: str, what: str) -> None:
        count[0] += 1
        if enabled:
            console.rule(f"[bold][{count[0]}/{total}] {stage}[/bold]: {what}")

    return announce


def run_pipeline(
    settings: Settings, scale: str, seed: int, training_rows: int, progress: bool = True
) -> PipelineReport:
    """Run every stage at ``scale`` and return the report (also used as the benchmark)."""
    from shoprank.data.generator import generate
    from shoprank.features import store
    from shoprank.features.training_set import (
        ExampleSpec,
        build_examples,
        join_features,
    )
    from shoprank.io import write_parquet_atomically
    from shoprank.transform import dbt

    report = PipelineReport(scale=scale, seed=seed, splits=settings.splits.as_dict())
    splits = settings.splits
    announce = _announcer(progress, total=5)
    announce("generate", f"synthetic shop at {scale} scale, seed {seed}")
    with measure("generate") as stage:
        summary = generate(
            scale=scale,
            seed=seed,
            out_dir=settings.data_path,
            start=splits.data_start,
            end=splits.data_end,
            progress=progress,
        )
        report.generation = summary.to_dict()
    report.stages.append(stage)
    announce("dbt build", "staging, quarantine, feature marts, tests")
    with measure("dbt build") as stage:
        dbt.build(settings, quiet=not progress)
    report.stages.append(stage)
    store.reset(settings)
    for name, step in (
        ("feast apply", lambda: store.apply(settings)),
        ("materialize", lambda: store.materialize(settings, end=splits.data_end, fresh=True)),
    ):
        announce(name, "Feast registry and SQLite online store")
        with measure(name) as stage:
            result = step()
            if result:
                stage.details.update(result)
        report.stages.append(stage)
    announce("training set", f"{training_rows:,} rows, point-in-time join via Feast")
    with measure("training set") as stage:
        spec = ExampleSpec(split="train", n_rows=training_rows, seed=seed)
        examples = build_examples(settings.warehouse_path, splits, spec)
        frame = join_features(settings, examples)
        out = write_parquet_atomically(frame, settings.data_path / "training" / "train.parquet")
        stage.details = {"rows": len(frame), "columns": frame.shape[1], "path": str(out)}
    report.stages.append(stage)
    report.training_set = {
        "rows": len(frame),
        "label_counts": frame["label"].value_counts().sort_index().to_dict(),
        "features": frame.shape[1] - len(examples.columns),
    }
    report.row_counts, report.quarantine = table_counts(settings)
    return report
