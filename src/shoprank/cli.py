"""The ``shoprank`` command line: one entry point for every stage of the pipeline."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from shoprank.settings import Settings, load_settings

app = typer.Typer(
    help="shoprank: feature-store-centric product recommendations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
dbt_app = typer.Typer(help="Build the dbt feature marts.", no_args_is_help=True)
features_app = typer.Typer(
    help="Feast: register, materialize, training sets.", no_args_is_help=True
)
bench_app = typer.Typer(help="Benchmarks (figures written under reports/).", no_args_is_help=True)
app.add_typer(dbt_app, name="dbt")
app.add_typer(features_app, name="features")
app.add_typer(bench_app, name="bench")
console = Console()
err_console = Console(stderr=True, soft_wrap=True, highlight=False)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: $SHOPRANK_DATA_DIR or ./data)."),
]


@app.callback()
def _root(ctx: typer.Context, data_dir: DataDir = None) -> None:
    """Load the settings once; every command receives them through the context."""
    ctx.obj = load_settings(data_dir=data_dir)


def _settings(ctx: typer.Context) -> Settings:
    return ctx.obj


@app.command()
def generate(
    ctx: typer.Context,
    scale: Annotated[
        str, typer.Option(help="tiny, small or seed (200k users, 50k products, 2M events).")
    ] = "seed",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    out: Annotated[
        Path | None, typer.Option(help="Output directory (default: the data dir).")
    ] = None,
) -> None:
    """Generate a synthetic shop: raw logs (raw/) and the latent truth (truth/)."""
    from shoprank.data.generator import generate as run_generate

    settings = _settings(ctx)
    splits = settings.splits
    summary = run_generate(
        scale=scale,
        seed=seed,
        out_dir=out or settings.data_path,
        start=splits.data_start,
        end=splits.data_end,
        progress=True,
    )
    console.print_json(json.dumps(summary.to_dict(), default=str))


@dbt_app.command("build")
def dbt_build(ctx: typer.Context) -> None:
    """Run `dbt build` (models, data tests, unit tests) into the data dir."""
    from shoprank.transform import dbt

    dbt.build(_settings(ctx))


@dbt_app.command("docs")
def dbt_docs(ctx: typer.Context) -> None:
    """Run `dbt docs generate` (catalog and manifest under dbt_project/target/)."""
    from shoprank.transform import dbt

    dbt.run_dbt(_settings(ctx), "docs", "generate")


@features_app.command("apply")
def features_apply(ctx: typer.Context) -> None:
    """Register entities, sources, feature views and services from dbt's manifest (feast apply)."""
    from shoprank.features import store

    store.apply(_settings(ctx))


@features_app.command("materialize")
def features_materialize(
    ctx: typer.Context,
    end: Annotated[
        datetime | None, typer.Option(help="Materialize up to (default: end of the data window).")
    ] = None,
    backfill: Annotated[
        bool, typer.Option(help="Reload from the start even if materialized before.")
    ] = False,
) -> None:
    """Load the latest features into the online store (backfill first, then incremental)."""
    from shoprank.features import store

    settings = _settings(ctx)
    until = (end.replace(tzinfo=end.tzinfo or UTC)) if end else settings.splits.data_end
    result = store.materialize(settings, end=until, fresh=backfill)
    console.print(f"materialized up to {until:%Y-%m-%d %H:%M}: {result}")


