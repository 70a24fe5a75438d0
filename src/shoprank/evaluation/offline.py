"""``shoprank evaluate``: every approach, side by side, on the test month.

Generators and the ranker recommend at the test cutoff (the start of the test split) from
what was known then; relevance is what each user did in the test month (graded). Lists are
ranked over the full catalog (generators) or over the union of candidates (the ranker); no
sampled negatives. Segments: all users, warm users (with history before the cutoff),
cold-start users (none), and cold-start products (relevance restricted to products
launched in the test month).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shoprank.candidates.affinity import CategoryAffinity
from shoprank.candidates.als import ALS
from shoprank.candidates.base import CandidateGenerator
from shoprank.candidates.content import ContentSimilarity, catalog_vectors
from shoprank.candidates.covisitation import CoVisitation
from shoprank.candidates.data import Catalog, as_datetime64
from shoprank.candidates.popularity import Popularity, SeasonalPopularity, SegmentPopularity
from shoprank.evaluation.metrics import Relevance, evaluate
from shoprank.evaluation.report import EvaluationResults
from shoprank.ranking.config import RankerConfig
from shoprank.ranking.dataset import Cutoff, sample_negatives
from shoprank.ranking.examples import CutoffData, GeneratorFactory, examples_at
from shoprank.ranking.model import RankerModel, train_ranker
from shoprank.settings import Settings

LIST_LENGTH = 50
ABLATIONS = {"ranker_no_context": ("context",), "ranker_no_sequence": ("sequence",)}


def default_generators(
    users: pd.DataFrame, item_vectors: np.ndarray | None = None
) -> dict[str, CandidateGenerator]:
    """The candidate generators of ranker v1, by name (content only when vectors are given)."""
    generators: dict[str, CandidateGenerator] = {
        "popularity": Popularity(),
        "trending": Popularity(half_life_days=7.0, name="trending"),
        "seasonal": SeasonalPopularity(),
        "segment": SegmentPopularity(users),
        "covisitation": CoVisitation(),
        "als": ALS(),
        "category": CategoryAffinity(),
    }
    if item_vectors is not None:
        generators["content"] = ContentSimilarity(item_vectors)
    return generators


def generator_factory(item_vectors: np.ndarray | None) -> GeneratorFactory:
    """A fresh set of generators per cutoff, sharing the (read-only) content vectors."""
    return lambda users: default_generators(users, item_vectors)


def load_item_vectors(settings: Settings, catalog: Catalog) -> np.ndarray:
    """MiniLM vectors of every product's title and description, cached by content hash."""
    import duckdb

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        products = con.execute(
            "select product_id, title, description from stg_products order by product_id"
        ).df()
    cache = settings.data_path / "embeddings" / "products.parquet"
    return catalog_vectors(products, cache, catalog.n_items)


@dataclass
class TrainedRankers:
    """The ranker and its ablations, with training timings."""

    models: dict[str, RankerModel] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _training_examples(
    settings: Settings,
    config: RankerConfig,
    at,
    seed: int,
    catalog: Catalog,
    make_generators: GeneratorFactory,
) -> pd.DataFrame:
    """Examples at one training cutoff, negatives subsampled."""
    data = examples_at(
        settings,
        Cutoff(at, config.horizon_days),
        make_generators,
        config.candidates_per_generator,
        config.users_per_cutoff,
        seed=seed,
        catalog=catalog,
    )
    return sample_negatives(data.examples, config.negatives_per_query, seed=seed)


