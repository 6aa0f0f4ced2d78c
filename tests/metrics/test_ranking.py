import math

import pytest
import torch

from rnnrec.metrics.ranking import (
    RankingMetrics,
    blocked_target_ranks,
    blocked_topk,
    item_blocks,
    ranking_metrics,
    target_ranks,
)


def test_rank_counts_items_scoring_at_least_the_target():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3], [0.2, 0.2, 0.2, 0.2]])
    # Row 0: only item 1 beats item 2. Row 1: every other item ties with the target.
    assert target_ranks(scores, torch.tensor([2, 0])).tolist() == [1, 3]


def test_excluded_items_at_minus_infinity_do_not_count():
    scores = torch.tensor([[float("-inf"), 5.0, 1.0, float("-inf")]])
    assert target_ranks(scores, torch.tensor([2])).tolist() == [1]


def test_metric_values_by_hand():
    values = ranking_metrics(torch.tensor([0, 1, 4, 12]), ks=[5, 10])
    assert values["hr_5"].tolist() == [1, 1, 1, 0]
    assert values["mrr_5"].tolist() == pytest.approx([1, 1 / 2, 1 / 5, 0])
    expected_ndcg = [1, 1 / math.log2(3), 1 / math.log2(6), 0]
    assert values["ndcg_10"].tolist() == pytest.approx(expected_ndcg)
    assert values["hr_10"].tolist() == [1, 1, 1, 0]


def test_a_tie_with_the_target_costs_one_rank():
    # Two items tie at the top: the target is ranked second, whichever order they come in.
    for scores in ([[1.0, 1.0, 0.0]], [[1.0, 0.0, 1.0]]):
        metric = RankingMetrics([1])
        metric.update(torch.tensor(scores), torch.tensor([0]))
        assert metric.compute()["hr_1"].item() == 0.0


def _metrics(scores: torch.Tensor, targets: torch.Tensor, batch: int) -> dict[str, float]:
    metric = RankingMetrics([1, 5, 10])
    for begin in range(0, len(targets), batch):
        metric.update(scores[begin : begin + batch], targets[begin : begin + batch])
    return {key: value.item() for key, value in metric.compute().items()}


def test_independent_of_batch_size_and_catalogue_order():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(97, 50, generator=generator).round(decimals=1)  # rounding makes ties
    targets = torch.randint(0, 50, (97,), generator=generator)
    reference = _metrics(scores, targets, batch=97)
    assert _metrics(scores, targets, batch=8) == pytest.approx(reference, abs=1e-12)

    permutation = torch.randperm(50, generator=generator)
    inverse = torch.argsort(permutation)
    permuted = _metrics(scores[:, permutation], inverse[targets], batch=13)
    assert permuted == pytest.approx(reference, abs=1e-12)
    assert 0 < reference["hr_10"] < 1


def test_rejects_bad_cut_offs():
    with pytest.raises(ValueError, match="eval.ks"):
        RankingMetrics([0, 5])


# 1, a size that does not divide the 51 columns, one that does not divide them either but
# is larger than half, the exact width, and one wider than the catalogue.
BLOCK_SIZES = [1, 4, 30, 51, 1000]


def _tied_scores_with_exclusions() -> tuple[torch.Tensor, torch.Tensor]:
    """(40, 51) scores with many ties and -inf exclusions; (40,) targets, some excluded."""
    generator = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 6, (40, 51), generator=generator).float()  # 6 values: ties
    excluded = torch.rand(40, 51, generator=generator) < 0.2
    excluded[:, 0] = True  # padding
    scores[excluded] = float("-inf")
    targets = torch.randint(0, 51, (40,), generator=generator)
    targets[:3] = 0  # a target at padding: every other item counts
    return scores, targets


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_blocked_ranks_and_metrics_equal_the_whole_matrix(block_size):
    scores, targets = _tied_scores_with_exclusions()
    target_scores = scores.gather(1, targets.unsqueeze(1)).squeeze(1)  # (B,)
    assert torch.isneginf(target_scores).any() and torch.isfinite(target_scores).any()
    ranks = blocked_target_ranks(
        lambda start, end: scores[:, start:end], target_scores, targets, 51, block_size
    )
    assert torch.equal(ranks, target_ranks(scores, targets))

    whole, blocked = RankingMetrics([1, 5, 10]), RankingMetrics([1, 5, 10])
    whole.update(scores, targets)
    blocked.update_ranks(ranks)
    assert blocked.compute() == whole.compute()  # exactly, not approximately


def test_blocked_ranks_leave_out_the_target_by_index():
    # The target's score computed apart from its block, one ulp too high: it must still not
    # miss itself nor count itself, and the item tying it in the block still counts.
    scores = torch.tensor([[0.0, 1.0, 1.0, 0.5]])
    nudged = torch.nextafter(torch.tensor([1.0]), torch.tensor([2.0]))
    ranks = blocked_target_ranks(
        lambda start, end: scores[:, start:end], torch.tensor([1.0]), torch.tensor([1]), 4, 2
    )
    assert ranks.tolist() == [1]
    ranks = blocked_target_ranks(
        lambda start, end: scores[:, start:end], nudged, torch.tensor([1]), 4, 2
    )
    assert ranks.tolist() == [0]  # not -1: the target is never subtracted twice


def test_item_blocks_cover_every_column_once():
    assert list(item_blocks(10, 4)) == [(0, 4), (4, 8), (8, 10)]
    assert list(item_blocks(10, None)) == [(0, 10)]
    assert list(item_blocks(3, 100)) == [(0, 3)]
    with pytest.raises(ValueError, match="eval.item_block_size"):
        list(item_blocks(10, 0))


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
@pytest.mark.parametrize("k", [1, 5, 51, 80])
def test_blocked_topk_equals_topk_of_the_whole_matrix(block_size, k):
    generator = torch.Generator().manual_seed(2)
    scores = torch.randn(7, 51, generator=generator)  # distinct: the columns are unique too
    scores[:, 0] = float("-inf")
    values, indices = blocked_topk(lambda start, end: scores[:, start:end], 51, k, block_size)
    expected = scores.topk(min(k, 51), dim=1)
    assert torch.equal(values, expected.values)
    assert torch.equal(indices, expected.indices)


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_blocked_topk_with_ties_keeps_the_same_values(block_size):
    scores, _ = _tied_scores_with_exclusions()
    values, indices = blocked_topk(lambda start, end: scores[:, start:end], 51, 10, block_size)
    assert torch.equal(values, scores.topk(10, dim=1).values)
    assert torch.equal(scores.gather(1, indices), values)  # each column holds its score
    assert all(len(set(row)) == 10 for row in indices.tolist())  # no column twice