@features_app.command("training-set")
def features_training_set(
    ctx: typer.Context,
    split: Annotated[
        str, typer.Option(help="train, validation or test (cutoff window).")
    ] = "train",
    rows: Annotated[int, typer.Option(help="Number of (user, product, cutoff) rows.")] = 100_000,
    negatives: Annotated[int, typer.Option(help="Unlabelled products per labelled one.")] = 3,
    horizon_days: Annotated[int, typer.Option(help="Days after the cutoff that labels count.")] = 7,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Parquet file (default: DATA/training/SPLIT.parquet).")
    ] = None,
) -> None:
    """Build (user, product, cutoff, label) rows and join features point-in-time via Feast."""
    from shoprank.features.training_set import (
        ExampleSpec,
        build_examples,
        join_features,
    )
    from shoprank.io import write_parquet_atomically
    from shoprank.transform.dbt import require_complete_marts

    settings = _settings(ctx)
    require_complete_marts(settings)
    spec = ExampleSpec(
        split=split,
        n_rows=rows,
        negatives_per_positive=negatives,
        horizon_days=horizon_days,
        seed=seed,
    )
    examples = build_examples(settings.warehouse_path, settings.splits, spec)
    frame = join_features(settings, examples)
    path = write_parquet_atomically(
        frame, out or settings.data_path / "training" / f"{split}.parquet"
    )
    labels = frame["label"].value_counts().sort_index().to_dict()
    console.print(f"{len(frame):,} rows x {frame.shape[1]} columns -> {path}; labels {labels}")


@features_app.command("check")
def features_check(ctx: typer.Context) -> None:
    """Fail if dbt's documented columns, Feast's registry and the Parquet marts disagree."""
    from shoprank.features.contract import compare_with_files, compare_with_registry
    from shoprank.features.definitions import load_feast_models, manifest_path
    from shoprank.features.store import open_store

    settings = _settings(ctx)
    models = load_feast_models(manifest_path(settings))
    views = open_store(settings).list_feature_views()
    problems = compare_with_registry(models, views) + compare_with_files(models, settings.marts_dir)
    for problem in problems:
        console.print(f"[red]mismatch[/red] {problem}")
    if problems:
        raise typer.Exit(1)
    console.print(f"dbt, Feast and the marts agree on {len(models)} feature tables")


@app.command()
def evaluate(
    ctx: typer.Context,
    config: Annotated[
        Path, typer.Option(help="Ranker config (candidates, cutoffs, XGBoost).")
    ] = Path("models/ranker_v1.yaml"),
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% intervals.")] = 1000,
) -> None:
    """Train the ranker and compare every approach on the test month (reports/evaluation.*)."""
    from shoprank.evaluation.offline import run_evaluation, saved_metrics
    from shoprank.evaluation.report import plot_metric, write_markdown
    from shoprank.ranking.config import load_ranker_config
    from shoprank.ranking.model import plot_importance
    from shoprank.transform.dbt import require_complete_marts

    settings = _settings(ctx)
    require_complete_marts(settings)
    ranker_config = load_ranker_config(config, settings.splits)
    run = run_evaluation(settings, ranker_config, n_boot=n_boot, log=console.log)
    results = run.results
    out = settings.reports_dir
    out.mkdir(parents=True, exist_ok=True)
    results.to_json(out / "evaluation.json")
    table = write_markdown(
        results, out / "evaluation.md", segment=None, preamble=_query_note(ranker_config)
    )
    for metric in ("ndcg@10", "recall@50"):
        plot_metric(results, metric, out / f"evaluation_{metric.replace('@', '')}.png")
    plot_importance(run.rankers.models["ranker"], out / "ranker_feature_importance.png")
    tags = _save(settings, ranker_config, run.rankers.models, saved_metrics(run))
    console.print(f"saved to the BentoML model store as {', '.join(tags)}")
    console.print(table)
    console.print(f"reports written to {out}/evaluation.{{json,md}} and PNG plots")


@app.command()
def train(
    ctx: typer.Context,
    config: Annotated[
        Path, typer.Option(help="Ranker config (candidates, cutoffs, XGBoost).")
    ] = Path("models/ranker_v1.yaml"),
) -> None:
    """Train the ranker and save it with its serving state (no evaluation: for serving)."""
    from shoprank.candidates.data import load_catalog
    from shoprank.ranking.config import load_ranker_config
    from shoprank.training.generators import catalog_generators
    from shoprank.training.rankers import train_rankers
    from shoprank.transform.dbt import require_complete_marts

    settings = _settings(ctx)
    require_complete_marts(settings)
    ranker_config = load_ranker_config(config, settings.splits)
    catalog = load_catalog(settings.warehouse_path)
    console.log("embedding the catalog (cached by content hash), indexing it (once)")
    factory, _ = catalog_generators(settings, catalog)
    rankers = train_rankers(
        settings, ranker_config, catalog, factory, log=console.log, ablations=False
    )
    tags = _save(settings, ranker_config, rankers.models, {})
    console.print(f"saved to the BentoML model store as {', '.join(tags)}")
    console.print(f"serve it: SHOPRANK_MODEL_TAG={tags[0]} make serve")


