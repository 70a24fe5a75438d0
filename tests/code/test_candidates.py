"""Candidate generators on hand-made logs: each proposes what its signal says it should."""

from datetime import datetime

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from shoprank.candidates.affinity import CategoryAffinity
from shoprank.candidates.als import ALS
from shoprank.candidates.base import top_k
from shoprank.candidates.covisitation import CoVisitation
from shoprank.candidates.data import Catalog, Queries, live_events, log_from_frame, recent_items
from shoprank.candidates.popularity import Popularity, SeasonalPopularity, SegmentPopularity

AS_OF = datetime(2025, 6, 1)
N_ITEMS = 6


def _catalog() -> Catalog:
    frame = pd.DataFrame(
        {
            "product_id": np.arange(1, N_ITEMS + 1),
            "category_l2": ["mugs", "mugs", "kites", "kites", "tents", "tents"],
            "launched_at": pd.to_datetime(["2024-01-01"] * 5 + ["2025-07-01"]),
        }
    ).set_index("product_id")
    return Catalog(frame)


def _log(rows: list[tuple]) -> object:
    frame = pd.DataFrame(
        rows, columns=["user_id", "product_id", "event_type", "event_at", "session_id"]
    )
    frame["event_at"] = pd.to_datetime(frame["event_at"])
    return log_from_frame(frame)


def _queries(users, recent=None) -> Queries:
    users = np.asarray(users)
    recent = np.full((len(users), 5), -1) if recent is None else np.asarray(recent)
    return Queries(users, AS_OF, recent)


def test_top_k_orders_and_pads():
    scores = np.array([[0.1, 0.9, -np.inf, 0.5], [-np.inf, -np.inf, -np.inf, 0.2]])
    items, values = top_k(scores, 3)
    assert items[0].tolist() == [1, 3, 0]
    assert items[1].tolist() == [3, -1, -1]
    assert values[0, 0] == np.float32(0.9)
    # NaN is no score: it never outranks a real one and pads like -inf
    items, _ = top_k(np.array([[np.nan, 0.3, np.nan, -np.inf]], dtype=np.float32), 3)
    assert items[0].tolist() == [1, -1, -1]


def test_popularity_and_trending_disagree_when_tastes_move():
    rows = [(u, 1, "view", "2025-01-10", f"s{u}") for u in range(1, 8)]  # old hit
    rows += [(u, 2, "view", "2025-05-30", f"t{u}") for u in range(1, 4)]  # new trend
    log = _log(rows)
    popular = Popularity().fit(log, _catalog(), AS_OF).recommend(_queries([1]), 2)
    trending = Popularity(half_life_days=7).fit(log, _catalog(), AS_OF).recommend(_queries([1]), 2)
    assert popular.items[0, 0] == 1
    assert trending.items[0, 0] == 2


def test_purchases_weigh_more_than_views():
    log = _log(
        [
            (1, 3, "view", "2025-05-01", "a"),
            (2, 3, "view", "2025-05-01", "b"),
            (3, 4, "purchase", "2025-05-01", "c"),
        ]
    )
    ranked = Popularity().fit(log, _catalog(), AS_OF).recommend(_queries([9]), 2)
    assert ranked.items[0, 0] == 4


def test_seasonal_lifts_a_category_that_is_booming_now():
    rows = [(u, 1, "view", "2025-01-15", f"a{u}") for u in range(1, 10)]  # mugs, winter
    rows += [(u, 3, "view", "2025-05-25", f"b{u}") for u in range(1, 4)]  # kites, now
    ranked = SeasonalPopularity(recent_days=14).fit(_log(rows), _catalog(), AS_OF)
    assert ranked.recommend(_queries([1]), 1).items[0, 0] == 3


