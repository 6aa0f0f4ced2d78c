"""Negatives drawn per batch (config group ``sampler``) and their log-probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from rnnrec.losses.candidates import BatchNegatives

COUNTS = torch.tensor([0, 6, 3, 1, 0])  # items 1..4; item 4 never a training target


def test_uniform_draws_items_of_the_catalogue_with_log_q_of_one_over_n() -> None:
    negatives = BatchNegatives("uniform", COUNTS, num_negatives=500, seed=1)
    items, log_q = negatives.draw(torch.tensor([1, 2]))
    assert items.shape == log_q.shape == (500,)
    assert set(items.tolist()) == {1, 2, 3, 4}  # padding never, every item some time
    assert torch.allclose(log_q, torch.full((500,), -math.log(4)))


def test_popularity_log_q_follows_the_counts() -> None:
    negatives = BatchNegatives("popularity", COUNTS, num_negatives=2000, alpha=1.0, seed=1)
    items, log_q = negatives.draw(torch.tensor([1]))
    assert 4 not in items.tolist() and 0 not in items.tolist()
    assert torch.allclose(log_q, torch.log(COUNTS[items].double() / 10).float())
    share = (items == 1).double().mean().item()
    assert share == pytest.approx(0.6, abs=0.04)
    assert negatives.target_log_q(torch.tensor([2])).item() == pytest.approx(math.log(0.3))


def test_in_batch_uses_the_distinct_targets_and_their_frequency() -> None:
    negatives = BatchNegatives("in_batch", COUNTS)
    items, log_q = negatives.draw(torch.tensor([2, 1, 2, 3]))
    assert items.tolist() == [1, 2, 3]
    # Frequencies over items 1..4 with a half count for the never-seen item 4: 6, 3, 1, 0.5.
    expected = [math.log(c / 10.5) for c in (6, 3, 1)]
    assert log_q.tolist() == pytest.approx(expected, rel=1e-5)


def test_mixed_adds_shared_popularity_samples_to_the_batch_targets() -> None:
    negatives = BatchNegatives("mixed", COUNTS, num_negatives=7, alpha=0.0, seed=3)
    items, log_q = negatives.draw(torch.tensor([3, 3]))
    assert items.shape == (8,)
    assert items[0].item() == 3
    # alpha 0 is uniform over the four items.
    assert log_q[1:].tolist() == pytest.approx([-math.log(4)] * 7)


def test_same_seed_same_negatives() -> None:
    draws = [BatchNegatives("uniform", COUNTS, 9, seed=5).draw(torch.tensor([1]))[0]]
    draws.append(BatchNegatives("uniform", COUNTS, 9, seed=5).draw(torch.tensor([1]))[0])
    assert torch.equal(*draws)


def test_bad_settings_name_the_setting() -> None:
    with pytest.raises(ValueError, match="sampler.name"):
        BatchNegatives("hard", COUNTS)
    with pytest.raises(ValueError, match="sampler.num_negatives"):
        BatchNegatives("uniform", COUNTS, num_negatives=0)