@app.command()
def models(
    ctx: typer.Context,
    latest: Annotated[bool, typer.Option(help="Print only the newest exact tag.")] = False,
) -> None:
    """Saved rankers in the BentoML model store, newest first (exact tags to serve)."""
    from shoprank.ranking.registry import list_rankers

    saved = list_rankers(home=_settings(ctx).bentoml_home)
    if not saved:
        err_console.print("error: no ranker saved: run `shoprank train` or `shoprank evaluate`")
        raise typer.Exit(2)
    if latest:
        print(saved[0]["tag"])
        return
    for row in saved:
        console.print(f"{row['tag']}  {row['creation_time']:%Y-%m-%d %H:%M}  {row['metrics']}")


def _save(settings: Settings, config, models: dict, metrics: dict) -> list[str]:
    """Fit the serving state at the end of the data and save the models with it."""
    from shoprank.training.bundle import fit_serving_state, save_trained

    console.log(f"fitting the serving generators at {settings.splits.data_end:%Y-%m-%d}")
    state = fit_serving_state(settings, config, log=console.log)
    return save_trained(settings, config, models, metrics, state)


def _query_note(config) -> str:
    """How the evaluation's queries were drawn, for the head of evaluation.md."""
    sample = (
        "every user who shows up at a test cutoff"
        if config.evaluation_users is None
        else f"a random sample of {config.evaluation_users:,}, split between the test cutoffs"
    )
    note = f"Queries: {sample}."
    if config.evaluation_all_cold_users and config.evaluation_users is not None:
        note += (
            " The `cold_users*` segments hold every cold-start user (no event before the test"
            " period) who showed up, queried on top of the sample; every other segment is the"
            " sample only."
        )
    if config.evaluation_in_session:
        note += (
            " `cold_users_in_session` queries every cold-start user once more, right after"
            " their first event (the models as of the last weekly cutoff plus that event),"
            " and counts what they did next on products they had not touched yet."
        )
    return note + "\n"


@app.command()
def beauty(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Amazon Beauty folder (sequences.txt, items.csv, attributes); "
            "default: ../shared/datasets/amazon_beauty beside the project."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder (default: reports/).")] = None,
) -> None:
    """Our approaches and the two-stage ranker on Amazon Beauty (full-ranking leave-one-out)."""
    from shoprank.evaluation.beauty import markdown_table, run_beauty, write_reports

    settings = _settings(ctx)
    data = data or settings.beauty_dir
    for name in ("sequences.txt", "items.csv", "item_attributes.json"):
        if not (data / name).is_file():
            raise FileNotFoundError(f"{data / name}: Amazon Beauty file missing")
    report = run_beauty(data, settings.data_path / "embeddings", log=console.log)
    json_path, md_path = write_reports(report, out or settings.reports_dir)
    console.print(markdown_table(report))
    console.print(f"{report.seconds['total']:.0f} s; reports written to {json_path}, {md_path}")


@app.command()
def pipeline(
    ctx: typer.Context,
    scale: Annotated[str, typer.Option(help="tiny, small or seed.")] = "seed",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    training_rows: Annotated[int, typer.Option(help="Rows in the demo training set.")] = 200_000,
) -> None:
    """Run the whole data platform and print a summary (what `make demo` runs)."""
    from shoprank.pipeline import run_pipeline

    settings = _settings(ctx)
    report = run_pipeline(settings, scale=scale, seed=seed, training_rows=training_rows)
    path = report.write(settings.reports_dir / "pipeline_summary.json")
    print_report(report.to_dict())
    console.print(f"\nsummary written to {path}")


