"""Post-ranking rules, diversity, exploration slots and reasons on hand-made catalogs."""

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from shoprank.candidates.data import Catalog, log_from_frame
from shoprank.ranking.model import RankerParams, train_ranker
from shoprank.ranking.rerank import (
    RerankConfig,
    contributions,
    diversify,
    purchased_pairs,
    repeat_categories,
    rerank,
    rerank_lists,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)
#: No diversity, no slots: pure score order after the rules.
PLAIN = RerankConfig(k=10, mmr_lambda=1.0, max_per_category=None, new_arrival_positions=())


def _catalog(rows) -> Catalog:
    """Rows of (product_id, leaf, brand, in_stock, launched_at)."""
    frame = pd.DataFrame(rows, columns=["product_id", "category_l2", "brand", "in_stock", "at"])
    frame["category_l1"] = "Home"
    frame["price"] = 10.0
    frame["launched_at"] = pd.to_datetime(frame.pop("at"))
    return Catalog(frame.set_index("product_id"))


CATALOG = _catalog(
    [
        (1, "Coffee", "Bean Co", True, "2024-01-01"),
        (2, "Kettles", "Boil", True, "2024-01-01"),
        (3, "Kettles", "Boil", False, "2024-01-01"),
        (4, "Kettles", "Steam", True, "2024-01-01"),
        (5, "Kettles", "Steam", True, "2024-01-01"),
        (6, "Toasters", "Crisp", True, "2024-01-01"),
        (7, "Kites", "Acme", True, "2024-01-01"),
        (8, "Toasters", "Crisp", True, "2025-03-01"),  # launched 92 days before NOW
        (9, "Kites", "Acme", True, "2025-05-29"),  # new arrival (3 days before NOW)
        (10, "Kites", "Acme", True, "2025-06-20"),  # launches after NOW
    ]
)


def _candidates(scores: dict[int, float], **columns) -> pd.DataFrame:
    frame = pd.DataFrame({"product_id": list(scores), "score": list(scores.values())})
    for name, values in columns.items():
        frame[name] = frame["product_id"].map(values)
    return frame


def _ids(recommendations) -> list[int]:
    return [r.product_id for r in recommendations]


def test_out_of_stock_products_are_never_recommended():
    candidates = _candidates({3: 9.0, 2: 5.0, 4: 4.0, 99: 8.0})  # 3 out of stock, 99 unknown
    assert _ids(rerank(candidates, CATALOG, PLAIN, now=NOW)) == [2, 4]
    scored = candidates.assign(user_id=1)
    assert rerank_lists(scored, np.array([1]), CATALOG, PLAIN, now=NOW)[0, :3].tolist() == [
        2,
        4,
        -1,
    ]


def test_already_bought_product_is_dropped_unless_repeat_buying_is_normal_for_its_leaf():
    candidates = _candidates({1: 9.0, 2: 8.0, 4: 7.0})
    kept = rerank(candidates, CATALOG, PLAIN, now=NOW, bought={1, 2}, repeat_cats={"Coffee"})
    assert _ids(kept) == [1, 4]
    assert _ids(rerank(candidates, CATALOG, PLAIN, now=NOW, bought={1, 2})) == [4]


def test_repeat_categories_are_learned_from_the_purchase_log():
    log = log_from_frame(
        pd.DataFrame(
            [
                # Coffee: 4 purchases in distinct sessions, 2 of them repeats -> share 0.5
                (1, 1, "purchase", "2025-01-01", "a"),
                (1, 1, "purchase", "2025-02-01", "b"),
                (2, 1, "purchase", "2025-01-03", "c"),
                (2, 1, "purchase", "2025-03-01", "d"),
                # Kettles: a double event in one session is one purchase; views never count
                (1, 2, "purchase", "2025-01-05", "e"),
                (1, 2, "purchase", "2025-01-05", "e"),
                (2, 4, "purchase", "2025-01-06", "f"),
                (3, 5, "purchase", "2025-01-07", "g"),
                (3, 5, "view", "2025-02-07", "h"),
                (3, 5, "view", "2025-02-08", "i"),
            ],
            columns=["user_id", "product_id", "event_type", "event_at", "session_id"],
        ).assign(event_at=lambda f: pd.to_datetime(f["event_at"]))
    )
    assert repeat_categories(log, CATALOG, threshold=0.3, min_purchases=2) == {"Coffee"}
    assert repeat_categories(log, CATALOG, threshold=0.3, min_purchases=5) == frozenset()
    assert repeat_categories(log, CATALOG, threshold=0.0, min_purchases=1) == {"Coffee", "Kettles"}
    pairs = purchased_pairs(log)
    assert sorted(map(tuple, pairs.to_numpy())) == [(1, 1), (1, 2), (2, 1), (2, 4), (3, 5)]


