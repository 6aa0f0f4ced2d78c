"""Evaluation by blocks of items (eval.item_block_size) against the whole catalogue at once.

Every model here gets weights on a coarse grid (integers, quarters), so each score is exact
in float32 whatever order a matrix product sums in: the blocked and the whole computation
must then agree exactly, ties included, and any difference is a bug in the blocking.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from rnnrec.losses.cross_entropy import FullSoftmaxCrossEntropy
from rnnrec.metrics.ranking import target_ranks
from rnnrec.models.bprmf import BPRMFRecommender
from rnnrec.models.encoders import RecurrentEncoder
from rnnrec.models.itemknn import ItemKNNRecommender
from rnnrec.models.popularity import PopularityRecommender
from rnnrec.models.ranking_module import RankingModule
from rnnrec.models.sequential import SequentialRecommender
from rnnrec.train import CONFIG_DIR

NUM_ITEMS = 20  # 21 columns with padding
NUM_USERS = 8
# 1, a size that does not divide the 21 columns, the exact width, one wider than that.
BLOCK_SIZES = [1, 4, 21, 100]


class QuarterGrid(nn.Module):
    """Rounds to multiples of 1/4: summaries on a grid keep every score exact."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 4) / 4


def _integers(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-2, 3, shape, generator=generator).float()


def sequential(block_size: int | None) -> RankingModule:
    torch.manual_seed(0)
    model = SequentialRecommender(
        num_items=NUM_ITEMS,
        encoder=functools.partial(RecurrentEncoder, cell="gru", hidden_size=8),
        loss=FullSoftmaxCrossEntropy(),
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        embedding_size=8,
        tie_weights=False,
        item_block_size=block_size,
    )
    model.scorer.activation = QuarterGrid()
    with torch.no_grad():
        model.scorer.weight.copy_(_integers((NUM_ITEMS + 1, 8), seed=1))
        model.scorer.bias.copy_(_integers((NUM_ITEMS + 1,), seed=2))
        model.scorer.weight[6] = model.scorer.weight[5]  # items 5 and 6 always tie
        model.scorer.bias[6] = model.scorer.bias[5]
    return model


def bprmf(block_size: int | None) -> RankingModule:
    model = BPRMFRecommender(
        num_items=NUM_ITEMS,
        num_users=NUM_USERS,
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        embedding_size=4,
        item_block_size=block_size,
    )
    with torch.no_grad():
        model.user_embedding.weight.copy_(_integers((NUM_USERS + 1, 4), seed=3))
        model.item_embedding.weight.copy_(_integers((NUM_ITEMS + 1, 4), seed=4))
        model.item_bias.weight.copy_(_integers((NUM_ITEMS + 1, 1), seed=5))
    return model


def popularity(block_size: int | None) -> RankingModule:
    counts = np.random.default_rng(6).integers(0, 4, NUM_ITEMS + 1)  # 4 values: many ties
    return PopularityRecommender(counts, item_block_size=block_size)


def itemknn(block_size: int | None) -> RankingModule:
    # Falls back to whole scoring: blocks are slices of one matrix, hence exact as well.
    matrix = (np.random.default_rng(7).random((NUM_USERS + 1, NUM_ITEMS + 1)) < 0.3).astype(
        np.float32
    )
    matrix[0] = matrix[:, 0] = 0
    return ItemKNNRecommender(sp.csr_matrix(matrix), neighbours=5, item_block_size=block_size)


MODELS: dict[str, Callable[[int | None], RankingModule]] = {
    "sequential": sequential,
    "bprmf": bprmf,
    "pop": popularity,
    "itemknn": itemknn,
}


def evaluation_batch() -> dict[str, torch.Tensor]:
    """Six examples: a target seen before (row 1), an idle row with target 0 (row 5)."""
    histories = [[1, 2, 3], [4, 5, 4], [7], [9, 10, 11, 12], [5, 6], [13, 14]]
    targets = [5, 4, 8, 6, 20, 0]
    lengths = [len(history) for history in histories]
    inputs = torch.zeros(len(histories), max(lengths), dtype=torch.long)  # (B, T)
    for row, history in enumerate(histories):
        inputs[row, : len(history)] = torch.tensor(history)
    return {
        "inputs": inputs,
        "lengths": torch.tensor(lengths),
        "targets": torch.tensor(targets),
        "users": torch.arange(1, len(histories) + 1),
        "seen_example": torch.tensor([b for b, h in enumerate(histories) for _ in h]),
        "seen_items": torch.tensor([item for history in histories for item in history]),
    }


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_blocked_ranks_equal_the_ranks_of_the_whole_catalogue(name, block_size):
    whole, blocked = MODELS[name](None).eval(), MODELS[name](block_size).eval()
    batch = evaluation_batch()
    with torch.no_grad():
        ranks = blocked.blocked_ranks(blocked.item_scores(batch), batch, [False, True])
        for exclude_seen in (False, True):
            scores = whole.ranking_scores(batch, exclude_seen)  # (B, N + 1)
            expected = target_ranks(scores, batch["targets"])
            assert torch.equal(ranks[exclude_seen], expected), exclude_seen
    # The case is not trivial: ties with the target, and a seen target excluded.
    target_scores = scores.gather(1, batch["targets"].unsqueeze(1))  # (B, 1)
    assert ((scores == target_scores).sum(dim=1) > 1)[:5].any()
    assert torch.isneginf(target_scores[1])


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_blocked_test_and_validation_metrics_equal_the_whole_ones(name, block_size):
    whole, blocked = MODELS[name](None).eval(), MODELS[name](block_size).eval()
    batch = evaluation_batch()
    with torch.no_grad():
        for model in (whole, blocked):
            model.test_step(batch, 0)
            model.validation_step(batch, 0)
    for part in ("test_metrics", "test_metrics_other_protocol", "val_metrics"):
        expected = getattr(whole, part).compute()
        assert getattr(blocked, part).compute() == expected, part  # exactly
        assert getattr(whole, part).count == 5  # the idle row is left out


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("block_size", BLOCK_SIZES)
@pytest.mark.parametrize("k", [3, 30])
def test_blocked_top_items_match_the_whole_ranking(name, block_size, k):
    whole, blocked = MODELS[name](None).eval(), MODELS[name](block_size).eval()
    batch = evaluation_batch()
    with torch.no_grad():
        expected, _ = whole.top_items(batch, k)
        values, items = blocked.top_items(batch, k)
        scores = whole.ranking_scores(batch)  # (B, N + 1)
    assert values.shape == (6, min(k, NUM_ITEMS + 1))
    assert torch.equal(values, expected)
    # Among ties either item may come first; each listed item must carry its listed score.
    assert torch.equal(scores.gather(1, items), values)
    ranked = torch.isfinite(values)
    seen = set(zip(batch["seen_example"].tolist(), batch["seen_items"].tolist(), strict=True))
    for row, item in ranked.nonzero().tolist():
        assert items[row, item] != 0 and (row, int(items[row, item])) not in seen


def test_bad_block_size_names_the_setting():
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="eval.item_block_size"):
            popularity(bad)  # type: ignore[arg-type]


def test_every_model_config_takes_the_block_size_from_eval():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for model in ("sequential", "sasrec", "pop", "itemknn", "bprmf"):
            cfg = compose("train", overrides=[f"model={model}", "eval.item_block_size=64"])
            assert cfg.model.item_block_size == 64
        assert compose("train").model.item_block_size is None