@bench_app.command("pipeline")
def bench_pipeline(
    ctx: typer.Context,
    scale: Annotated[str, typer.Option(help="tiny, small or seed.")] = "seed",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    training_rows: Annotated[
        int, typer.Option(help="Rows in the benchmarked training set.")
    ] = 1_000_000,
) -> None:
    """Time every stage (wall seconds, peak memory) into reports/bench_pipeline.json."""
    from shoprank.pipeline import run_pipeline

    settings = _settings(ctx)
    report = run_pipeline(settings, scale=scale, seed=seed, training_rows=training_rows)
    payload = report.to_dict() | {"machine": _machine()}
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    path = settings.reports_dir / "bench_pipeline.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    print_report(payload)
    console.print(f"\nbenchmark written to {path}")


@bench_app.command("candidates")
def bench_candidates(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option(help="Ranker config (its candidate counts).")] = Path(
        "models/ranker_v1.yaml"
    ),
    at: Annotated[
        str | None,
        typer.Option(help="Cutoff day (YYYY-MM-DD); default: the validation month's start."),
    ] = None,
    users: Annotated[int, typer.Option(help="Users queried at the cutoff.")] = 3000,
    uniform: Annotated[
        list[int] | None,
        typer.Option(help="Also measure this many candidates from every generator (repeat)."),
    ] = None,
) -> None:
    """Candidate-union recall at one cutoff: the ranker's ceiling (reports/bench_candidates.json).

    Compares the config's per-generator counts with the same count from every generator.
    """
    from shoprank.candidates.data import load_catalog
    from shoprank.evaluation.candidates import candidate_recall
    from shoprank.ranking.config import load_ranker_config
    from shoprank.ranking.dataset import Cutoff
    from shoprank.training.generators import catalog_generators
    from shoprank.transform.dbt import require_complete_marts

    try:
        day = datetime.fromisoformat(at).replace(tzinfo=UTC) if at else None
    except ValueError:
        raise typer.BadParameter(f"--at {at!r} is not a date (YYYY-MM-DD)") from None
    settings = _settings(ctx)
    ranker_config = load_ranker_config(config, settings.splits)
    require_complete_marts(settings)
    day = day or settings.splits.validation_start
    end = day + timedelta(days=ranker_config.horizon_days)
    if day < settings.splits.data_start or end > settings.splits.data_end:
        raise typer.BadParameter(f"--at {day:%Y-%m-%d}: its label window leaves the data")
    counts = {"configured": ranker_config.candidates_per_generator}
    counts |= {f"{k} each": k for k in (uniform if uniform else [100])}
    catalog = load_catalog(settings.warehouse_path)
    factory, _ = catalog_generators(settings, catalog)
    cutoff = Cutoff(day, ranker_config.horizon_days)
    report = candidate_recall(
        settings, cutoff, factory, counts, n_users=users, catalog=catalog, log=console.log
    )
    payload = report.to_dict() | {"config": str(config), "machine": _machine()}
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    path = settings.reports_dir / "bench_candidates.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    table = Table(title=f"Candidate recall at {day:%Y-%m-%d} ({report.queries:,} queries)")
    for column in ("setting", "recall", "view", "cart", "purchase", "per query"):
        table.add_column(column, justify="left" if column == "setting" else "right", no_wrap=True)
    rows = [(name, row) for name, row in report.settings.items()]
    rows += [(f"{name} alone, {row['k']}", row) for name, row in report.generators.items()]
    for name, row in rows:
        table.add_row(
            name,
            f"{row['recall']:.4f}",
            f"{row['recall_view']:.4f}",
            f"{row['recall_cart']:.4f}",
            f"{row['recall_purchase']:.4f}",
            f"{row['candidates_per_query']:.0f}",
        )
    console.print(table)
    console.print(f"{report.seconds:.0f} s; written to {path}")


SERVICE_TARGET = "bentos/recommender/service.py:Recommender"


def _rates(text: str) -> tuple[float, ...]:
    """``100,200,300`` as rates in requests per second."""
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"--rates {text!r}: give rates as 100,200,300") from None
    if not rates or any(rate <= 0 for rate in rates):
        raise typer.BadParameter(f"--rates {text!r}: give positive rates as 100,200,300")
    return rates


