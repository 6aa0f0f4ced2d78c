"""Negative samplers and candidate sets."""

from __future__ import annotations

import pytest
import torch

from rnnrec.losses.samplers import (
    PopularitySampler,
    UniformSampler,
    accidental_hits,
    input_hits,
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


def test_accidental_hits_target_and_padding() -> None:
    targets = torch.tensor([7, 9])
    per_row = torch.tensor([[5, 7, 0, 3], [1, 2, 3, 4]])
    assert accidental_hits(per_row, targets).tolist() == [
        [False, True, True, False],
        [False, False, False, False],
    ]
    shared = torch.tensor([9, 7, 0])
    assert accidental_hits(shared, targets).tolist() == [[False, True, True], [True, False, True]]


def test_input_hits_mask_only_the_items_seen_up_to_the_position() -> None:
    inputs = torch.tensor([[3, 5, 4, 0], [4, 4, 2, 1]])  # right-padded windows
    rows = torch.tensor([0, 0, 0, 1, 1])
    positions = torch.tensor([0, 1, 2, 0, 3])
    candidates = torch.tensor([5, 4, 9, 5, 1])  # 9 is in no input; 5 appears twice
    assert input_hits(candidates, inputs, rows, positions).tolist() == [
        [False, False, False, False, False],  # row 0 has seen [3]
        [True, False, False, True, False],  # [3, 5]
        [True, True, False, True, False],  # [3, 5, 4]
        [False, True, False, False, False],  # row 1 has seen [4]
        [False, True, False, False, True],  # [4, 4, 2, 1]
    ]