def test_category_cap_limits_products_per_leaf_even_if_the_list_gets_shorter():
    candidates = _candidates({2: 9.0, 4: 8.0, 5: 7.0, 6: 6.0, 8: 5.0})
    config = replace(PLAIN, k=5, max_per_category=1)
    recommendations = rerank(candidates, CATALOG, config, now=NOW)
    assert _ids(recommendations) == [2, 6]
    leaves = CATALOG.frame.loc[_ids(recommendations), "category_l2"]
    assert leaves.value_counts().max() <= 1


def _unit(rows: dict[int, list[float]], n_items: int = 10) -> np.ndarray:
    vectors = np.zeros((n_items + 1, 3), dtype=np.float32)
    for product_id, vector in rows.items():
        vectors[product_id] = np.asarray(vector) / np.linalg.norm(vector)
    return vectors


def test_mmr_with_lambda_one_is_score_order_and_lower_lambda_skips_near_duplicates():
    vectors = _unit({2: [1, 0, 0], 4: [0.99, 0.05, 0], 6: [0, 1, 0], 7: [0, 0, 1]})
    candidates = _candidates({2: 4.0, 4: 3.9, 6: 3.0, 7: 1.0})
    pure = rerank(candidates, CATALOG, PLAIN, now=NOW, vectors=vectors)
    assert _ids(pure) == [2, 4, 6, 7]
    diverse = rerank(candidates, CATALOG, replace(PLAIN, mmr_lambda=0.5), now=NOW, vectors=vectors)
    assert _ids(diverse) == [2, 6, 7, 4]

    rng = np.random.default_rng(0)
    scores = rng.standard_normal(300)
    random_vectors = rng.standard_normal((300, 16)).astype(np.float32)
    random_vectors /= np.linalg.norm(random_vectors, axis=1, keepdims=True)
    picked = diversify(scores, np.zeros(300, dtype=np.int64), 50, 1.0, None, random_vectors)
    assert picked.tolist() == np.argsort(-scores)[:50].tolist()


def test_new_arrival_takes_its_slot_only_when_a_recent_launch_is_a_candidate():
    config = replace(PLAIN, k=4, new_arrival_positions=(2,), new_arrival_days=14)
    with_new = _candidates({2: 9.0, 4: 8.0, 6: 7.0, 7: 6.0, 9: 0.5})
    recommendations = rerank(with_new, CATALOG, config, now=NOW)
    assert _ids(recommendations) == [2, 9, 4, 6]
    assert recommendations[1].sources[0] == "new_arrival"
    assert recommendations[1].text.startswith("New arrival")
    # Launched 92 days ago, or not launched yet: no slot, plain score order.
    old_or_future = _candidates({2: 9.0, 4: 8.0, 6: 7.0, 7: 6.0, 8: 0.5, 10: 0.4})
    assert _ids(rerank(old_or_future, CATALOG, config, now=NOW)) == [2, 4, 6, 7]
    # Already above its slot: nothing moves.
    on_top = _candidates({9: 9.5, 2: 9.0, 4: 8.0, 6: 7.0})
    placed = rerank(on_top, CATALOG, config, now=NOW)
    assert _ids(placed) == [9, 2, 4, 6] and "new_arrival" not in placed[0].sources


def test_every_item_has_a_reason_naming_the_generators_that_proposed_it():
    candidates = _candidates(
        {2: 9.0, 4: 8.0, 6: 7.0, 9: 6.0},
        trending_rank={2: 1, 4: 40},
        covisitation_rank={2: 3, 6: 1},
        content_rank={9: 2},
        session_features__last_product_id={9: 7},
    )
    recommendations = rerank(candidates, CATALOG, PLAIN, now=NOW)
    by_id = {r.product_id: r for r in recommendations}
    assert all(r.text for r in recommendations)
    assert [r.position for r in recommendations] == [1, 2, 3, 4]
    assert by_id[2].sources == ("trending", "covisitation")
    assert by_id[2].text == "Trending now; shopped together with items you viewed"
    assert by_id[4].text == "Trending now"
    assert by_id[6].sources == ("covisitation",)
    assert by_id[9].text == "Similar to the Acme kites you looked at"
    no_source = rerank(_candidates({2: 1.0}), CATALOG, PLAIN, now=NOW)
    assert no_source[0].sources == () and no_source[0].text == "Recommended for you"