def train_rankers(
    settings: Settings,
    config: RankerConfig,
    catalog: Catalog,
    make_generators: GeneratorFactory,
) -> TrainedRankers:
    """Build training and validation examples, then fit the ranker and its ablations."""
    out = TrainedRankers()
    started = time.perf_counter()
    k = config.candidates_per_generator
    train = pd.concat(
        [
            _training_examples(settings, config, c, i, catalog, make_generators)
            for i, c in enumerate(config.training_cutoffs)
        ],
        ignore_index=True,
    )
    splits = settings.splits
    valid_cutoff = Cutoff(
        splits.validation_start, (splits.test_start - splits.validation_start).days
    )
    valid = examples_at(
        settings,
        valid_cutoff,
        make_generators,
        k,
        config.validation_users,
        seed=99,
        catalog=catalog,
    ).examples
    out.seconds["examples"] = round(time.perf_counter() - started, 1)
    for name, dropped in {"ranker": (), **ABLATIONS}.items():
        started = time.perf_counter()
        out.models[name] = train_ranker(train, valid, config.params, drop_groups=dropped)
        out.seconds[f"train_{name}"] = round(time.perf_counter() - started, 1)
    return out


def lists_from_column(
    examples: pd.DataFrame, users: np.ndarray, column: str, ascending: bool
) -> np.ndarray:
    """Top-``LIST_LENGTH`` product ids per user, ordered by ``column`` (-1 padded)."""
    frame = examples.dropna(subset=[column]).sort_values(
        ["user_id", column], ascending=[True, ascending], kind="stable"
    )
    frame = frame.assign(position=frame.groupby("user_id").cumcount())
    frame = frame[frame["position"] < LIST_LENGTH]
    out = np.full((len(users), LIST_LENGTH), -1, dtype=np.int64)
    rows = pd.Series(np.arange(len(users)), index=users).reindex(frame["user_id"]).to_numpy()
    out[rows, frame["position"].to_numpy()] = frame["product_id"].to_numpy()
    return out


def oracle_lists(
    settings: Settings,
    users: np.ndarray,
    test: CutoffData,
    allowed: np.ndarray,
    batch_size: int = 128,
) -> np.ndarray:
    """The ceiling: each user's products ranked by the generator's expected relevance grade.

    Uses the generator's whole behaviour model (:class:`ExposureOracle`: what a user views,
    carts and buys), restricted to the products every approach may recommend.
    """
    from shoprank.candidates.base import top_k
    from shoprank.data.oracle import ExposureOracle

    oracle = ExposureOracle.load(settings.truth_dir)
    when = as_datetime64(test.cutoff.at)
    out = np.full((len(users), LIST_LENGTH), -1, dtype=np.int64)
    for start in range(0, len(users), batch_size):
        gain = oracle.expected_gain(users[start : start + batch_size], when)
        gain[:, ~allowed[: gain.shape[1]]] = -np.inf
        gain[gain <= 0] = -np.inf
        out[start : start + batch_size] = top_k(gain, LIST_LENGTH)[0]
    return out


def segments(
    users: np.ndarray,
    history_users: np.ndarray,
    labels: pd.DataFrame,
    catalog: Catalog,
    cutoff: Cutoff,
) -> dict[str, tuple[np.ndarray, pd.DataFrame]]:
    """Evaluation segments: row indices into ``users`` and the relevance rows that count."""
    warm = np.isin(users, history_users)
    launched = catalog.frame["launched_at"].reindex(labels["product_id"]).to_numpy()
    new_product = launched >= as_datetime64(cutoff.at)
    cold_labels = labels[new_product]
    cold_product_rows = np.flatnonzero(np.isin(users, cold_labels["user_id"].unique()))
    return {
        "all": (np.arange(len(users)), labels),
        "warm_users": (np.flatnonzero(warm), labels),
        "cold_users": (np.flatnonzero(~warm), labels),
        "cold_products": (cold_product_rows, cold_labels),
    }