def test_segment_popularity_serves_the_segment_and_falls_back():
    users = pd.DataFrame({"user_id": [1, 2, 3], "region": ["north", "north", "south"]})
    users = users.set_index("user_id")
    rows = [
        (1, 1, "view", "2025-05-30", "a"),
        (2, 1, "view", "2025-05-30", "b"),
        (3, 2, "view", "2025-05-30", "c"),
    ]
    model = SegmentPopularity(users, columns=("region",), prior_events=0.1).fit(
        _log(rows), _catalog(), AS_OF
    )
    segments = pd.DataFrame({"region": ["north", "south", "mars"]})
    queries = Queries(np.array([7, 8, 9]), AS_OF, np.full((3, 5), -1), segments)
    top = model.recommend(queries, 1).items[:, 0]
    assert top.tolist() == [1, 2, 1]  # mars: no such segment -> global


def test_segment_query_key_names_the_row_a_single_query_scores():
    """The service caches a segment's scores under this key: it must be the row used."""
    users = pd.DataFrame(
        {"user_id": [1, 2], "region": ["north", None], "age_band": [3, np.nan]}
    ).set_index("user_id")
    rows = [(1, 1, "view", "2025-05-30", "a"), (2, 2, "view", "2025-05-30", "b")]
    model = SegmentPopularity(users, columns=("region", "age_band"), prior_events=0.1)
    model.fit(_log(rows), _catalog(), AS_OF)
    segments = pd.DataFrame({"region": ["north", None, "mars"], "age_band": [3, np.nan, 1]})
    queries = Queries(np.array([1, 2, 9]), AS_OF, np.full((3, 5), -1), segments)
    blocks = model.score(queries)
    keys = [model.query_key(queries.take(slice(i, i + 1))) for i in range(3)]
    assert keys[0] != keys[1] and keys[2] == len(model.table) - 1
    for i, key in enumerate(keys):
        assert np.array_equal(model.table[key], blocks[i])


def test_covisitation_proposes_session_neighbours_not_the_item_itself():
    rows = []
    for s in range(5):
        rows += [(s, 1, "view", "2025-05-01", f"s{s}"), (s, 3, "cart", "2025-05-01", f"s{s}")]
    rows += [(9, 1, "view", "2025-05-02", "x"), (9, 5, "view", "2025-05-02", "x")]
    model = CoVisitation().fit(_log(rows), _catalog(), AS_OF)
    result = model.recommend(_queries([1], recent=[[1, -1, -1, -1, -1]]), 3)
    assert result.items[0, 0] == 3
    assert 1 not in result.items[0].tolist()
    empty = model.recommend(_queries([2]), 3)
    assert (empty.items == -1).all()  # no recent items: nothing to propose


def test_als_recommends_within_taste_and_falls_back_for_strangers():
    rows = []
    for u in range(1, 21):  # two taste groups
        items = (1, 2) if u <= 10 else (3, 4)
        rows += [(u, i, "view", "2025-04-01", f"s{u}") for i in items]
    rows += [(21, 1, "view", "2025-04-01", "s21")]
    model = ALS(factors=4, iterations=10, alpha=20).fit(_log(rows), _catalog(), AS_OF)
    ranked = model.recommend(
        _queries([21]), 2, exclude=sp.csr_matrix(([1.0], ([0], [1])), shape=(1, N_ITEMS + 1))
    )
    assert ranked.items[0, 0] == 2
    stranger = model.recommend(_queries([999]), 1)
    popular = Popularity().fit(_log(rows), _catalog(), AS_OF).recommend(_queries([999]), 1)
    assert stranger.items.tolist() == popular.items.tolist()


def test_allowed_mask_hides_unlaunched_products():
    rows = [(u, 6, "view", "2025-05-30", f"s{u}") for u in range(1, 5)]
    rows += [(1, 2, "view", "2025-05-30", "z")]
    catalog = _catalog()
    model = Popularity().fit(_log(rows), catalog, AS_OF)
    result = model.recommend(_queries([1]), 2, allowed=catalog.launched_mask(AS_OF))
    assert 6 not in result.items[0].tolist()


