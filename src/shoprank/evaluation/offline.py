"""``shoprank evaluate``: every approach, side by side, on the test month.

Generators and the ranker recommend at rolling cutoffs through the test month from what
was known at each; relevance is what each user did in the week after it (graded). Lists are
ranked over the full catalog (generators) or over the union of candidates (the ranker); no
sampled negatives. Segments: all users, warm users (with history before the test month),
cold-start users (none), split into those with no event before the cutoff and those with
first sessions in the test month, cold-start products (relevance restricted to products
launched in the test month) and one segment per weekly cutoff (see :func:`segments`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shoprank.candidates.base import CandidateGenerator
from shoprank.candidates.data import Catalog, InteractionLog, Queries, as_datetime64
from shoprank.evaluation.metrics import Relevance, evaluate
from shoprank.evaluation.report import EvaluationResults
from shoprank.ranking.config import RankerConfig
from shoprank.ranking.examples import CutoffData, query_ids, rolling_examples
from shoprank.ranking.model import QUERY, RankerModel
from shoprank.ranking.rerank import RerankConfig
from shoprank.settings import Settings
from shoprank.training.generators import content_index, generator_factory, load_item_vectors
from shoprank.training.rankers import SESSION_RANKER, Progress, TrainedRankers, train_rankers

LIST_LENGTH = 50
#: The lists users see: the ranker through the post-ranking stage (``rerank:`` in the config).
RERANKED = "ranker_served"
#: The approach every other one is compared with, query by query.
REFERENCE = "ranker"


def lists_from_column(
    examples: pd.DataFrame, queries: np.ndarray, column: str, ascending: bool
) -> np.ndarray:
    """Top-``LIST_LENGTH`` product ids per query, ordered by ``column`` (-1 padded)."""
    frame = examples.dropna(subset=[column]).sort_values(
        [QUERY, column], ascending=[True, ascending], kind="stable"
    )
    frame = frame.assign(position=frame.groupby(QUERY).cumcount())
    frame = frame[frame["position"] < LIST_LENGTH]
    out = np.full((len(queries), LIST_LENGTH), -1, dtype=np.int64)
    rows = pd.Series(np.arange(len(queries)), index=queries).reindex(frame[QUERY]).to_numpy()
    out[rows, frame["position"].to_numpy()] = frame["product_id"].to_numpy()
    return out


def approach_lists(
    examples: pd.DataFrame,
    ids: np.ndarray,
    generators: Iterable[str],
    rankers: dict[str, RankerModel],
) -> tuple[dict[str, np.ndarray], dict[str, pd.DataFrame]]:
    """Every generator's and every model's lists for the queries ``ids`` of ``examples``.

    Generators rank by their ``<name>_rank`` column, models by their score. Also returns
    each model's scored keys (query_id, user_id, product_id, score).
    """
    keys = examples[[QUERY, "user_id", "product_id"]]
    lists = {
        name: lists_from_column(keys.assign(rank=examples[f"{name}_rank"]), ids, "rank", True)
        for name in generators
    }
    scored = {name: keys.assign(score=model.predict(examples)) for name, model in rankers.items()}
    for name, scores in scored.items():
        lists[name] = lists_from_column(scores, ids, "score", False)
    return lists, scored


def oracle_lists(
    settings: Settings,
    parts: list[CutoffData],
    allowed: list[np.ndarray],
    batch_size: int = 128,
) -> np.ndarray:
    """The ceiling: each query's products ranked by the generator's expected relevance grade.

    Uses the generator's whole behaviour model (:class:`ExposureOracle`: what a user views,
    carts and buys) at each query's cutoff, restricted to the products every approach may
    recommend then. Rows follow :func:`query_table` order.
    """
    from shoprank.candidates.base import top_k
    from shoprank.data.oracle import ExposureOracle

    oracle = ExposureOracle.load(settings.truth_dir)
    blocks = []
    for part, mask in zip(parts, allowed, strict=True):
        users = part_users(part)
        when = as_datetime64(part.cutoff.at)
        for start in range(0, len(users), batch_size):
            gain = oracle.expected_gain(users[start : start + batch_size], when)
            gain[:, ~mask[: gain.shape[1]]] = -np.inf
            gain[gain <= 0] = -np.inf
            blocks.append(top_k(gain, LIST_LENGTH)[0])
    return np.vstack(blocks)


PROFILE = ("age_band", "region", "device_preference")


def profile_oracle_lists(
    settings: Settings,
    parts: list[CutoffData],
    allowed: list[np.ndarray],
    per_profile: int = 200,
    seed: int = 0,
) -> np.ndarray:
    """The ceiling for a user known only by profile: what no recommender can beat for them.

    Every query is ranked by the oracle's expected relevance grade averaged over
    ``per_profile`` random users sharing the query user's age band, region and preferred
    device, at the query's cutoff: the expected gain given everything a profile-only model
    could know (the truth's leaf season, popularity, novelty and stock included). For users
    with no event before the cutoff it bounds every approach; with history a model can beat
    it. Rows follow :func:`query_table` order.
    """
    from shoprank.candidates.base import top_k
    from shoprank.data.oracle import ExposureOracle
    from shoprank.ranking.examples import load_users

    oracle = ExposureOracle.load(settings.truth_dir)
    users = load_users(settings)
    profile = users[list(PROFILE)].astype(str).agg("|".join, axis=1)
    members = {key: ids.to_numpy() for key, ids in profile.index.to_series().groupby(profile)}
    rng = np.random.default_rng(seed)
    blocks = []
    for part, mask in zip(parts, allowed, strict=True):
        queried = part_users(part)
        keys = profile.reindex(queried).fillna("").to_numpy()
        when = as_datetime64(part.cutoff.at)
        lists = np.full((len(queried), LIST_LENGTH), -1, dtype=np.int64)
        for key in np.unique(keys):
            pool = members.get(key, profile.index.to_numpy())
            sample = rng.choice(pool, size=min(per_profile, len(pool)), replace=False)
            gain = oracle.expected_gain(sample, when).mean(axis=0, keepdims=True)
            gain[:, ~mask[: gain.shape[1]]] = -np.inf
            gain[gain <= 0] = -np.inf
            lists[keys == key] = top_k(gain, LIST_LENGTH)[0]
        blocks.append(lists)
    return np.vstack(blocks)


def part_users(part: CutoffData) -> np.ndarray:
    """The users queried at one cutoff, sorted: the row order of that cutoff's lists."""
    return np.sort(part.labels["user_id"].unique())


def sampled_users(part: CutoffData) -> np.ndarray:
    """The randomly sampled users of one cutoff (all its users unless others were added)."""
    return part_users(part) if part.sampled is None else part.sampled


def query_table(parts: list[CutoffData]) -> pd.DataFrame:
    """One row per (cutoff, user) query, sorted by query id.

    Columns: query_id, user_id, cutoff and ``sampled`` (in the random sample, as opposed to
    added to measure every cold-start user).
    """
    frames = [
        pd.DataFrame({"user_id": part_users(p)}).assign(
            query_id=lambda f, p=p: query_ids(f["user_id"], p.cutoff),
            cutoff=p.cutoff.at,
            sampled=lambda f, p=p: np.isin(f["user_id"], sampled_users(p)),
        )
        for p in parts
    ]
    return pd.concat(frames, ignore_index=True).sort_values(QUERY, ignore_index=True)


def segments(
    queries: pd.DataFrame,
    first_event: pd.Series,
    labels: pd.DataFrame,
    catalog: Catalog,
    test_start: datetime,
) -> dict[str, tuple[np.ndarray, pd.DataFrame]]:
    """Evaluation segments: row indices into ``queries`` and the relevance rows that count.

    ``first_event`` is each user's first event (naive UTC, indexed by user_id). Cold-start
    users have no history before the test period; they split into those with no event
    before their query's cutoff at all (``cold_users_no_events``: only their profile is
    known) and those whose first sessions fall in the test period before it
    (``cold_users_first_sessions``). Cold-start products were launched in the test period.
    With rolling cutoffs each cutoff's week is a segment too (``week_MM_DD``): the test
    month lies in one season, so this is how results split over it (holiday sales,
    Christmas). When ``queries`` has a ``sampled`` column (every cold-start user was queried
    on top of a random sample), the cold-user segments hold all cold-start users and every
    other segment only the random sample, so that ``all`` keeps the population's mix.
    """
    first = first_event.reindex(queries["user_id"]).to_numpy(dtype="datetime64[us]")
    cutoffs = pd.to_datetime(queries["cutoff"], utc=True)
    known = ~np.isnat(first)
    warm = known & (first < as_datetime64(test_start))
    seen = known & (first < cutoffs.dt.tz_localize(None).to_numpy(dtype="datetime64[us]"))
    launched = catalog.frame["launched_at"].reindex(labels["product_id"]).to_numpy()
    new_product = launched >= as_datetime64(test_start)
    cold_labels = labels[new_product]
    query_id = queries[QUERY].to_numpy()
    sampled = queries.get("sampled", pd.Series(True, index=queries.index)).to_numpy(bool)
    out = {
        "all": (np.flatnonzero(sampled), labels),
        "warm_users": (np.flatnonzero(sampled & warm), labels),
        "cold_users": (np.flatnonzero(~warm), labels),
        "cold_users_no_events": (np.flatnonzero(~seen), labels),
        "cold_users_first_sessions": (np.flatnonzero(~warm & seen), labels),
        "cold_products": (
            np.flatnonzero(sampled & np.isin(query_id, cold_labels[QUERY])),
            cold_labels,
        ),
    }
    if cutoffs.nunique() > 1:  # by period of the season: one segment per weekly cutoff
        for cutoff in sorted(cutoffs.unique()):
            out[f"week_{pd.Timestamp(cutoff):%m_%d}"] = (
                np.flatnonzero(sampled & (cutoffs == cutoff).to_numpy()),
                labels,
            )
    return out


def score_lists(
    lists: dict[str, np.ndarray],
    users: np.ndarray,
    segment_rows: dict[str, tuple[np.ndarray, pd.DataFrame]],
    catalog: Catalog,
    item_popularity: np.ndarray,
    n_boot: int,
    reference: str = REFERENCE,
) -> EvaluationResults:
    """Every metric with its bootstrap CI, per approach and segment (``users``: query ids).

    The ``reference`` approach (the ranker) is also compared with every other approach
    query by query (:func:`paired_differences`).
    """
    results = EvaluationResults()
    categories = catalog.codes("category_l2")
    for segment, (rows, labels) in segment_rows.items():
        if len(rows) == 0:
            continue
        relevance = Relevance.from_frame(
            labels.drop(columns="user_id").rename(
                columns={QUERY: "user_id", "product_id": "item_id", "label": "grade"}
            ),
            users[rows],
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
        if reference in lists:
            for other, metric, ci in paired_differences(lists, rows, relevance, n_boot, reference):
                results.add_comparison(reference, other, segment, metric, ci)
    return results


def paired_differences(
    lists: dict[str, np.ndarray],
    rows: np.ndarray,
    relevance: Relevance,
    n_boot: int,
    reference: str = REFERENCE,
):
    """``reference`` minus each other approach, per query, with a bootstrap 95% interval.

    Yields ``(approach, metric, {"value", "ci_low", "ci_high"})`` for NDCG@10 and Recall@50.
    Both lists are scored on the same queries and every resample takes the same queries for
    both, so the interval is that of the difference itself: it excludes 0 when the ranker
    is better on these queries beyond resampling noise, even where the two marginal
    intervals overlap.
    """
    from shoprank.evaluation.metrics import bootstrap_ci, ndcg_at_k, recall_at_k

    per_query = {
        "ndcg@10": lambda recs: ndcg_at_k(recs, relevance, 10),
        "recall@50": lambda recs: recall_at_k(recs, relevance, 50),
    }
    for metric, score in per_query.items():
        mine = score(lists[reference][rows])
        for other, recs in lists.items():
            if other == reference:
                continue
            mean, low, high = bootstrap_ci(mine - score(recs[rows]), n_boot)
            yield other, metric, {"value": mean, "ci_low": low, "ci_high": high}


IN_SESSION = "cold_users_in_session"


def first_event_points(
    first_event: pd.Series, parts: list[CutoffData], since: datetime
) -> list[pd.DataFrame]:
    """Per test cutoff, the users whose very first event falls in its window, at that event.

    ``first_event`` is each user's first event (naive UTC, indexed by user_id). Only users
    with no event before ``since`` (the test period) count: cold-start users as the service
    meets them, right after the first thing they do in the shop.
    """
    first = first_event[first_event >= as_datetime64(since)]
    points = []
    for part in parts:
        mine = first[(first >= as_datetime64(part.cutoff.at)) & (first < part.cutoff.end)]
        points.append(pd.DataFrame({"user_id": mine.index.to_numpy(), "at": mine.to_numpy()}))
    return points


def in_session_results(
    settings: Settings,
    config: RankerConfig,
    parts: list[CutoffData],
    rankers: TrainedRankers,
    catalog: Catalog,
    log: tuple[InteractionLog, pd.Series],
    item_popularity: np.ndarray,
    n_boot: int,
) -> EvaluationResults:
    """Cold-start users in session: every approach right after a new user's first event.

    ``log`` is the whole event log and each user's first event (as in :func:`segments`).

    The weekly cutoffs meet a new user with nothing but a profile until the next refit;
    the service meets them with the session they are in. Here every cold-start user is
    queried at their first event, with the generators (and the ranker's features) as of
    the last weekly cutoff plus that event (:func:`session_queries`): co-visitation and
    content start from it, the category generator counts it in its leaf, ALS folds it in
    (``als_live``) and the feature store's session features hold it. ``als`` is the
    current system as deployed: it learns a user at its next refit, so it serves a new
    visitor its fallback. Relevance is what the user then does in the week on products
    they had not touched. One segment, :data:`IN_SESSION`; no oracle (the truth's expected
    gain does not condition on the session the user is in).
    """
    from shoprank.ranking.examples import session_examples_at, session_queries

    events, first_event = log
    points = first_event_points(first_event, parts, settings.splits.test_start)
    k = config.candidates_per_generator
    blocks, current = [], []
    for part, mine in zip(parts, points, strict=True):
        if not len(mine):
            continue
        session = session_queries(settings, part.cutoff, mine, events, catalog)
        blocks.append(session_examples_at(settings, part, session, catalog, k))
        current.append(_without_live(part.generators["als"], session))
    labels = pd.concat([b.labels for b in blocks], ignore_index=True)
    examples = pd.concat([b.examples for b in blocks], ignore_index=True)
    ids = np.sort(labels[QUERY].unique())
    lists, _ = approach_lists(examples, ids, blocks[0].generators, rankers.models)
    lists["als_live"] = lists.pop("als")
    lists["als"] = lists_from_column(pd.concat(current, ignore_index=True), ids, "rank", True)
    rows = {IN_SESSION: (np.arange(len(ids)), labels)}
    reference = SESSION_RANKER if SESSION_RANKER in lists else REFERENCE
    return score_lists(lists, ids, rows, catalog, item_popularity, n_boot, reference)


def _without_live(generator: CandidateGenerator, session) -> pd.DataFrame:
    """``generator``'s top ``LIST_LENGTH`` for the session queries, blind to their live events.

    Rows (query_id, product_id, rank); touched products are excluded as for every approach.
    """
    from shoprank.ranking.examples import session_query_ids

    queries = session.queries
    blind = Queries(queries.user_id, queries.as_of, queries.recent_items, queries.segments)
    row_of = pd.Series(np.arange(len(queries)), index=queries.user_id)
    touched = session.touched
    exclude = sp.csr_matrix(
        (np.ones(len(touched)), (row_of.reindex(touched["user_id"]), touched["product_id"])),
        shape=(len(queries), len(session.allowed)),
    )
    items = generator.recommend(blind, LIST_LENGTH, session.allowed, exclude).items
    rows, ranks = np.nonzero(items >= 0)
    moments = session.moments.reindex(queries.user_id).to_numpy()
    qid = session_query_ids(queries.user_id, moments)
    return pd.DataFrame({QUERY: qid[rows], "product_id": items[rows, ranks], "rank": ranks + 1})


@dataclass
class CutoffLists:
    """Each test cutoff's lists, made as soon as its examples exist; then most are dropped.

    Called on every test cutoff's :class:`CutoffData`, or on every batch of its users
    (``examples_at(each_batch=...)``, batches in ascending user order): it ranks the
    queries with every generator and every model in ``rankers``, keeps the reference
    ranker's scores (``ranker_scores``, one frame per cutoff, for the post-ranking stage)
    and returns the data with the candidates of the cutoff's first ``kept_queries`` queries
    only. Every candidate of every query of the test month would not fit in memory when
    every user is queried.
    """

    rankers: dict[str, RankerModel]
    kept_queries: int = 100
    log: Progress = None
    blocks: list[dict[str, np.ndarray]] = field(default_factory=list)
    scores: dict[datetime, list[pd.DataFrame]] = field(default_factory=dict)
    seen: dict[datetime, int] = field(default_factory=dict)

    def __call__(self, part: CutoffData) -> CutoffData:
        """Rank ``part``'s queries with every approach; return it with a sample of examples."""
        ids = query_ids(part_users(part), part.cutoff)
        examples = part.examples
        block, scored = approach_lists(examples, ids, part.generators, self.rankers)
        self.blocks.append(block)
        at = part.cutoff.at
        self.scores.setdefault(at, []).append(scored[REFERENCE])
        before = self.seen.get(at, 0)
        self.seen[at] = before + len(ids)
        if self.log:
            self.log(f"ranked cutoff {at:%Y-%m-%d}: {self.seen[at]:,} queries so far")
        room = max(self.kept_queries - before, 0)
        kept = examples[QUERY].isin(ids[:room]).to_numpy()
        return replace(part, examples=examples[kept].reset_index(drop=True))

    @property
    def ranker_scores(self) -> list[pd.DataFrame]:
        """The reference ranker's candidate scores, one frame per cutoff, in cutoff order."""
        return [pd.concat(frames, ignore_index=True) for frames in self.scores.values()]

    def merged(self) -> dict[str, np.ndarray]:
        """Every approach's lists over all cutoffs, in :func:`query_table` order."""
        return {name: np.vstack([b[name] for b in self.blocks]) for name in self.blocks[0]}


@dataclass
class EvaluationRun:
    """What ``shoprank evaluate`` produced: scores, the trained rankers, the test examples.

    ``test`` merges every test cutoff: its labels carry their ``query_id``; its examples
    are every candidate of a sample of queries (the first :attr:`CutoffLists.kept_queries`
    of each cutoff; the rest were scored and dropped). ``queries`` has one row per (cutoff,
    user) in the order of the rows of every list in ``lists``.
    """

    results: EvaluationResults
    rankers: TrainedRankers
    test: CutoffData
    queries: pd.DataFrame
    lists: dict[str, np.ndarray]


def merge_cutoffs(parts: list[CutoffData]) -> CutoffData:
    """One CutoffData for many cutoffs: labels gain their query_id, examples are stacked."""
    labels = pd.concat(
        [p.labels.assign(**{QUERY: query_ids(p.labels["user_id"], p.cutoff)}) for p in parts],
        ignore_index=True,
    )
    examples = pd.concat([p.examples for p in parts], ignore_index=True)
    return CutoffData(parts[0].cutoff, parts[-1].generators, labels, examples)


def reranked_lists(
    parts: list[CutoffData],
    scored: list[pd.DataFrame],
    catalog: Catalog,
    config: RerankConfig,
    vectors: np.ndarray | None,
    log: InteractionLog,
    tail: np.ndarray,
) -> np.ndarray:
    """The lists users would see: ranker scores through the post-ranking stage.

    ``scored`` holds, per part, query_id, user_id, product_id and the ranker's ``score`` for
    every candidate of that part. The first ``config.k`` positions are what the post-ranking
    stage shows; the rest of the ``LIST_LENGTH`` positions continue in ``tail`` order (the
    ranker's own lists) so that metrics at 50 stay comparable. At each cutoff, purchases
    before it decide what was already bought and which leaves are repeat-purchase
    categories; rows follow :func:`query_table` order.
    """
    from shoprank.ranking.rerank import purchased_pairs, repeat_categories, rerank_lists

    blocks = []
    for part, mine in zip(parts, scored, strict=True):
        history = log.before(part.cutoff.at)
        users = part_users(part)
        repeat = repeat_categories(
            history, catalog, config.repeat_threshold, config.repeat_min_purchases
        )
        blocks.append(
            rerank_lists(
                mine,
                users,
                catalog,
                config,
                now=part.cutoff.at,
                vectors=vectors,
                bought=purchased_pairs(history),
                repeat_cats=repeat,
            )
        )
    return _continue_with(np.vstack(blocks), tail)


def _continue_with(head: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """Each row of ``head`` (-1 padded), then the row's ``tail`` items not already in it."""
    out = np.full((len(head), tail.shape[1]), -1, dtype=np.int64)
    for row, (first, rest) in enumerate(zip(head, tail, strict=True)):
        first = first[first >= 0]
        rest = rest[(rest >= 0) & ~np.isin(rest, first)]
        merged = np.concatenate([first, rest])[: out.shape[1]]
        out[row, : len(merged)] = merged
    return out


def run_evaluation(
    settings: Settings, config: RankerConfig, n_boot: int = 1000, log: Progress = None
) -> EvaluationRun:
    """Train the ranker, recommend at every test cutoff with every approach, score them all.

    ``log`` receives one line per stage (the CLI prints them with timestamps).
    """
    say = log or (lambda _: None)
    from shoprank.candidates.data import load_catalog, load_log
    from shoprank.ranking.examples import in_stock_mask

    catalog = load_catalog(settings.warehouse_path)
    started = time.perf_counter()
    say("embedding the catalog (cached by content hash)")
    vectors = load_item_vectors(settings, catalog)
    make_generators = generator_factory(vectors, content_index(settings, vectors, catalog))
    embed_seconds = round(time.perf_counter() - started, 1)
    rankers = train_rankers(settings, config, catalog, make_generators, log)
    splits = settings.splits
    started = time.perf_counter()
    say("test examples at every rolling cutoff")
    period = (
        splits.test_start,
        splits.data_end,
        config.evaluation_step_days,
        config.evaluation_users,
    )
    cold_since = splits.test_start if config.evaluation_all_cold_users else None
    # The session ranker is for in-session queries only.
    weekly = {name: m for name, m in rankers.models.items() if name != SESSION_RANKER}
    scorer = CutoffLists(weekly, log=say)
    parts = rolling_examples(
        settings,
        config.candidates_per_generator,
        catalog,
        make_generators,
        period,
        7,
        cold_since=cold_since,
        each=scorer,
        user_batch=config.evaluation_user_batch,
    )
    test = merge_cutoffs(parts)
    queries = query_table(parts)
    ids = queries[QUERY].to_numpy()
    lists = scorer.merged()
    events = load_log(settings.warehouse_path, splits.data_start, splits.data_end)
    lists[RERANKED] = reranked_lists(
        parts, scorer.ranker_scores, catalog, config.rerank, vectors, events, lists["ranker"]
    )
    allowed = [catalog.launched_mask(p.cutoff.end) & in_stock_mask(catalog) for p in parts]
    say("oracle lists from the generator's latent truth")
    lists["oracle"] = oracle_lists(settings, parts, allowed)
    if config.profile_ceiling_users:
        say("profile-only ceiling from the latent truth")
        lists["oracle_profile"] = profile_oracle_lists(
            settings, parts, allowed, per_profile=config.profile_ceiling_users
        )
    history = events.before(splits.test_start)
    popularity = np.bincount(history.item_id, minlength=catalog.n_items + 1).astype(float)
    first_event = pd.Series(events.event_at).groupby(events.user_id).min()
    rows = segments(queries, first_event, test.labels, catalog, splits.test_start)
    say(f"scoring {len(lists)} approaches x {len(rows)} segments ({n_boot} bootstrap resamples)")
    results = score_lists(lists, ids, rows, catalog, popularity, n_boot)
    if config.evaluation_in_session:
        say("cold-start users in session (at their first event)")
        session_started = time.perf_counter()
        session = (events, first_event)
        results.merge(
            in_session_results(
                settings, config, parts, rankers, catalog, session, popularity, n_boot
            )
        )
        results.timings["in_session"] = round(time.perf_counter() - session_started, 1)
    results.timings.update(rankers.seconds)
    results.timings["embed_catalog"] = embed_seconds
    results.timings["test_examples_and_scoring"] = round(time.perf_counter() - started, 1)
    return EvaluationRun(results, rankers, test, queries, lists)


def saved_metrics(run: EvaluationRun) -> dict[str, dict[str, float]]:
    """Test metrics of the models that are saved, by approach name.

    The ranker's on ``all``, the session ranker's on :data:`IN_SESSION` (see
    :func:`shoprank.training.bundle.save_trained`).
    """
    segments = {REFERENCE: "all", SESSION_RANKER: IN_SESSION}
    return {
        approach: {
            f"test_{metric}": float(values["value"])
            for metric, values in run.results.results[approach][segment].items()
        }
        for approach, segment in segments.items()
        if approach in run.rankers.models and approach in run.results.results
    }