def _serving_tag(settings: Settings, tag: str | None) -> str:
    """The tag `make serve` would serve: --tag, $SHOPRANK_MODEL_TAG, else the newest ranker."""
    from shoprank.ranking.registry import list_rankers

    chosen = tag or settings.model_tag
    if chosen:
        return chosen
    saved = list_rankers(home=settings.bentoml_home)
    if not saved:
        raise FileNotFoundError("no ranker saved: run `shoprank train` or `shoprank evaluate`")
    return saved[0]["tag"]


@bench_app.command("content-index")
def bench_content_index(
    ctx: typer.Context,
    tag: Annotated[
        str | None,
        typer.Option(help="Exact ranker tag (default: $SHOPRANK_MODEL_TAG, else the newest)."),
    ] = None,
    queries: Annotated[int, typer.Option(min=10, help="User profiles searched.")] = 2_000,
    out: Annotated[
        Path | None,
        typer.Option(help="Report path (default: reports/bench_content_index.json)."),
    ] = None,
) -> None:
    """The model's content index vs an exact scan: recall@k and latency per hnsw_ef."""
    from shoprank.embeddings.bench import content_index_report
    from shoprank.serving.runtime import limit_threads
    from shoprank.training.bundle import load_recommender

    limit_threads()  # one thread, as a service worker runs
    settings = _settings(ctx)
    model_tag = _serving_tag(settings, tag)
    console.log(f"loading {model_tag}")
    _, state = load_recommender(model_tag, settings.bentoml_home)
    try:
        report = content_index_report(state, n_queries=queries)
    except ValueError as exc:
        raise typer.BadParameter(f"--tag {model_tag}: {exc}") from None
    report["tag"] = model_tag
    path = out or settings.project_root / "reports" / "bench_content_index.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    console.print_json(json.dumps(report))
    console.log(f"wrote {path}")


