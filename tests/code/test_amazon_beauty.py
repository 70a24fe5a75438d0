"""Amazon Beauty adapter and the leave-one-out full-ranking protocol."""

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from shoprank.data.schema import validate_raw_dir
from shoprank.datasets.amazon_beauty import load_beauty, split_attributes, to_raw
from shoprank.evaluation.leave_one_out import (
    constant_score_fn,
    evaluate_scores,
    loo_split,
    mask_history,
    popularity_scores,
    target_ranks,
)
from shoprank.settings import load_settings

REAL = load_settings().beauty_dir  # shared/datasets/amazon_beauty beside the project
VALIDATION_START = datetime(2025, 11, 1, tzinfo=UTC)
TEST_START = datetime(2025, 12, 1, tzinfo=UTC)
END = datetime(2026, 1, 1, tzinfo=UTC)

SEQUENCES = {1: [1, 2, 3, 4, 5], 2: [2, 3, 6], 7: [4, 1], 4: [5, 6, 1, 2]}


@pytest.fixture
def beauty_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "beauty"
    folder.mkdir()
    lines = [" ".join(map(str, [user, *items])) for user, items in SEQUENCES.items()]
    (folder / "sequences.txt").write_text("\n".join(lines) + "\n")
    pd.DataFrame(
        {
            "item_id": [1, 2, 3, 4, 5, 6],
            "asin": ["A1", "A2", "A3", "A4", "A5", "A6"],
            "title": ["Lipstick", "Shampoo", None, "Mascara", "Cream", "Serum"],
            "n_attributes": [3, 2, 3, 3, 1, 3],
        }
    ).to_csv(folder / "items.csv", index=False)
    attributes = {"1": [10, 1, 2], "2": [1, 3], "3": [11, 1, 3], "4": [12, 4, 5], "5": [4],
                  "6": [10, 4, 5]}  # fmt: skip
    (folder / "item_attributes.json").write_text(json.dumps(attributes))
    return folder


def test_load_beauty_parses_the_fixture(beauty_dir):
    data = load_beauty(beauty_dir)
    assert (data.n_users, data.n_items, data.n_interactions) == (4, 6, 14)
    assert data.user_ids.tolist() == [1, 2, 7, 4]
    assert [s.tolist() for s in data.sequences()] == list(SEQUENCES.values())
    assert data.items.loc[data.items.item_id == 3, "title"].item() == ""


def test_brand_is_the_first_attribute_unless_it_is_a_category_root(beauty_dir):
    table = split_attributes(load_beauty(beauty_dir).attributes).set_index("item_id")
    assert table.loc[1].tolist() == ["brand_10", "cat_1", "cat_1/cat_2"]
    assert table.loc[2].tolist() == ["unknown", "cat_1", "cat_1/cat_3"]
    assert table.loc[5].tolist() == ["unknown", "cat_4", "cat_4/other"]
    assert table.loc[6].tolist() == ["brand_10", "cat_4", "cat_4/cat_5"]


def test_loo_split_holds_out_the_last_two_items(beauty_dir):
    split = loo_split(load_beauty(beauty_dir).sequences(), n_items=6)
    assert [split.train_sequence(r).tolist() for r in range(4)] == [[1, 2, 3], [2], [4, 1], [5, 6]]
    assert split.validation_targets.tolist() == [4, 3, 0, 1]
    assert split.test_targets.tolist() == [5, 6, 0, 2]
    with pytest.raises(ValueError, match="stage"):
        split.targets("train")


def test_history_is_masked_and_test_also_masks_the_validation_item():
    split = loo_split([np.array([1, 2, 3, 4]), np.array([5, 1, 2])], n_items=5)
    rows = np.array([0, 1])
    scores = np.ones((2, 6))
    mask_history(scores, split, rows, "validation")
    assert np.isinf(scores[0, [0, 1, 2]]).all() and np.isfinite(scores[0, [3, 4, 5]]).all()
    assert np.isinf(scores[1, [0, 5]]).all() and np.isfinite(scores[1, [1, 2, 3, 4]]).all()
    scores = np.ones((2, 6))
    mask_history(scores, split, rows, "test")
    assert np.isinf(scores[0, [0, 1, 2, 3]]).all() and np.isfinite(scores[0, [4, 5]]).all()
    assert np.isinf(scores[1, [0, 5, 1]]).all() and np.isfinite(scores[1, [2, 3, 4]]).all()