def test_recent_items_are_distinct_and_most_recent_first():
    log = _log(
        [
            (1, 1, "view", "2025-05-01", "a"),
            (1, 2, "view", "2025-05-02", "a"),
            (1, 1, "view", "2025-05-03", "b"),
            (2, 3, "view", "2025-05-01", "c"),
        ]
    )
    recent = recent_items(log, np.array([1, 2, 3]), length=3)
    assert recent.tolist() == [[1, 2, -1], [3, -1, -1], [-1, -1, -1]]


def test_content_similarity_finds_the_nearest_descriptions():
    from shoprank.candidates.content import ContentSimilarity, item_matrix

    vectors = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.9, 0.2], [0, 0, 1], [0.1, 0, 1]])
    matrix = item_matrix(np.arange(1, 7), vectors.astype(np.float32), N_ITEMS)
    model = ContentSimilarity(matrix).fit(_log([]), _catalog(), AS_OF)
    result = model.recommend(_queries([1, 2], recent=[[3, -1, -1, -1, -1], [-1] * 5]), 2)
    assert result.items[0].tolist() == [3, 4]  # itself first, then its neighbour
    assert (result.items[1] == -1).all()  # nothing touched: nothing to compare with


def test_category_affinity_serves_the_users_leaf_and_its_new_arrivals():
    # User 1 lives in kites (3 is the kite hit); everyone else drives mugs and tents.
    rows = [(1, 3, "view", f"2025-05-{d:02d}", f"k{d}") for d in range(1, 20)]
    rows += [(u, 1, "view", "2025-05-20", f"m{u}") for u in range(2, 12)]
    rows += [(u, 5, "purchase", "2025-05-21", f"t{u}") for u in range(2, 12)]
    generator = CategoryAffinity(prior_events=1.0, novelty_days=30).fit(
        _log(rows), _catalog(), AS_OF
    )
    kite_fan, stranger = generator.score(_queries([1, 99]))
    assert kite_fan[3] > max(kite_fan[1], kite_fan[5])  # leaf first, then what is popular in it
    assert kite_fan[3] > kite_fan[4]  # within the leaf, what is popular first
    assert max(stranger[1], stranger[5]) > stranger[3]  # no history: the season's leaf mix
    # Product 6 (tents) launches after AS_OF: a new arrival gets the mass of recent launches,
    # here none were launched recently, so the average item mass
    assert stranger[6] > 0
    leaf = generator.leaf_probability(np.array([1, 99]))
    np.testing.assert_allclose(leaf.sum(axis=1), 1.0)


def test_category_affinity_starts_new_users_from_their_segments_leaves():
    users = pd.DataFrame(
        {"age_band": ["18-24"] * 3 + ["65+"] * 3, "region": ["north"] * 6},
        index=pd.Index([1, 2, 3, 4, 5, 6], name="user_id"),
    )
    rows = [(u, 3, "view", "2025-05-20", f"k{u}") for u in (1, 2)]  # the young browse kites
    rows += [(u, 1, "view", "2025-05-21", f"m{u}{i}") for u in (4, 5) for i in range(3)]
    generator = CategoryAffinity(users, ("age_band", "region"), segment_prior_events=1.0)
    generator.fit(_log(rows), _catalog(), AS_OF)
    young, old, stranger = generator.score(_queries([3, 6, 99]))
    assert young[3] > young[1]  # user 3 has no events: their segment's kites come first
    assert old[1] > old[3]
    assert stranger[1] > stranger[3]  # no profile: the shop's mix (mugs lead)


