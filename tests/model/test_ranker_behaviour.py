"""Behaviour a shop relies on, checked on a ranker trained on the tiny shop."""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from shoprank.evaluation.offline import run_evaluation
from shoprank.ranking.config import GENERATORS, load_ranker_config

pytestmark = pytest.mark.slow

TINY_CONFIG = """
feature_service: ranker_v1
candidates_per_generator: {default: 50, category: 80}
training:
  cutoffs: ["2025-08-20", "2025-09-15", "2025-10-03"]
  horizon_days: 28
  users_per_cutoff: null
  negatives_per_query: 40
  session_users_per_cutoff: 300
validation:
  users: null
evaluation:
  step_days: 14
  users: null
  user_batch: 40
  in_session: true
  profile_ceiling_users: 20
xgboost:
  n_estimators: 80
  early_stopping_rounds: 20
"""


@pytest.fixture(scope="module")
def run(tiny_platform, tiny_settings, tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "ranker.yaml"
    path.write_text(TINY_CONFIG)
    return run_evaluation(tiny_settings, load_ranker_config(path, tiny_settings.splits), n_boot=50)


def test_evaluation_covers_every_approach_and_segment(run):
    results = run.results
    expected = {
        *GENERATORS,
        "ranker",
        "ranker_served",
        "ranker_no_context",
        "ranker_no_sequence",
        "oracle",
        "oracle_profile",
    }
    # in session only: ALS folding live events in, and the session ranker
    assert set(results.approaches) == expected | {"als_live", "ranker_session"}
    assert set(results.results["ranker_session"]) == {"cold_users_in_session"}
    assert {"all", "warm_users", "cold_users", "cold_users_no_events"} <= set(results.segments)
    n = results.n_users
    assert n["warm_users"] + n["cold_users"] == n["all"]
    # cold users: nothing known at the cutoff, or first sessions in the test month before it
    cold_parts = n["cold_users_no_events"] + n.get("cold_users_first_sessions", 0)
    assert n["cold_users"] == cold_parts
    ndcg = results.get("ranker", "all", "ndcg@10")
    assert ndcg["ci_low"] <= ndcg["value"] <= ndcg["ci_high"]
    # cold-start users in session: every generator and ranker, no oracle (see in_session_results)
    in_session = {a for a in results.approaches if "cold_users_in_session" in results.results[a]}
    assert in_session == expected - {"ranker_served", "oracle", "oracle_profile"} | {
        "als_live",
        "ranker_session",
    }
    assert n["cold_users_in_session"] > 0


def test_ranker_reaches_a_minimum_ndcg_on_the_fixed_tiny_shop(run):
    ranker = run.results.get("ranker", "all", "ndcg@10")["value"]
    popularity = run.results.get("popularity", "all", "ndcg@10")["value"]
    assert ranker > popularity
    assert ranker >= 0.05


def test_rank_does_not_depend_on_product_ids(run):
    model = run.rankers.models["ranker"]
    rows = run.test.examples.head(2000)
    relabelled = rows.assign(product_id=rows["product_id"].sample(frac=1, random_state=0).values)
    np.testing.assert_array_equal(model.predict(rows), model.predict(relabelled))
    assert not any("product_id" in c for c in model.columns)


def test_more_interest_in_a_category_never_pushes_it_down(run):
    model = run.rankers.models["ranker"]
    rows = run.test.examples.dropna(subset=["user_category_affinity__category_score_90d"])
    rows = rows.head(2000)
    assert len(rows) > 50
    keen = rows.assign(
        user_category_affinity__category_score_90d=rows[
            "user_category_affinity__category_score_90d"
        ]
        + 25,
        user_category_affinity__category_share_90d=np.minimum(
            rows["user_category_affinity__category_share_90d"] + 0.3, 1.0
        ),
        user_category_affinity__category_rank_90d=1.0,
        in_top_category=1.0,
    )
    before, after = model.predict(rows), model.predict(keen)
    assert (after >= before - 1e-6).all()


def test_ablations_really_drop_their_feature_groups(run):
    models = run.rankers.models
    assert not any(c.startswith("calendar_features__") for c in models["ranker_no_context"].columns)
    assert not any(
        c.startswith(("session_features__", "covisitation_"))
        for c in models["ranker_no_sequence"].columns
    )
    assert set(models["ranker"].columns) > set(models["ranker_no_context"].columns)


def test_every_list_is_full_catalog_ids_without_duplicates(run):
    for name, lists in run.lists.items():
        for row in lists[:50]:
            items = row[row >= 0]
            assert len(items) == len(np.unique(items)), name
    assert isinstance(run.test.labels, pd.DataFrame)


def test_rolling_test_cutoffs_give_one_list_per_user_and_week(run):
    queries = run.queries
    assert queries["cutoff"].nunique() == 2  # the tiny config steps 14 days through December
    assert queries["query_id"].is_unique and queries["query_id"].is_monotonic_increasing
    assert all(len(lists) == len(queries) for lists in run.lists.values())
    # A user who shows up in both windows is two queries with two (different) label sets
    twice = queries["user_id"].value_counts()
    assert (twice == 2).any()
    weeks = [s for s in run.results.segments if s.startswith("week_")]
    assert weeks == ["week_12_01", "week_12_15"]
    assert sum(run.results.n_users[w] for w in weeks) == run.results.n_users["all"]


def test_lists_made_cutoff_by_cutoff_match_the_kept_examples(run):
    # Each cutoff is ranked as soon as it is built and only a sample of its candidates is
    # kept; the lists of the kept queries must be what those candidates rank to.
    from shoprank.evaluation.offline import CutoffLists, lists_from_column

    examples = run.test.examples
    kept = np.sort(examples["query_id"].unique())
    assert 0 < len(kept) < len(run.queries)
    assert len(kept) <= CutoffLists.kept_queries * run.queries["cutoff"].nunique()
    row_of = pd.Series(np.arange(len(run.queries)), index=run.queries["query_id"])
    rows = row_of.loc[kept].to_numpy()
    keys = examples[["query_id", "user_id", "product_id"]]
    scores = keys.assign(score=run.rankers.models["ranker"].predict(examples))
    np.testing.assert_array_equal(
        lists_from_column(scores, kept, "score", False), run.lists["ranker"][rows]
    )
    ranks = keys.assign(rank=examples["category_rank"])
    np.testing.assert_array_equal(
        lists_from_column(ranks, kept, "rank", True), run.lists["category"][rows]
    )


def test_ranking_a_cutoff_in_user_batches_gives_the_same_lists(run, tiny_settings):
    # Test cutoffs are built and ranked a batch of users at a time (evaluation.user_batch):
    # the lists, the kept examples and the post-ranking input must not depend on it.
    from shoprank.candidates.data import load_catalog
    from shoprank.evaluation.offline import CutoffLists
    from shoprank.ranking.dataset import Cutoff
    from shoprank.ranking.examples import examples_at
    from shoprank.training.generators import generator_factory, load_item_vectors

    catalog = load_catalog(tiny_settings.warehouse_path)
    cutoff = Cutoff(tiny_settings.splits.test_start, 14)
    rankers = {"ranker": run.rankers.models["ranker"]}
    factory = generator_factory(load_item_vectors(tiny_settings, catalog))
    outcomes = []
    for batch in (None, 7):
        scorer = CutoffLists(rankers, kept_queries=10)
        part = examples_at(
            tiny_settings,
            cutoff,
            factory,
            {"default": 50, "category": 80},
            catalog=catalog,
            user_batch=batch,
            each_batch=scorer,
        )
        outcomes.append((scorer, part))
    (whole, whole_part), (batched, batched_part) = outcomes
    assert len(batched.blocks) > 1
    for name, lists in whole.merged().items():
        np.testing.assert_array_equal(batched.merged()[name], lists, err_msg=name)
    key = ["query_id", "product_id"]
    assert [len(s) for s in batched.ranker_scores] == [len(s) for s in whole.ranker_scores]
    pd.testing.assert_frame_equal(
        batched.ranker_scores[0].sort_values(key, ignore_index=True),
        whole.ranker_scores[0].sort_values(key, ignore_index=True),
        check_exact=False,
        rtol=1e-4,
        atol=1e-5,
    )
    assert whole_part.examples["query_id"].nunique() == 10
    # Generator scores are float32 matrix products: BLAS may sum a batch of 7 users in
    # another order than the whole cutoff (last-bit differences); the lists are exact.
    pd.testing.assert_frame_equal(
        batched_part.examples.sort_values(key, ignore_index=True),
        whole_part.examples.sort_values(key, ignore_index=True),
        check_exact=False,
        rtol=1e-4,
        atol=1e-5,
    )
    assert len(batched_part.labels) == len(whole_part.labels)


def test_feature_importance_plot_is_written(run, tmp_path):
    from shoprank.ranking.model import plot_importance

    path = plot_importance(run.rankers.models["ranker"], tmp_path / "importance.png")
    assert path.stat().st_size > 10_000


def test_evaluated_ranker_is_saved_with_its_metadata(run, tiny_settings, tmp_path):
    from shoprank.evaluation.offline import saved_metrics
    from shoprank.ranking.config import load_ranker_config
    from shoprank.ranking.registry import list_rankers, load_ranker
    from shoprank.training.bundle import fit_serving_state, load_recommender, save_trained

    settings = tiny_settings.model_copy(update={"bentoml_home": tmp_path})
    config_path = tmp_path / "ranker.yaml"
    config_path.write_text(TINY_CONFIG)
    config = load_ranker_config(config_path, settings.splits)
    state = fit_serving_state(settings, config)
    tags = save_trained(settings, config, run.rankers.models, saved_metrics(run), state)
    assert all(":" in tag and not tag.endswith(":latest") for tag in tags)
    saved = list_rankers(home=tmp_path)[0]
    assert saved["tag"] == tags[0]
    assert saved["labels"]["feature_service"] == "ranker_v1"
    assert saved["metrics"]["test_ndcg@10"] == run.results.get("ranker", "all", "ndcg@10")["value"]
    rows = run.test.examples.head(300)
    np.testing.assert_array_equal(
        load_ranker(tags[0], home=tmp_path).predict(rows),
        run.rankers.models["ranker"].predict(rows),
    )
    # the session ranker is saved under its own name, with its in-session metrics
    session = list_rankers("shoprank_session_ranker", home=tmp_path)[0]
    assert session["tag"] == tags[1]
    in_session = run.results.get("ranker_session", "cold_users_in_session", "ndcg@10")
    assert session["metrics"]["test_ndcg@10"] == in_session["value"]
    np.testing.assert_array_equal(
        load_ranker(tags[1], home=tmp_path).predict(rows),
        run.rankers.models["ranker_session"].predict(rows),
    )
    # one tag restores the ranker and everything fitted with it, as of the end of the data
    model, restored = load_recommender(tags[0], home=tmp_path)
    assert restored.fitted_at == settings.splits.data_end
    assert set(restored.generators) == set(GENERATORS)
    assert restored.feature_service == "ranker_v1"
    np.testing.assert_array_equal(restored.recent, state.recent)
    np.testing.assert_array_equal(model.predict(rows), run.rankers.models["ranker"].predict(rows))


def test_reranked_lists_follow_the_business_rules(run, tiny_settings):
    from shoprank.candidates.data import load_catalog

    catalog = load_catalog(tiny_settings.warehouse_path).frame
    shown = run.lists["ranker_served"][:, :10]
    leaves = catalog["category_l2"]
    for row in shown[:300]:
        items = row[row >= 0]
        assert catalog.loc[items, "in_stock"].astype(bool).all()
        assert leaves.loc[items].value_counts().max() <= 3  # rerank.max_per_category
    # Past the shown ten, the list continues in the ranker's order without repeats
    full = run.lists["ranker_served"][0]
    assert len(np.unique(full[full >= 0])) == (full >= 0).sum()


def test_every_cold_start_user_is_queried_on_top_of_the_sample(tiny_platform, tiny_settings):
    from shoprank.candidates.data import load_catalog, load_log
    from shoprank.evaluation.offline import (
        merge_cutoffs,
        part_users,
        query_table,
        segments,
    )
    from shoprank.ranking.dataset import Cutoff, label_frame
    from shoprank.ranking.examples import examples_at
    from shoprank.training.generators import generator_factory

    splits = tiny_settings.splits
    cutoff = Cutoff(splits.test_start + timedelta(days=7), 14)
    part = examples_at(
        tiny_settings,
        cutoff,
        generator_factory(None),
        20,
        n_users=5,
        seed=1,
        cold_since=splits.test_start,
    )
    # who should be queried, from the log itself
    events = load_log(tiny_settings.warehouse_path, splits.data_start, splits.data_end)
    labelled = label_frame(events, cutoff)["user_id"].unique()
    known = np.unique(events.before(splits.test_start).user_id)
    cold = np.setdiff1d(labelled, known)
    assert len(cold) > 0
    assert len(part.sampled) == 5
    assert set(part_users(part)) == set(part.sampled) | set(cold)
    # every queried user has candidate rows
    assert set(part.examples["user_id"]) == set(part_users(part))

    queries = query_table([part])
    first_event = pd.Series(events.event_at).groupby(events.user_id).min()
    catalog = load_catalog(tiny_settings.warehouse_path)
    labels = merge_cutoffs([part]).labels
    rows = segments(queries, first_event, labels, catalog, splits.test_start)
    # `all` is the random sample only; the cold segment is every cold-start user
    assert len(rows["all"][0]) == 5
    assert set(queries["user_id"].iloc[rows["cold_users"][0]]) == set(cold)


def test_profile_ceiling_gives_one_list_per_profile_and_week(run, tiny_settings):
    from shoprank.ranking.examples import load_users

    profile = load_users(tiny_settings)[["age_band", "region", "device_preference"]]
    queries = run.queries.join(profile, on="user_id")
    lists = run.lists["oracle_profile"]
    assert (lists[:, 0] > 0).all()
    for _, group in queries.groupby(["cutoff", "age_band", "region", "device_preference"]):
        rows = group.index.to_numpy()
        assert (lists[rows] == lists[rows[0]]).all()
    # profiles differ in what they are shown, and knowing only them is worth less than
    # knowing each user (the oracle)
    assert len({tuple(row) for row in lists[:, :10]}) > 1
    oracle = run.results.get("oracle", "all", "ndcg@10")["value"]
    assert run.results.get("oracle_profile", "all", "ndcg@10")["value"] < oracle


def test_in_session_queries_see_the_first_event_and_nothing_after(tiny_platform, tiny_settings):
    from shoprank.candidates.data import load_catalog, load_log
    from shoprank.evaluation.offline import first_event_points
    from shoprank.ranking.dataset import Cutoff
    from shoprank.ranking.examples import examples_at, session_examples_at, session_queries
    from shoprank.ranking.model import QUERY
    from shoprank.training.generators import generator_factory

    splits = tiny_settings.splits
    cutoff = Cutoff(splits.test_start, 14)
    part = examples_at(tiny_settings, cutoff, generator_factory(None), 20, n_users=5, seed=1)
    events = load_log(tiny_settings.warehouse_path, splits.data_start, splits.data_end)
    catalog = load_catalog(tiny_settings.warehouse_path)
    first_event = pd.Series(events.event_at).groupby(events.user_id).min()
    points = first_event_points(first_event, [part], splits.test_start)[0]
    assert len(points) > 0
    session = session_queries(tiny_settings, cutoff, points, events, catalog)
    data = session_examples_at(tiny_settings, part, session, catalog, k=20)
    # live events are the first event; the query knows nothing else about the user
    assert (session.queries.live_items[:, 0] >= 0).all()
    assert (session.queries.recent_items[:, 0] == session.queries.live_items[:, 0]).all()

    log = pd.DataFrame({"user_id": events.user_id, "product_id": events.item_id})
    log["at"] = events.event_at
    first = log.sort_values("at", kind="stable").drop_duplicates("user_id")
    first = first[first["user_id"].isin(points["user_id"])].set_index("user_id")
    rows = data.examples
    assert set(rows["user_id"]) <= set(points["user_id"])
    # one query per user, at the moment of their first event
    assert rows.groupby("user_id")[QUERY].nunique().max() == 1
    stamps = rows["event_timestamp"].dt.tz_localize(None).to_numpy("datetime64[us]")
    assert (stamps == first["at"].reindex(rows["user_id"]).to_numpy()).all()
    # the feature store's session features are those right after that event, nothing later
    assert (rows["session_features__session_event_count"] == 1).all()
    last = rows["session_features__last_product_id"].to_numpy()
    at_first = log.merge(first["at"].rename("first_at").reset_index(), on="user_id")
    at_first = at_first[at_first["at"] == at_first["first_at"]]
    touched = set(zip(at_first["user_id"], at_first["product_id"], strict=True))
    assert all((u, p) in touched for u, p in zip(rows["user_id"], last, strict=True))
    # products touched at the first event are neither recommended nor counted as relevant
    assert not any(
        (u, p) in touched for u, p in zip(rows["user_id"], rows["product_id"], strict=False)
    )
    labels = data.labels
    assert not any(
        (u, p) in touched for u, p in zip(labels["user_id"], labels["product_id"], strict=False)
    )
    # every query has relevance, and every labelled product was touched later in the window
    assert set(labels["user_id"]) == set(rows["user_id"])
    later = log.merge(first["at"].rename("first_at").reset_index(), on="user_id")
    later = later[
        (later["at"] > later["first_at"])
        & (later["at"] < later["first_at"] + pd.Timedelta(days=14))
    ]
    assert set(zip(labels["user_id"], labels["product_id"], strict=False)) <= set(
        zip(later["user_id"], later["product_id"], strict=False)
    )