def test_rank_splits_ties_and_ndcg_matches_hand_computation():
    scores = np.array([[-np.inf, 5.0, 3.0, 3.0, 1.0], [-np.inf, 1.0, 2.0, 9.0, 0.0]])
    # Row 0: one item above, one tie -> 1 + 1 + 0.5. Row 1: item 3 is best -> 1.
    assert target_ranks(scores, np.array([2, 3])).tolist() == [2.5, 1.0]

    # User 0 trained on item 4 (the best score) and is tested on item 2 (validation item 3).
    split = loo_split([np.array([4, 3, 2]), np.array([1, 3, 4])], n_items=4)
    base = np.array([0.0, 1.0, 3.0, 5.0, 9.0])
    result = evaluate_scores(constant_score_fn(base), split, "test", ks=(1, 2), batch_size=1)
    # User 0: 4 and 3 masked, so 2 is first. User 1: 1 masked (train), 3 masked
    # (validation); target 4 is first.
    assert result["ranks"].tolist() == [1.0, 1.0]
    result = evaluate_scores(constant_score_fn(base), split, "validation", ks=(1, 2))
    # User 0: 4 masked, target 3 first. User 1: 1 masked, target 3 behind 4 -> rank 2.
    assert result["ranks"].tolist() == [1.0, 2.0]
    assert result["HR@1"] == pytest.approx(0.5)
    assert result["NDCG@2"] == pytest.approx((1.0 + 1.0 / math.log2(3.0)) / 2)
    assert result["n_users"] == 2


def test_popularity_counts_only_the_allowed_history():
    split = loo_split([np.array([1, 2, 3, 4]), np.array([1, 3, 2])], n_items=4)
    assert popularity_scores(split, "validation").tolist() == [0, 2, 1, 0, 0]
    assert popularity_scores(split, "test").tolist() == [0, 2, 1, 2, 0]


def test_to_raw_passes_the_contract_and_encodes_the_split_in_time(beauty_dir, tmp_path):
    data = load_beauty(beauty_dir)
    out = tmp_path / "out"
    summary = to_raw(data, out)
    validate_raw_dir(out / "raw")
    assert not list(out.glob(".amazon-beauty-*"))
    assert summary["rows"] == {"events": 14, "users": 4, "products": 6, "sessions": 14}
    events = pq.read_table(out / "raw" / "events.parquet").to_pandas()
    assert events.event_id.is_unique and (events.event_type == "purchase").all()
    assert (events.price == 1.0).all() and (events.quantity == 1).all()
    sessions = pq.read_table(out / "raw" / "sessions.parquet").to_pandas()
    assert set(sessions.session_id) == set(events.session_id) and sessions.session_id.is_unique
    by_time = events.sort_values(["user_id", "event_timestamp"])
    for user, items in SEQUENCES.items():
        assert by_time.loc[by_time.user_id == user, "product_id"].tolist() == items
    split = loo_split(data.sequences(), data.n_items)
    last_two = events.groupby("user_id").tail(2)
    test = events.loc[events.event_timestamp >= pd.Timestamp(TEST_START)]
    validation = events.loc[events.event_timestamp.between(
        pd.Timestamp(VALIDATION_START), pd.Timestamp(TEST_START), inclusive="left")]  # fmt: skip
    assert sorted(test.product_id) == sorted(split.test_targets[split.test_targets > 0])
    assert sorted(validation.product_id) == sorted(
        split.validation_targets[split.validation_targets > 0]
    )
    assert (
        events.loc[events.user_id == 7, "event_timestamp"] < pd.Timestamp(VALIDATION_START)
    ).all()
    assert (events.event_timestamp < pd.Timestamp(END)).all() and len(last_two) == 8


def test_to_raw_users_products_and_protocol_file(beauty_dir, tmp_path):
    data = load_beauty(beauty_dir)
    to_raw(data, tmp_path)
    to_raw(data, tmp_path)  # a rerun replaces the folders
    users = pq.read_table(tmp_path / "raw" / "users.parquet").to_pandas().set_index("user_id")
    events = pq.read_table(tmp_path / "raw" / "events.parquet").to_pandas()
    first = events.groupby("user_id").event_timestamp.min()
    assert (users.signup_at == first.reindex(users.index)).all()
    assert users.age_band.isna().all() and (users.region == "unknown").all()
    products = pq.read_table(tmp_path / "raw" / "products.parquet").to_pandas()
    assert products.loc[products.product_id == 3, "title"].item() == "Amazon item A3"
    assert (products.description == products.title).all()
    protocol = pq.read_table(tmp_path / "protocol" / "leave_one_out.parquet").to_pandas()
    assert protocol.test_product_id.tolist()[:2] == [5, 6] and pd.isna(protocol.test_product_id[2])


def test_to_raw_rejects_out_of_order_boundaries(beauty_dir, tmp_path):
    with pytest.raises(ValueError, match="start <"):
        to_raw(load_beauty(beauty_dir), tmp_path, test_start=VALIDATION_START)
    assert not (tmp_path / "raw").exists()


def test_real_file_counts_and_leak_free_popularity_band():
    data = load_beauty(REAL)
    assert (data.n_users, data.n_items, data.n_interactions) == (22363, 12101, 198502)
    assert data.lengths().min() >= 5
    split = loo_split(data.sequences(), data.n_items)
    result = evaluate_scores(constant_score_fn(popularity_scores(split, "test")), split, "test")
    assert result["n_users"] == 22363
    assert 0.012 <= result["HR@10"] <= 0.014
    assert 0.0055 <= result["NDCG@10"] <= 0.0061
