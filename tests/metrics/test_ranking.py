import math

import pytest
import torch

from rnnrec.metrics.ranking import RankingMetrics, ranking_metrics, target_ranks


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
