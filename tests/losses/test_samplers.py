"""Negative samplers and candidate sets."""

from __future__ import annotations

import pytest
import torch

from rnnrec.losses.samplers import (
    PopularitySampler,
    UniformSampler,
    accidental_hits,
    in_batch_negatives,
    mixed,
)

COUNTS = torch.tensor([50, 10, 0, 5, 20, 1])  # padding count 50 must be ignored; item 2 unseen
DRAWS = 200_000


def expected_distribution(alpha: float) -> list[float]:
    weights = [1.0 if alpha == 0 else float(c) ** alpha for c in COUNTS.tolist()[1:]]
    return [0.0] + [w / sum(weights) for w in weights]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_popularity_frequencies_follow_alpha(alpha: float) -> None:
    generator = torch.Generator().manual_seed(0)
    sampler = PopularitySampler(COUNTS, alpha, buffer_size=30_000, generator=generator)
    draws = sampler.sample(DRAWS)
    assert draws.shape == (DRAWS,) and draws.dtype == torch.long
    frequencies = torch.bincount(draws, minlength=6).double() / DRAWS
    expected = expected_distribution(alpha)
    # Binomial standard deviation is below 0.0012 here: 0.006 is five of them.
    assert frequencies.tolist() == pytest.approx(expected, abs=0.006)
    assert frequencies[0] == 0  # padding never drawn
    if alpha > 0:
        assert frequencies[2] == 0  # zero-count item never drawn


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_log_probability_matches_the_distribution(alpha: float) -> None:
    sampler = PopularitySampler(COUNTS, alpha, buffer_size=10)
    log_q = sampler.log_probability(torch.arange(6))
    assert log_q.dtype == torch.float32
    assert log_q.exp().tolist() == pytest.approx(expected_distribution(alpha), rel=1e-5)
    assert log_q[0] == float("-inf")
    assert log_q[1:].exp().sum().item() == pytest.approx(1.0, rel=1e-6)


def test_uniform_sampler() -> None:
    sampler = UniformSampler(4, buffer_size=50_000, generator=torch.Generator().manual_seed(1))
    draws = sampler.sample(DRAWS)
    frequencies = torch.bincount(draws, minlength=5).double() / DRAWS
    assert frequencies.tolist() == pytest.approx([0.0] + [0.25] * 4, abs=0.006)
    log_q = sampler.log_probability(torch.tensor([[0, 1], [2, 4]]))
    assert log_q.shape == (2, 2)
    assert log_q[0, 0] == float("-inf")
    assert log_q[1].exp().tolist() == pytest.approx([0.25, 0.25])


def test_buffer_refills_in_bulk() -> None:
    sampler = UniformSampler(3, buffer_size=10, generator=torch.Generator().manual_seed(2))
    refills: list[int] = []
    draw = sampler._draw

    def counted_draw(count: int) -> torch.Tensor:
        refills.append(count)
        return draw(count)

    sampler._draw = counted_draw  # type: ignore[method-assign]
    chunks = [sampler.sample(4) for _ in range(10)] + [sampler.sample(25), sampler.sample(0)]
    draws = torch.cat(chunks)
    assert draws.shape == (65,)
    assert ((draws >= 1) & (draws <= 3)).all()
    # 40 draws from buffers of 10: 4 refills; then 25 more in one bulk refill.
    assert refills == [10, 10, 10, 10, 25]


def test_same_seed_same_draws() -> None:
    first = PopularitySampler(COUNTS, 1.0, 7, torch.Generator().manual_seed(3)).sample(20)
    second = PopularitySampler(COUNTS, 1.0, 7, torch.Generator().manual_seed(3)).sample(20)
    assert torch.equal(first, second)


def test_invalid_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        PopularitySampler(torch.tensor([3, 0, 0]), 1.0)
    with pytest.raises(ValueError):
        PopularitySampler(COUNTS, -1.0)


def test_accidental_hits_target_inputs_and_padding() -> None:
    candidates = torch.tensor([[5, 7, 0, 3], [1, 2, 3, 4]])
    targets = torch.tensor([7, 9])
    assert accidental_hits(candidates, targets).tolist() == [
        [False, True, True, False],
        [False, False, False, False],
    ]
    inputs = torch.tensor([[3, 0, 0], [4, 2, 2]])  # left-padded histories, unsorted
    assert accidental_hits(candidates, targets, inputs).tolist() == [
        [False, True, True, True],
        [False, True, False, True],
    ]


def test_in_batch_negatives() -> None:
    targets = torch.tensor([3, 5, 3, 0])
    candidates, mask = in_batch_negatives(targets)
    assert candidates.tolist() == [[3, 5, 3, 0]] * 4
    assert mask.tolist() == [
        [True, False, True, True],  # own target twice, padding
        [False, True, False, True],
        [True, False, True, True],
        [False, False, False, True],
    ]


def test_mixed_shares_the_extra_samples_across_the_batch() -> None:
    sampler = UniformSampler(2, buffer_size=100, generator=torch.Generator().manual_seed(4))
    targets = torch.tensor([1, 2, 2])
    inputs = torch.tensor([[0, 2], [0, 0], [0, 1]])
    candidates, mask = mixed(targets, sampler, extra=5, input_items=inputs)
    assert candidates.shape == mask.shape == (3, 8)
    assert candidates[:, :3].tolist() == [[1, 2, 2]] * 3
    assert (candidates[:, 3:] == candidates[0, 3:]).all()  # drawn once for the whole batch
    expected = accidental_hits(candidates, targets, inputs)
    assert torch.equal(mask, expected)
    # Row 0 excludes item 1 (target) and item 2 (input): nothing is left; row 1 keeps item 1.
    assert mask[0].all()
    assert torch.equal(~mask[1], candidates[1] == 1)