def _live(items: list[list[int]], weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(items, dtype=np.int64)
    return array, np.where(array >= 0, weight, 0.0).astype(np.float32)


def test_queries_reject_live_items_without_weights():
    with pytest.raises(ValueError, match="live_items and live_weights"):
        Queries(np.array([1]), AS_OF, np.full((1, 5), -1), live_items=np.array([[1]]))
    with pytest.raises(ValueError, match="same shape"):
        Queries(
            np.array([1]),
            AS_OF,
            np.full((1, 5), -1),
            live_items=np.array([[1, 2]]),
            live_weights=np.array([[1.0]]),
        )


def test_live_events_are_most_recent_first_per_user():
    log = _log(
        [
            (1, 3, "view", "2025-06-01 10:00", "a"),
            (1, 4, "cart", "2025-06-01 10:05", "a"),
            (2, 5, "view", "2025-06-01 11:00", "b"),
        ]
    )
    items, weights = live_events(log, np.array([1, 2, 7]), length=3)
    assert items.tolist() == [[4, 3, -1], [5, -1, -1], [-1, -1, -1]]
    assert weights[0].tolist() == [3.0, 1.0, 0.0]  # cart 3, view 1


def test_als_folds_a_new_visitor_in_from_live_events():
    rows = []
    for u in range(1, 21):  # two taste groups
        items = (1, 2) if u <= 10 else (3, 4)
        rows += [(u, i, "view", "2025-04-01", f"s{u}") for i in items]
    rows += [(u, 1, "view", "2025-04-02", f"p{u}") for u in range(21, 31)]  # 1 most popular
    model = ALS(factors=4, iterations=10, alpha=20).fit(_log(rows), _catalog(), AS_OF)
    stranger = _queries([99])
    items, weights = _live([[3, -1]])
    visitor = Queries(
        np.array([99]), AS_OF, np.full((1, 5), -1), live_items=items, live_weights=weights
    )
    assert model.recommend(stranger, 1).items[0, 0] == 1  # no events: popularity fallback
    ranked = model.recommend(visitor, 2).items[0].tolist()
    assert ranked[0] in (3, 4) and ranked[1] in (3, 4)  # folded in: the taste group of item 3


def test_als_fold_in_matches_implicit_recalculate_user():
    from implicit.cpu.als import AlternatingLeastSquares

    rng = np.random.default_rng(0)
    rows = [
        (u, int(i), "view", "2025-04-01", f"s{u}")
        for u in range(1, 40)
        for i in rng.choice(np.arange(1, N_ITEMS + 1), 3, replace=False)
    ]
    model = ALS(factors=3, iterations=5, alpha=5).fit(_log(rows), _catalog(), AS_OF)
    items, weights = np.array([2, 5, 5]), np.array([1.0, 1.0, 3.0], dtype=np.float32)
    mine = model.fold_in(999, items, weights)
    reference = AlternatingLeastSquares(factors=3, regularization=0.05, alpha=1.0, use_cg=False)
    reference.item_factors = model.item_factors
    reference.user_factors = np.zeros((1, 3), dtype=np.float32)
    confidence = sp.csr_matrix(
        (5 * np.log1p([1.0, 4.0]), ([0, 0], [2, 5])), shape=(1, N_ITEMS + 1), dtype=np.float32
    )
    expected = reference.recalculate_user(0, confidence)
    np.testing.assert_allclose(mine, np.ravel(expected), rtol=1e-3, atol=1e-5)


def test_category_counts_live_events_in_their_leaf():
    users = pd.DataFrame(
        {"age_band": ["18-24"], "region": ["north"]}, index=pd.Index([1], name="user_id")
    )
    rows = [(1, 1, "view", "2025-05-30", "a"), (1, 2, "view", "2025-05-30", "a")]  # mugs
    model = CategoryAffinity(users).fit(_log(rows), _catalog(), AS_OF)
    items, weights = _live([[5, -1]])  # a tent, right now
    before = model.leaf_probability(np.array([1]))
    after = model.leaf_probability(np.array([1]), (items, weights))
    tents = model.leaf[5]
    assert after[0, tents] > before[0, tents]
    visitor = Queries(
        np.array([77]), AS_OF, np.full((1, 5), -1), live_items=items, live_weights=weights
    )
    assert model.recommend(visitor, 1).items[0, 0] in (5, 6)  # a new visitor's session leaf
