"""Offline metrics on hand-computed examples, against brute force, and bootstrap CIs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shoprank.evaluation.metrics import (
    Relevance,
    bootstrap_ci,
    catalog_coverage,
    evaluate,
    hit_rate_at_k,
    intra_list_diversity,
    map_at_k,
    mrr,
    ndcg_at_k,
    novelty,
    oracle_share,
    popularity_bias,
    popularity_percentile,
    recall_at_k,
    revenue_at_k,
)

L3 = math.log2(3)

# Users 1..4 are evaluated; user 4 has no relevant items; user 99 is not evaluated.
FRAME = pd.DataFrame(
    {
        "user_id": [1, 1, 1, 2, 3, 3, 99],
        "item_id": [10, 20, 30, 10, 40, 50, 10],
        "grade": [3, 1, 2, 1, 3, 3, 3],
        "revenue": [50.0, 0.0, 0.0, 0.0, 100.0, 20.0, 999.0],
    }
)
USERS = np.array([1, 2, 3, 4])
RECS = np.array(
    [
        [20, 10, 99],  # grades 1, 3, 0
        [5, 10, -1],  # grade 1 at rank 2, padding
        [40, 40, 50],  # purchase, repeat (ignored), purchase
        [1, 2, 3],  # user without relevant items
    ]
)


@pytest.fixture()
def rel() -> Relevance:
    return Relevance.from_frame(FRAME, USERS)


def test_relevance_layout(rel: Relevance) -> None:
    assert rel.n_users == 4
    assert rel.indptr.tolist() == [0, 3, 4, 6, 6]
    assert rel.items.tolist() == [10, 20, 30, 10, 40, 50]
    assert rel.grades.tolist() == [3, 1, 2, 1, 3, 3]
    assert rel.revenue.tolist() == [50.0, 0.0, 0.0, 0.0, 100.0, 20.0]
    assert rel.n_relevant.tolist() == [3, 1, 2, 0]


def test_relevance_merges_duplicates_and_defaults_revenue() -> None:
    df = pd.DataFrame({"user_id": [7, 7, 7], "item_id": [3, 3, 1], "grade": [2, 3, 0]})
    rel = Relevance.from_frame(df, [5, 7])
    assert rel.indptr.tolist() == [0, 0, 1]  # grade 0 dropped, duplicates merged
    assert rel.grades.tolist() == [3] and rel.revenue.tolist() == [0.0]
    with pytest.raises(ValueError, match="unique"):
        Relevance.from_frame(df, [7, 7])


def test_ndcg_by_hand(rel: Relevance) -> None:
    expected = [
        (1 + 7 / L3) / (7 + 3 / L3 + 1 / 2),  # ideal uses all three grades
        (1 / L3) / 1.0,  # ideal capped by the single relevant item
        (7 + 7 / 2) / (7 + 7 / L3),  # the repeated 40 at rank 2 gains nothing
        0.0,  # no relevant items
    ]
    np.testing.assert_allclose(ndcg_at_k(RECS, rel, 3), expected)
    at2 = [(1 + 7 / L3) / (7 + 3 / L3), 1 / L3, 7 / (7 + 7 / L3), 0.0]
    np.testing.assert_allclose(ndcg_at_k(RECS, rel, 2), at2)
    # k beyond the list length uses the whole list, the ideal keeps growing with k.
    np.testing.assert_allclose(ndcg_at_k(RECS, rel, 5)[1], 1 / L3)


def test_purchase_ndcg_by_hand(rel: Relevance) -> None:
    expected = [1 / L3, 0.0, (1 + 1 / 2) / (1 + 1 / L3), 0.0]
    np.testing.assert_allclose(ndcg_at_k(RECS, rel, 3, gains="purchase"), expected)
    with pytest.raises(ValueError, match="gains"):
        ndcg_at_k(RECS, rel, 3, gains="clicks")  # type: ignore[arg-type]


def test_perfect_ranking_gets_one_and_reversed_less() -> None:
    rel = Relevance.from_frame(FRAME, [1])
    perfect = ndcg_at_k(np.array([[10, 30, 20]]), rel, 3)
    reversed_ = ndcg_at_k(np.array([[20, 30, 10]]), rel, 3)
    np.testing.assert_allclose(perfect, [1.0])
    assert reversed_[0] < 1.0


def test_recall_hit_rate_map_mrr_revenue_by_hand(rel: Relevance) -> None:
    np.testing.assert_allclose(recall_at_k(RECS, rel, 3), [2 / 3, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(recall_at_k(RECS, rel, 1), [1 / 3, 0.0, 0.5, 0.0])
    np.testing.assert_allclose(hit_rate_at_k(RECS, rel, 1), [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(hit_rate_at_k(RECS, rel, 2), [1.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(map_at_k(RECS, rel, 3), [2 / 3, 0.5, (1 + 2 / 3) / 2, 0.0])
    np.testing.assert_allclose(map_at_k(RECS, rel, 1), [1.0, 0.0, 1.0, 0.0])  # min(k, n_rel)
    np.testing.assert_allclose(mrr(RECS, rel), [1.0, 0.5, 1.0, 0.0])
    np.testing.assert_allclose(revenue_at_k(RECS, rel, 3), [50.0, 0.0, 120.0, 0.0])
    np.testing.assert_allclose(revenue_at_k(RECS, rel, 1), [0.0, 0.0, 100.0, 0.0])


def test_shape_mismatch_and_bad_input_raise(rel: Relevance) -> None:
    with pytest.raises(ValueError, match="rows"):
        ndcg_at_k(RECS[:2], rel, 3)
    with pytest.raises(ValueError, match="2-d integer"):
        recall_at_k(RECS.astype(float), rel, 3)
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(RECS, rel, 0)


def _brute_force(recs: np.ndarray, truth: list[dict[int, int]], k: int) -> dict[str, list]:
    out: dict[str, list] = {"ndcg": [], "recall": [], "ap": [], "rr": []}
    for row, grades in zip(recs, truth, strict=True):
        seen: set[int] = set()
        gains = []
        for item in row:
            gains.append(grades.get(int(item), 0) if item >= 0 and item not in seen else 0)
            seen.add(int(item))
        dcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(gains[:k]))
        ideal = sorted(grades.values(), reverse=True)[:k]
        idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
        out["ndcg"].append(dcg / idcg if idcg else 0.0)
        hits = [g > 0 for g in gains[:k]]
        out["recall"].append(sum(hits) / len(grades) if grades else 0.0)
        precisions = [sum(hits[: i + 1]) / (i + 1) for i, h in enumerate(hits) if h]
        out["ap"].append(sum(precisions) / min(k, len(grades)) if grades else 0.0)
        first = next((i for i, g in enumerate(gains) if g > 0), None)
        out["rr"].append(0.0 if first is None else 1 / (first + 1))
    return out


def test_vectorised_metrics_match_brute_force() -> None:
    rng = np.random.default_rng(1)
    n_users, n_items, k = 60, 30, 8
    df = pd.DataFrame(
        {
            "user_id": rng.integers(0, n_users, 300),
            "item_id": rng.integers(1, n_items + 1, 300),
            "grade": rng.integers(1, 4, 300),
        }
    )
    users = np.arange(n_users)
    rel = Relevance.from_frame(df, users)
    truth = [
        dict(zip(rel.items[a:b].tolist(), rel.grades[a:b].tolist(), strict=True))
        for a, b in zip(rel.indptr[:-1], rel.indptr[1:], strict=True)
    ]
    recs = rng.integers(-1, n_items + 1, (n_users, 12))  # repeats and padding included
    expected = _brute_force(recs, truth, k)
    np.testing.assert_allclose(ndcg_at_k(recs, rel, k), expected["ndcg"])
    np.testing.assert_allclose(recall_at_k(recs, rel, k), expected["recall"])
    np.testing.assert_allclose(map_at_k(recs, rel, k), expected["ap"])
    np.testing.assert_allclose(mrr(recs, rel), expected["rr"])


def test_catalog_coverage() -> None:
    recs = np.array([[1, 2, -1], [2, 3, -1]])
    assert catalog_coverage(recs, n_items=10, k=3) == pytest.approx(0.3)
    assert catalog_coverage(recs, n_items=10, k=1) == pytest.approx(0.2)


def test_category_diversity() -> None:
    cats = np.array([0, 7, 7, 8, 9])
    recs = np.array([[1, 2, 3], [1, -1, -1], [1, 3, 4], [2, 1, -1]])
    got = intra_list_diversity(recs, k=3, item_categories=cats)
    np.testing.assert_allclose(got, [2 / 3, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(intra_list_diversity(recs, k=2, item_categories=cats)[2], 1.0)


def test_vector_diversity() -> None:
    vecs = np.array([[0, 0], [1, 0], [0, 1], [2, 0], [-1, 0]], dtype=np.float32)
    recs = np.array([[1, 2, -1], [1, 3, -1], [1, 2, 4], [4, -1, -1]])
    np.testing.assert_allclose(intra_list_diversity(recs, vecs, 3), [1.0, 0.0, 4 / 3, 0.0])


def test_vector_diversity_matches_pairwise_and_categories_as_one_hot() -> None:
    rng = np.random.default_rng(2)
    vecs = rng.normal(size=(21, 5)).astype(np.float32)
    recs = rng.integers(1, 21, (7, 6))
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    brute = [
        np.mean([1 - unit[a] @ unit[b] for i, a in enumerate(row) for b in row[i + 1 :]])
        for row in recs
    ]
    np.testing.assert_allclose(intra_list_diversity(recs, vecs, 6), brute, rtol=1e-5)
    cats = rng.integers(0, 3, 21)
    one_hot = np.eye(3, dtype=np.float32)[cats]
    np.testing.assert_allclose(
        intra_list_diversity(recs, k=6, item_categories=cats),
        intra_list_diversity(recs, one_hot, 6),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="exactly one"):
        intra_list_diversity(recs, vecs, 6, item_categories=cats)


def test_novelty_by_hand() -> None:
    pop = np.array([0, 6, 2, 0])  # total 8; item 3 never seen -> counted once
    recs = np.array([[1, 2, -1], [3, -1, -1], [-1, -1, -1]])
    expected = [(-math.log2(6 / 8) + 2.0) / 2, 3.0, 0.0]
    np.testing.assert_allclose(novelty(recs, pop, 3), expected)


def test_popularity_bias_head_and_tail() -> None:
    rng = np.random.default_rng(3)
    pop = rng.permutation(np.arange(101)).astype(float)  # distinct counts, index 0 unused
    pop[0] = 0
    head, tail = int(np.argmax(pop)), int(np.argmin(pop[1:]) + 1)
    only_head = np.full((50, 10), head)
    np.testing.assert_allclose(popularity_bias(only_head, pop, 10), 1.0)
    np.testing.assert_allclose(popularity_bias(np.full((5, 10), tail), pop, 10), 0.0)
    assert catalog_coverage(only_head, n_items=100, k=10) == pytest.approx(0.01)
    pct = popularity_percentile(pop)
    assert pct[0] == 0.0 and pct.min() == 0.0 and pct.max() == 1.0
    assert novelty(only_head, pop, 10).mean() < novelty(np.full((5, 10), tail), pop, 10).mean()


def test_bootstrap_ci_contains_mean_and_narrows() -> None:
    rng = np.random.default_rng(4)
    small, large = rng.random(100), rng.random(10_000)
    mean, low, high = bootstrap_ci(small, n_boot=500)
    assert low < mean < high and mean == pytest.approx(small.mean())
    _, low_l, high_l = bootstrap_ci(large, n_boot=500)
    assert high_l - low_l < (high - low) / 5
    # The 95% width is close to the normal approximation 2 * 1.96 * sd / sqrt(n).
    assert high_l - low_l == pytest.approx(2 * 1.96 * large.std() / 100, rel=0.15)
    assert bootstrap_ci(small, n_boot=500, seed=1) == bootstrap_ci(small, n_boot=500, seed=1)


def test_bootstrap_ci_edge_cases() -> None:
    assert bootstrap_ci(np.array([0.5, 0.5, 0.5]), n_boot=50) == pytest.approx((0.5, 0.5, 0.5))
    assert bootstrap_ci(np.array([1.0, 3.0]), n_boot=0) == (2.0, 2.0, 2.0)
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([]), n_boot=10))
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(np.ones(3), alpha=1.5)


def test_evaluate_names_and_values(rel: Relevance) -> None:
    pop = np.arange(101, dtype=float)
    cats = np.arange(101) % 4
    out = evaluate(
        RECS, rel, ks=(2, 3), n_items=100, item_popularity=pop, item_categories=cats, n_boot=200
    )
    assert set(out) == {
        "ndcg@2", "recall@2", "recall@3", "map@2", "mrr", "hit_rate@2", "purchase_ndcg@2",
        "revenue@2", "coverage@2", "diversity@2", "novelty@2", "popularity_bias@2",
    }  # fmt: skip
    assert out["ndcg@2"]["value"] == pytest.approx(ndcg_at_k(RECS, rel, 2).mean())
    assert out["recall@3"]["value"] == pytest.approx(recall_at_k(RECS, rel, 3).mean())
    assert out["revenue@2"]["value"] == pytest.approx((50 + 100) / 4)
    assert out["mrr"]["value"] == pytest.approx(2.5 / 4)
    cov = out["coverage@2"]
    assert (
        cov["value"] == cov["ci_low"] == cov["ci_high"] == pytest.approx(6 / 100)
    )  # 20, 10, 5, 40, 1, 2
    for ci in out.values():
        assert ci["ci_low"] <= ci["value"] <= ci["ci_high"]


def test_evaluate_default_names_and_no_diversity_without_side_info() -> None:
    rng = np.random.default_rng(5)
    n_users, n_items = 40, 200
    df = pd.DataFrame(
        {
            "user_id": rng.integers(0, n_users, 200),
            "item_id": rng.integers(1, n_items + 1, 200),
            "grade": rng.integers(1, 4, 200),
            "revenue": rng.random(200),
        }
    )
    rel = Relevance.from_frame(df, np.arange(n_users))
    recs = rng.integers(1, n_items + 1, (n_users, 50))
    pop = rng.poisson(3, n_items + 1)
    out = evaluate(recs, rel, n_items=n_items, item_popularity=pop, n_boot=50)
    assert "diversity@10" not in out
    vecs = rng.normal(size=(n_items + 1, 4)).astype(np.float32)
    out = evaluate(recs, rel, n_items=n_items, item_popularity=pop, item_vectors=vecs, n_boot=0)
    assert list(out) == [
        "ndcg@10", "recall@10", "recall@50", "map@10", "mrr", "hit_rate@10",
        "purchase_ndcg@10", "revenue@10", "diversity@10", "novelty@10", "popularity_bias@10",
        "coverage@10",
    ]  # fmt: skip
    assert all(ci["ci_low"] == ci["value"] == ci["ci_high"] for ci in out.values())


def test_oracle_share() -> None:
    assert oracle_share(0.1, 0.4) == pytest.approx(0.25)
    assert math.isnan(oracle_share(0.1, 0.0))
