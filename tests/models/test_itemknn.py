"""Item-kNN: the training matrix, hand-computed cosines, top-k pruning, scoring and config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hydra import compose, initialize_config_dir

from rnnrec.data.interactions import Interactions
from rnnrec.models.itemknn import ItemKNNRecommender, item_similarity, training_matrix
from rnnrec.train import CONFIG_DIR, build_model_from_facts

# Training users x items 1..4 (column 0 is padding):
#        i1 i2 i3 i4
#   u1    1  1  0  0
#   u2    1  1  1  0
#   u3    0  1  1  0
#   u4    0  0  1  1
# Users per item: c1 = 2, c2 = 3, c3 = 3, c4 = 1. Common users: c12 = 2, c13 = 1, c23 = 2,
# c34 = 1, c14 = c24 = 0. Cosines c_ij / sqrt(c_i c_j):
#   s12 = 2 / sqrt(6)   s13 = 1 / sqrt(6)   s23 = 2 / 3   s34 = 1 / sqrt(3)   s14 = s24 = 0
S12, S13, S23, S34 = 2 / math.sqrt(6), 1 / math.sqrt(6), 2 / 3, 1 / math.sqrt(3)
EXPECTED = np.array(
    [
        [0, 0, 0, 0, 0],
        [0, 0, S12, S13, 0],
        [0, S12, 0, S23, 0],
        [0, S13, S23, 0, S34],
        [0, 0, 0, S34, 0],
    ]
)


def interactions() -> tuple[Interactions, np.ndarray]:
    """The matrix above as a log; each user's last row is held out (not training)."""
    rows = {1: [1, 2, 4], 2: [1, 2, 3, 2, 4], 3: [2, 3, 1], 4: [4, 3, 3, 1]}
    user = np.concatenate([np.full(len(items), u) for u, items in rows.items()])
    item = np.concatenate(list(rows.values()))
    data = Interactions(
        user=user,
        item=item,
        timestamp=np.arange(len(user)),
        rating=None,
        user_ids=np.array(["a", "b", "c", "d"]),
        item_ids=np.array(["w", "x", "y", "z"]),
    )
    train_end = np.concatenate([[0], data.user_ptr[2:] - 1])  # all rows but each user's last
    return data, train_end


def matrix() -> sp.csr_matrix:
    data, train_end = interactions()
    return training_matrix(data, train_end)


def eval_batch(histories: list[list[int]]) -> dict[str, torch.Tensor]:
    example = [b for b, history in enumerate(histories) for _ in history]
    return {
        "targets": torch.ones(len(histories), dtype=torch.long),
        "seen_example": torch.tensor(example, dtype=torch.long),
        "seen_items": torch.tensor([i for history in histories for i in history]),
    }


def test_training_matrix_is_binary_and_leaves_out_held_out_rows():
    # u2's repeated item 2 counts once; held-out items (4, 4, 1, 1) are not in it.
    expected = np.zeros((5, 5))
    expected[1:, 1:] = [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    np.testing.assert_array_equal(matrix().toarray(), expected)


def test_cosines_match_the_hand_computed_ones():
    np.testing.assert_allclose(item_similarity(matrix(), neighbours=10).toarray(), EXPECTED)


def test_shrink_damps_the_denominator():
    similarity = item_similarity(matrix(), neighbours=10, shrink=1.0).toarray()
    assert similarity[1, 2] == pytest.approx(2 / (math.sqrt(6) + 1))
    assert similarity[3, 4] == pytest.approx(1 / (math.sqrt(3) + 1))


def test_top_k_keeps_only_the_nearest_neighbours():
    similarity = item_similarity(matrix(), neighbours=1)
    assert np.diff(similarity.indptr).max() == 1
    expected = np.zeros_like(EXPECTED)
    # Row i keeps its largest entry: 1 -> 2, 2 -> 1, 3 -> 2, 4 -> 3.
    for i, j in [(1, 2), (2, 1), (3, 2), (4, 3)]:
        expected[i, j] = EXPECTED[i, j]
    np.testing.assert_allclose(similarity.toarray(), expected)


def test_scores_sum_similarities_over_the_history_set():
    model = ItemKNNRecommender(matrix(), neighbours=10)
    # Item 2 twice counts once: the history is a set of items.
    scores = model.score(eval_batch([[1], [2, 4, 2]]))
    expected = torch.tensor(
        [
            [-math.inf, 0, S12, S13, 0],
            [-math.inf, S12, 0, S23 + S34, 0],
        ]
    )
    torch.testing.assert_close(scores, expected)
    ranked = model.ranking_scores(eval_batch([[1], [2, 4, 2]]))
    assert torch.isneginf(ranked[1, [0, 2, 4]]).all()


def test_pruned_model_scores_with_kept_neighbours_only():
    model = ItemKNNRecommender(matrix(), neighbours=1)
    scores = model.score(eval_batch([[3, 4]]))  # 3 keeps 2, 4 keeps 3
    torch.testing.assert_close(scores, torch.tensor([[-math.inf, 0, S23, S34, 0]]))


def test_state_dict_restores_a_model_built_without_data():
    trained = ItemKNNRecommender(matrix(), neighbours=2)
    restored = ItemKNNRecommender(num_items=4)
    restored.load_state_dict(trained.state_dict())
    batch = eval_batch([[1, 3], [4]])
    torch.testing.assert_close(restored.score(batch), trained.score(batch))


def test_config_builds_the_model_from_the_training_matrix():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["model=itemknn", "model.neighbours=2"])
    model = build_model_from_facts(
        cfg.model, {"num_items": lambda: 4, "train_matrix": lambda: matrix()}
    )
    assert isinstance(model, ItemKNNRecommender)
    assert not model.trainable
    assert len(model.similarity_values) <= 2 * 4
