"""Ranking examples and the XGBoost ranker on hand-made frames."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from shoprank.candidates.data import Queries, log_from_frame
from shoprank.candidates.popularity import Popularity
from shoprank.ranking.dataset import Cutoff, attach_labels, candidate_frame, label_frame
from shoprank.ranking.features import add_crosses, feature_columns
from shoprank.ranking.model import RankerParams, train_ranker

CUTOFF = Cutoff(datetime(2025, 6, 1, tzinfo=UTC), horizon_days=7)


def _log(rows):
    frame = pd.DataFrame(
        rows, columns=["user_id", "product_id", "event_type", "event_at", "session_id"]
    )
    frame["event_at"] = pd.to_datetime(frame["event_at"])
    return log_from_frame(frame)


def test_labels_grade_the_best_event_inside_the_window_only():
    log = _log(
        [
            (1, 10, "view", "2025-06-02", "a"),
            (1, 10, "purchase", "2025-06-03", "a"),
            (1, 11, "cart", "2025-06-05", "b"),
            (1, 12, "purchase", "2025-06-09", "c"),
            (2, 10, "view", "2025-05-31", "d"),
        ]
    )
    labels = label_frame(log, CUTOFF).set_index(["user_id", "product_id"])["label"]
    assert labels.to_dict() == {(1, 10): 3, (1, 11): 2}


def test_labels_carry_revenue_for_business_metrics_but_never_as_a_feature():
    frame = pd.DataFrame(
        [
            (1, 10, "purchase", "2025-06-02", "a", 20.0),
            (1, 10, "purchase", "2025-06-04", "b", 5.0),
            (1, 11, "view", "2025-06-04", "b", 0.0),
        ],
        columns=["user_id", "product_id", "event_type", "event_at", "session_id", "revenue"],
    )
    frame["event_at"] = pd.to_datetime(frame["event_at"])
    labels = label_frame(log_from_frame(frame), CUTOFF).set_index(["user_id", "product_id"])
    assert labels["revenue"].to_dict() == {(1, 10): 25.0, (1, 11): 0.0}
    candidates = pd.DataFrame({"user_id": [1, 1], "product_id": [10, 12]})
    rows = attach_labels(candidates, labels.reset_index())
    assert "revenue" not in rows.columns
    assert rows["label"].tolist() == [3, 0]


class _Fixed(Popularity):
    def __init__(self, scores, name):
        super().__init__(name=name)
        self.item_scores = np.asarray(scores, dtype=np.float32)

    def fit(self, log, catalog, as_of):
        return self


def test_candidate_union_keeps_each_generator_score_and_rank():
    queries = Queries(np.array([7]), CUTOFF.at, np.full((1, 5), -1))
    generators = {"a": _Fixed([0, 3, 2, 1, 0], "a"), "b": _Fixed([0, 0, 2, 1, 5], "b")}
    allowed = np.ones(5, dtype=bool)
    union = candidate_frame(generators, queries, k=2, allowed=allowed).set_index("product_id")
    assert sorted(union.index) == [1, 2, 4]
    assert union.loc[1, "a_rank"] == 1 and np.isnan(union.loc[1, "b_rank"])
    assert union.loc[2, "n_sources"] == 2 and union.loc[4, "n_sources"] == 1
    labelled = attach_labels(
        union.reset_index(), pd.DataFrame({"user_id": [7], "product_id": [4], "label": [3]})
    )
    assert labelled.set_index("product_id")["label"].to_dict() == {1: 0, 2: 0, 4: 3}


def test_each_generator_proposes_its_own_number_of_candidates():
    queries = Queries(np.array([7]), CUTOFF.at, np.full((1, 5), -1))
    generators = {"a": _Fixed([0, 3, 2, 1, 0], "a"), "b": _Fixed([0, 0, 2, 1, 5], "b")}
    allowed = np.ones(5, dtype=bool)
    union = candidate_frame(generators, queries, {"default": 1, "a": 3}, allowed)
    union = union.set_index("product_id")
    assert sorted(union.index) == [1, 2, 3, 4]
    assert union["a_rank"].dropna().to_dict() == {1: 1, 2: 2, 3: 3}
    assert union["b_rank"].dropna().to_dict() == {4: 1}
    # Every generator still scores every candidate of the union.
    assert union.loc[3, "b_score"] == 1 and union.loc[4, "a_score"] == 0


def test_crosses_are_missing_rather_than_false_without_history():
    frame = pd.DataFrame(
        {
            "product_features__price_rel_category": [1.2, 1.0],
            "user_features__avg_price_rel_category_90d": [1.0, np.nan],
            "product_features__category_l1": ["Toys", "Toys"],
            "user_features__top_category_l1_90d": ["Toys", None],
            "product_features__brand": ["a", "b"],
            "user_features__top_brand_90d": ["b", None],
            "product_features__category_l2": ["kites", "kites"],
            "session_features__last_category_l2": [None, "kites"],
        }
    )
    out = add_crosses(frame)
    assert out["price_vs_usual"].round(6).tolist()[0] == 0.2 and np.isnan(out["price_vs_usual"][1])
    assert out["in_top_category"].tolist()[0] == 1.0 and np.isnan(out["in_top_category"][1])
    assert out["in_top_brand"].tolist()[0] == 0.0
    assert np.isnan(out["same_leaf_as_last"][0]) and out["same_leaf_as_last"][1] == 1.0


def test_ids_never_become_features_and_ablations_drop_their_groups():
    frame = pd.DataFrame(
        columns=[
            "user_id",
            "product_id",
            "label",
            "query_id",
            "event_timestamp",
            "calendar_date",
            "category_l1",
            "brand",
            "session_features__last_product_id",
            "session_features__session_minutes",
            "calendar_features__month",
            "covisitation_score",
            "user_features__views_7d",
        ]
    )
    assert feature_columns(frame) == [
        "session_features__session_minutes",
        "calendar_features__month",
        "covisitation_score",
        "user_features__views_7d",
    ]
    assert feature_columns(frame, ("context", "sequence")) == ["user_features__views_7d"]


def _synthetic(n_queries: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = n_queries * 20
    signal = rng.normal(size=rows)
    label = (signal + rng.normal(scale=0.5, size=rows) > 1.2).astype(int) * 2
    return pd.DataFrame(
        {
            "query_id": np.repeat(np.arange(n_queries), 20) + 17_640_000_000 * 10**7,
            "user_id": np.repeat(np.arange(n_queries), 20),
            "product_id": rng.integers(1, 1000, rows),
            "signal": signal,
            "noise": rng.normal(size=rows),
            "colour": rng.choice(["red", "blue"], rows),
            "label": label,
        }
    )


def test_ranker_learns_a_real_signal_and_recodes_categories():
    params = RankerParams(n_estimators=60, early_stopping_rounds=10)
    model = train_ranker(_synthetic(200, 0), _synthetic(50, 1), params)
    test = _synthetic(50, 2)
    test["colour"] = np.where(test["colour"] == "red", "blue", "green")  # unseen category
    scores = model.predict(test)
    assert np.corrcoef(scores, test["signal"])[0, 1] > 0.8
    assert model.importance().index[0] == "signal"
    assert "product_id" not in model.columns


def test_negative_sampling_keeps_positives_and_caps_negatives():
    from shoprank.ranking.dataset import sample_negatives

    frame = pd.DataFrame(
        {
            "query_id": [1] * 6 + [2] * 3,
            "product_id": range(9),
            "label": [3, 0, 0, 0, 1, 0, 0, 0, 0],
        }
    )
    sampled = sample_negatives(frame, per_query=2, seed=0)
    assert set(sampled["query_id"]) == {1}  # query 2 has no positive: dropped
    assert sorted(sampled.loc[sampled["label"] > 0, "product_id"]) == [0, 4]
    assert (sampled["label"] == 0).sum() == 2


def test_rolling_cutoffs_tile_the_period_without_gaps():
    from shoprank.ranking.examples import rolling_cutoffs

    start, end = datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    weekly = rolling_cutoffs(start, end, 7)
    assert [c.at.day for c in weekly] == [1, 8, 15, 22]
    assert [c.horizon_days for c in weekly] == [7, 7, 7, 10]  # 3 spare days join the last
    assert weekly[-1].end == np.datetime64("2026-01-01T00:00:00")
    assert rolling_cutoffs(start, end, None) == [Cutoff(start, 31)]
    assert [c.horizon_days for c in rolling_cutoffs(start, end, 10)] == [10, 10, 11]


def test_cold_user_segments_split_on_events_before_each_cutoff():
    from shoprank.candidates.data import Catalog
    from shoprank.evaluation.offline import segments

    dec1, dec8 = datetime(2025, 12, 1, tzinfo=UTC), datetime(2025, 12, 8, tzinfo=UTC)
    queries = pd.DataFrame(
        {
            "user_id": [1, 2, 3, 3, 4],
            "query_id": [11, 12, 13, 23, 24],
            "cutoff": [dec1, dec1, dec1, dec8, dec8],
        }
    )
    first_event = pd.Series(
        pd.to_datetime(["2025-06-01", "2025-12-03", "2025-12-02"]).to_numpy(),
        index=[1, 2, 3],
    )  # user 4 has no event at all
    labels = pd.DataFrame({"query_id": [11], "user_id": [1], "product_id": [1], "label": [1]})
    catalog = Catalog(
        pd.DataFrame({"launched_at": pd.to_datetime(["2025-01-01"])}, index=pd.Index([1]))
    )
    rows = segments(queries, first_event, labels, catalog, dec1)
    assert list(rows["warm_users"][0]) == [0]
    assert list(rows["cold_users"][0]) == [1, 2, 3, 4]
    # user 3 is unknown on 1 December and has a first session by the 8th
    assert list(rows["cold_users_no_events"][0]) == [1, 2, 4]
    assert list(rows["cold_users_first_sessions"][0]) == [3]