def score_lists(
    lists: dict[str, np.ndarray],
    users: np.ndarray,
    segment_rows: dict[str, tuple[np.ndarray, pd.DataFrame]],
    catalog: Catalog,
    item_popularity: np.ndarray,
    n_boot: int,
) -> EvaluationResults:
    """Every metric with its bootstrap CI, per approach and segment."""
    results = EvaluationResults()
    categories = catalog.codes("category_l2")
    for segment, (rows, labels) in segment_rows.items():
        if len(rows) == 0:
            continue
        relevance = Relevance.from_frame(
            labels.rename(columns={"product_id": "item_id", "label": "grade"}), users[rows]
        )
        results.n_users[segment] = len(rows)
        for approach, recs in lists.items():
            results.add(
                approach,
                segment,
                evaluate(
                    recs[rows],
                    relevance,
                    n_items=catalog.n_items,
                    item_popularity=item_popularity,
                    item_categories=categories,
                    n_boot=n_boot,
                ),
            )
    return results


@dataclass
class EvaluationRun:
    """What ``shoprank evaluate`` produced: scores, the trained rankers, the test examples."""

    results: EvaluationResults
    rankers: TrainedRankers
    test: CutoffData
    users: np.ndarray
    lists: dict[str, np.ndarray]


def run_evaluation(settings: Settings, config: RankerConfig, n_boot: int = 1000) -> EvaluationRun:
    """Train the ranker, recommend at the test cutoff with every approach, score them all."""
    from shoprank.candidates.data import load_catalog, load_log
    from shoprank.ranking.examples import in_stock_mask

    catalog = load_catalog(settings.warehouse_path)
    started = time.perf_counter()
    make_generators = generator_factory(load_item_vectors(settings, catalog))
    embed_seconds = round(time.perf_counter() - started, 1)
    rankers = train_rankers(settings, config, catalog, make_generators)
    splits = settings.splits
    cutoff = Cutoff(splits.test_start, (splits.data_end - splits.test_start).days)
    started = time.perf_counter()
    test = examples_at(
        settings,
        cutoff,
        make_generators,
        config.candidates_per_generator,
        config.evaluation_users,
        seed=7,
        catalog=catalog,
    )
    users = np.sort(test.labels["user_id"].unique())
    lists = {
        name: lists_from_column(test.examples, users, f"{name}_rank", True)
        for name in test.generators
    }
    for name, model in rankers.models.items():
        scored = test.examples.assign(**{f"{name}_score_": model.predict(test.examples)})
        lists[name] = lists_from_column(scored, users, f"{name}_score_", False)
    allowed = catalog.launched_mask(splits.data_end) & in_stock_mask(catalog)
    lists["oracle"] = oracle_lists(settings, users, test, allowed)
    history = load_log(settings.warehouse_path, splits.data_start, splits.test_start)
    popularity = np.bincount(history.item_id, minlength=catalog.n_items + 1).astype(float)
    rows = segments(users, np.unique(history.user_id), test.labels, catalog, cutoff)
    results = score_lists(lists, users, rows, catalog, popularity, n_boot)
    results.timings.update(rankers.seconds)
    results.timings["embed_catalog"] = embed_seconds
    results.timings["test_examples_and_scoring"] = round(time.perf_counter() - started, 1)
    return EvaluationRun(results, rankers, test, users, lists)


def save_evaluated_ranker(settings: Settings, config: RankerConfig, run: EvaluationRun) -> str:
    """Save the evaluated ranker in BentoML's model store with its window, data and metrics."""
    import json

    from shoprank.ranking.registry import save_ranker

    build = json.loads((settings.marts_dir / "_build.json").read_text())
    splits = settings.splits
    window = {
        "training_cutoffs": ",".join(f"{c:%Y-%m-%d}" for c in config.training_cutoffs),
        "horizon_days": str(config.horizon_days),
        "validation": splits.as_dict()["validation"],
        "test": splits.as_dict()["test"],
    }
    metrics = {
        f"test_{name}": float(values["value"])
        for name, values in run.results.results["ranker"]["all"].items()
    }
    return save_ranker(
        run.rankers.models["ranker"],
        model_version=config.feature_service,
        feature_service=config.feature_service,
        training_window=window,
        data_version=f"marts built {build['built_at']}",
        metrics=metrics,
        home=settings.bentoml_home,
    )