@bench_app.command("serving")
def bench_serving(
    ctx: typer.Context,
    rates: Annotated[
        str, typer.Option(help="Fixed rates in requests per second, comma-separated.")
    ] = "100,200,300",
    duration: Annotated[
        float | None,
        typer.Option(min=0.5, help="Seconds per fixed rate (default 20; 3 with --quick)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Service workers (default: SHOPRANK_SERVING_WORKERS)."),
    ] = None,
    search: Annotated[
        bool, typer.Option(help="Step-search the highest rate with p99 under the SLO.")
    ] = True,
    quick: Annotated[
        bool, typer.Option(help="Smoke run: 3 s per rate, 2 search steps, 10 delay trials.")
    ] = False,
    slo_ms: Annotated[float, typer.Option(help="The search's p99 bound in ms.")] = 100.0,
    delay_trials: Annotated[
        int | None,
        typer.Option(min=1, help="Event-to-recommendation trials (default 30; 10 with --quick)."),
    ] = None,
    tag: Annotated[
        str | None,
        typer.Option(help="Exact ranker tag (default: $SHOPRANK_MODEL_TAG, else the newest)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Report path (default: reports/bench_serving.json).")
    ] = None,
) -> None:
    """The service under open-loop load, and the BentoML floor (reports/bench_serving.json).

    Serves the tag `make serve` would on 127.0.0.1 and sends known, unknown and
    in-session users and event posts at each fixed rate, open loop (latency from
    each request's scheduled send time); step-searches the highest rate with p99
    under --slo-ms; measures the event-to-recommendation delay; then runs the
    same rates against a trivial BentoML endpoint (the floor). Events go to a
    temporary event log; their session features reach the online store.
    """
    import tempfile

    from shoprank.serving.bench import BenchSettings, run_serving_bench, traffic_ids
    from shoprank.serving.freshness import DelaySettings, measure_event_delay
    from shoprank.serving.loadgen import default_mix
    from shoprank.training.bundle import load_recommender

    settings = _settings(ctx)
    fixed_rates = _rates(rates)
    model_tag = _serving_tag(settings, tag)
    console.log(f"reading the users and products of {model_tag}")
    _, state = load_recommender(model_tag, settings.bentoml_home)
    known, products = traffic_ids(state)
    console.log("online-store read costs (in process, one thread)")
    reads = _read_costs(settings, state, known, repeats=50 if quick else 200)
    del state
    sessions = min(100, max(1, len(known) // 2))
    mix = default_mix(known, products, sessions=sessions)
    delay_users = known[sessions:] or known
    bench = BenchSettings(
        rates=fixed_rates,
        duration_s=duration or (3.0 if quick else 20.0),
        warmup_rate=min(50.0, *fixed_rates),
        warmup_s=1.0 if quick else 5.0,
        slo_p99_ms=slo_ms,
        search_steps=(2 if quick else 4) if search else 0,
        search_duration_s=3.0 if quick else 10.0,
        workers=workers or settings.serving_workers,
        ready_timeout_s=600.0,
        drain_max_s=15.0 if quick else 60.0,
    )
    delays = DelaySettings(trials=delay_trials or (10 if quick else 30))
    path = out or settings.reports_dir / "bench_serving.json"
    console.log(
        f"{len(known):,} known users, {len(products):,} products; rates {fixed_rates} rps, "
        f"{bench.duration_s:g} s each, {bench.workers} worker(s), search {search}"
    )
    with tempfile.TemporaryDirectory(prefix="shoprank-bench-") as scratch:
        env = {
            "SHOPRANK_DATA_DIR": str(settings.data_path),
            "SHOPRANK_MODEL_TAG": model_tag,
            "SHOPRANK_EVENT_LOG": str(Path(scratch) / "events.jsonl"),
            "BENTOML_DO_NOT_TRACK": "true",
        }
        if settings.bentoml_home is not None:
            env["SHOPRANK_BENTOML_HOME"] = str(settings.bentoml_home)
        report = run_serving_bench(
            SERVICE_TARGET,
            path,
            mix=mix,
            working_dir=settings.project_root,
            env=env,
            settings=bench,
            probes={
                "event_delay": lambda server: measure_event_delay(
                    server.base_url, delay_users, delays
                )
            },
            log=console.log,
        )
    report["online_read"] = reads
    path.write_text(json.dumps(report, indent=2) + "\n")
    report_table(report)
    console.print(f"{report['wall_s']:.0f} s; written to {path}")


def _read_costs(settings, state, users: list[int], repeats: int) -> dict:
    """One request's online reads, three ways (``shoprank.serving.read_costs``)."""
    from shoprank.features.online import OnlineFeatures
    from shoprank.features.store import open_store
    from shoprank.serving.read_costs import online_read_costs
    from shoprank.serving.runtime import limit_threads

    limit_threads()
    online = OnlineFeatures(open_store(settings, serving=True), state.feature_service)
    brands = state.catalog.frame["brand"].dropna().astype(str).unique()[:200].tolist()
    costs = online_read_costs(online, users[:500], brands, repeats=repeats)
    for workload in ("user_rows", "brand_affinities"):
        if workload in costs:
            row = costs[workload]
            console.log(
                f"{workload}: get_online_features {row['get_online_features']['median_ms']} ms, "
                f"online_read {row['online_read']['median_ms']} ms, "
                f"service {row['service']['median_ms']} ms (medians)"
            )
    return costs


def report_table(report: dict) -> None:
    """Print a serving benchmark report: one row per rate, then the search and the delay."""
    table = Table(title=f"Serving benchmark ({report['settings']['workers']} worker(s))")
    columns = ("server", "target rps", "ok rps", "p50", "p95", "p99", "errors", "cpu ms/req")
    for column in (*columns, "rss MB/worker"):
        table.add_column(column, justify="left" if column == "server" else "right", no_wrap=True)
    for name in ("service", "floor"):
        part = report.get(name) or {}
        search = part.get("search") or {}
        for row in [*part.get("fixed", []), *search.get("steps", [])]:
            latency, server = row["latency_ms"], row["server"]
            table.add_row(
                name,
                f"{row['target_rps']:g}",
                f"{row['achieved_rps']:g}",
                *(f"{latency[q]}" for q in ("p50", "p95", "p99")),
                f"{row['errors']['total']}/{row['sent']}",
                f"{server['cpu_ms_per_request']}",
                ", ".join(f"{mb:.0f}" for mb in server["rss_mb_per_worker"]),
            )
    console.print(table)
    search = (report.get("service") or {}).get("search")
    if search:
        console.print(
            f"highest rate with p99 < {search['slo_p99_ms']:g} ms: {search['max_rate_rps']} rps "
            f"(first failing: {search['first_failing_rps']})"
        )
    delay = report.get("event_delay")
    if delay:
        ms = delay["delay_ms"]
        console.print(
            f"event -> recommendation: p50 {ms['p50']} ms, p95 {ms['p95']} ms, max {ms['max']} ms;"
            f" {delay['visible_within']}/{delay['measured']} visible within "
            f"{delay['visible_within_s']:g} s ({delay['visible_within_and_stable']} and never "
            f"shown again), {delay['failed']} failed"
        )


tune_app = typer.Typer(help="Tune on the validation month (figures under reports/).")
app.add_typer(tune_app, name="tune")


@tune_app.command("rerank")
def tune_rerank(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option(help="Ranker config (its rerank: section).")] = Path(
        "models/ranker_v1.yaml"
    ),
    users: Annotated[
        int, typer.Option(min=100, help="Validation users, split between the cutoffs.")
    ] = 3000,
    tag: Annotated[
        str | None,
        typer.Option(help="Exact tag of a saved ranker to use (default: train one as `train`)."),
    ] = None,
    budget: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Largest NDCG@10 share to give up.")
    ] = 0.03,
    slot_at: Annotated[
        list[int] | None,
        typer.Option(help="Also try one new-arrival slot at this position (repeat)."),
    ] = None,
) -> None:
    """Post-ranking NDCG@10 against diversity on validation (reports/rerank_pareto.*)."""
    from shoprank.evaluation.rerank_tuning import plot_pareto, run_tuning, summary_lines
    from shoprank.ranking.config import load_ranker_config
    from shoprank.transform.dbt import require_complete_marts

    settings = _settings(ctx)
    ranker_config = load_ranker_config(config, settings.splits)
    require_complete_marts(settings)
    report = run_tuning(settings, ranker_config, users, tag, budget, slot_at or (), log=console.log)
    report.protocol["command"] = f"shoprank tune rerank --config {config} --users {users}"
    out = settings.reports_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "rerank_pareto.json").write_text(json.dumps(report.to_dict(), indent=2))
    plot_pareto(report, out / "rerank_pareto.png")
    for line in summary_lines(report):
        console.print(line)
    console.print(f"written to {out}/rerank_pareto.{{json,png}}")