def _ranking_rows(seed: int, n_queries: int = 40, per_query: int = 10) -> pd.DataFrame:
    """Synthetic ranking rows whose label is driven by ``in_top_category``."""
    rng = np.random.default_rng(seed)
    n = n_queries * per_query
    frame = pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(n_queries), per_query),
            "product_id": np.tile(np.arange(1, per_query + 1), n_queries),
            "query_id": np.repeat(np.arange(n_queries), per_query),
            "in_top_category": rng.integers(0, 2, n).astype(np.float32),
            "noise": rng.random(n).astype(np.float32),
            "als_rank": rng.integers(1, 100, n).astype(np.float32),
            "product_features__category_l1": rng.choice(["Home", "Toys", "Garden"], n),
        }
    )
    frame["label"] = (frame["in_top_category"] * 2 + (rng.random(n) < 0.1)).astype(np.int8)
    return frame


@pytest.mark.parametrize("approximate", [False, True])
def test_feature_reasons_come_from_the_rankers_contributions(approximate):
    params = RankerParams(n_estimators=40, max_depth=3, early_stopping_rounds=10, subsample=1.0)
    model = train_ranker(_ranking_rows(0), _ranking_rows(1), params)
    assert model.categories  # a categorical column goes through the contributions too
    user = _ranking_rows(2).query("user_id == 0").drop(columns=["label", "query_id"])
    user = user.assign(score=model.predict(user))
    values = contributions(model, user, approximate)
    assert np.ptp(model.predict(user) - values.sum(axis=1).to_numpy()) < 1e-4  # + bias only
    config = replace(PLAIN, approximate_contributions=approximate)
    recommendations = rerank(user, CATALOG, config, now=NOW, model=model)
    in_top = set(user.loc[user["in_top_category"] == 1, "product_id"])
    assert in_top  # the fixture has items of the user's top category
    for recommendation in recommendations:
        if recommendation.product_id in in_top:
            assert recommendation.top_features[0][0] == "in_top_category"
            assert recommendation.top_features[0][1] > 0
            assert "matches your favourite category" in recommendation.text
        assert recommendation.text


def test_batch_lists_match_one_user_reranking_and_are_minus_one_padded():
    config = RerankConfig(k=6, mmr_lambda=0.5, max_per_category=2, new_arrival_positions=(2,))
    vectors = _unit({i: [1.0, i / 10, (i % 3) / 5] for i in range(1, 11)})
    one = _candidates({1: 5.0, 2: 4.0, 4: 3.0, 5: 2.5, 6: 2.0, 7: 1.0, 9: 0.1})
    other = _candidates({2: 1.0, 6: 2.0})
    scored = pd.concat([one.assign(user_id=7), other.assign(user_id=8)], ignore_index=True)
    bought = pd.DataFrame({"user_id": [7, 8], "product_id": [2, 6]})
    lists = rerank_lists(
        scored.sample(frac=1.0, random_state=0),
        np.array([8, 5, 7]),
        CATALOG,
        config,
        now=NOW,
        vectors=vectors,
        bought=bought,
    )
    assert lists.shape == (3, 6) and lists.dtype == np.int64
    expected = _ids(rerank(one, CATALOG, config, now=NOW, vectors=vectors, bought={2}))
    assert lists[2, : len(expected)].tolist() == expected and 9 in expected
    assert lists[0].tolist() == [2, -1, -1, -1, -1, -1]
    assert (lists[1] == -1).all()


@pytest.mark.parametrize(
    ("field", "value"),
    [("k", 0), ("mmr_lambda", 1.5), ("max_per_category", 0), ("new_arrival_positions", (11,))],
)
def test_config_rejects_out_of_range_settings(field, value):
    with pytest.raises(ValueError, match=field):
        RerankConfig(**{field: value})