def _machine() -> dict:
    import os
    import platform

    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def print_report(report: dict) -> None:
    """Print a pipeline report as tables."""
    counts = Table(title="Rows per table")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    for name, n in report["row_counts"].items():
        counts.add_row(name, f"{n:,}")
    quarantine = Table(title="Quarantined events by reason")
    quarantine.add_column("reason")
    quarantine.add_column("rows", justify="right")
    for reason, n in report["quarantine"].items():
        quarantine.add_row(reason, f"{n:,}")
    stages = Table(title=f"Stages (total {report['total_seconds']:.1f} s)")
    for column in ("stage", "wall s", "peak MB"):
        stages.add_column(column, justify="left" if column == "stage" else "right")
    for stage in report["stages"]:
        stages.add_row(
            stage["stage"], f"{stage['wall_seconds']:.1f}", f"{stage['peak_rss_mb']:.0f}"
        )
    splits = Table(title="Temporal split")
    splits.add_column("split")
    splits.add_column("window")
    for name, window in report["splits"].items():
        splits.add_row(name, window)
    for table in (counts, quarantine, splits, stages):
        console.print(table)
    cold = {k: v for k, v in report.get("generation", {}).items() if "cold" in k or "share" in k}
    if cold:
        console.print(f"cold start in the last month: {cold}")


KNOWN_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, RuntimeError)


def main() -> None:
    """Entry point: run the app; known errors print one line naming the file/field, exit 2."""
    try:
        app()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        err_console.print(
            f"[red]error:[/red] setting {field} (env SHOPRANK_{field.upper()}): {first['msg']}"
        )
        sys.exit(2)
    except KNOWN_ERRORS as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
