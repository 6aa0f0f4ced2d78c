"""Negative samplers over items 1..N (0 is padding and is never drawn), and candidate sets.

Samplers draw from a CPU buffer refilled in bulk, one random call per ``buffer_size`` draws
rather than one per example; callers move the samples to their device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


class NegativeSampler:
    """Draws items i in 1..N with probability q(i) from a bulk-refilled buffer.

    Args:
        probabilities: (N + 1,) q, with q(0) = 0 for padding; sums to 1.
        buffer_size: draws made per refill.
        generator: CPU random generator (None: torch's global one).
    """

    def __init__(
        self,
        probabilities: torch.Tensor,
        buffer_size: int = 1_000_000,
        generator: torch.Generator | None = None,
    ) -> None:
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be positive, got {buffer_size}")
        self.num_items = probabilities.numel() - 1
        self.buffer_size = buffer_size
        self.generator = generator
        self.probabilities = probabilities.to(torch.float64)  # (N + 1,)
        # (N + 1,), -inf where q = 0; float32 like the scores it corrects, moved to their
        # device on first use rather than copied there for every batch.
        self._log_probabilities = self.probabilities.log().float()
        self._buffer = torch.empty(0, dtype=torch.long)
        self._position = 0

    def _draw(self, count: int) -> torch.Tensor:
        """(count,) fresh items drawn from q."""
        return torch.multinomial(
            self.probabilities, count, replacement=True, generator=self.generator
        )

    def sample(self, count: int) -> torch.Tensor:
        """(count,) LongTensor of items in 1..N, drawn independently from q."""
        left = self._buffer[self._position :]
        if left.numel() >= count:
            self._position += count
            return left[:count]
        # One refill covers any count, even one larger than the buffer.
        self._buffer = self._draw(max(self.buffer_size, count - left.numel()))
        self._position = count - left.numel()
        return torch.cat([left, self._buffer[: self._position]])

    def random_state(self) -> dict[str, Any]:
        """The draws still in the buffer and the generator's state (for exact resumes)."""
        generator = None if self.generator is None else self.generator.get_state()
        return {"buffer": self._buffer[self._position :].clone(), "generator": generator}

    def load_random_state(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`random_state`: the same draws follow as would have."""
        self._buffer = state["buffer"].to(torch.long)
        self._position = 0
        if self.generator is not None and state["generator"] is not None:
            self.generator.set_state(state["generator"])

    def log_probability(self, items: torch.Tensor) -> torch.Tensor:
        """log q(items), same shape as ``items``; -inf for padding and never-drawn items."""
        if self._log_probabilities.device != items.device:
            self._log_probabilities = self._log_probabilities.to(items.device)
        return self._log_probabilities[items]


class UniformSampler(NegativeSampler):
    """q(i) = 1 / N for every item i in 1..N."""

    def __init__(
        self,
        num_items: int,
        buffer_size: int = 1_000_000,
        generator: torch.Generator | None = None,
    ) -> None:
        if num_items < 1:
            raise ValueError(f"num_items must be positive, got {num_items}")
        probabilities = torch.full((num_items + 1,), 1.0 / num_items, dtype=torch.float64)
        probabilities[0] = 0.0
        super().__init__(probabilities, buffer_size, generator)

    def _draw(self, count: int) -> torch.Tensor:
        # randint is cheaper than multinomial and draws the same distribution.
        return torch.randint(1, self.num_items + 1, (count,), generator=self.generator)


class PopularitySampler(NegativeSampler):
    """q(i) proportional to count(i)^alpha over items 1..N (count(0), padding, ignored).

    alpha = 0 is uniform over all items 1..N, zero-count ones included; alpha = 1 is
    proportional to the counts; for any alpha > 0, zero-count items get q = 0 (never drawn,
    log q = -inf).

    Args:
        item_counts: (N + 1,) non-negative interaction counts, index 0 = padding.
        alpha: popularity exponent, >= 0.
    """

    def __init__(
        self,
        item_counts: torch.Tensor,
        alpha: float = 1.0,
        buffer_size: int = 1_000_000,
        generator: torch.Generator | None = None,
    ) -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        counts = item_counts.to(torch.float64)
        if counts.dim() != 1 or counts.numel() < 2 or bool((counts < 0).any()):
            raise ValueError("item_counts must be a (N + 1,) tensor of non-negative counts")
        # Explicit for alpha = 0: pow(0, 0) is 1 in torch, but say so rather than rely on it.
        weights = torch.ones_like(counts) if alpha == 0 else counts.pow(alpha)  # (N + 1,)
        weights[0] = 0.0
        total = weights.sum()
        if total <= 0:
            raise ValueError("every item has count 0: nothing to sample")
        self.alpha = alpha
        super().__init__(weights / total, buffer_size, generator)


def accidental_hits(candidates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(P, C) bool mask of candidates that must not count as negatives of their row.

    True where the candidate is padding (0) or the row's own target. ``candidates`` is either
    (C,), one set shared by every row, or (P, C).
    """
    return (candidates == 0) | (candidates == targets.unsqueeze(1))  # (P, C)


def input_hits(
    candidates: torch.Tensor,
    inputs: torch.Tensor,
    rows: torch.Tensor,
    positions: torch.Tensor,
) -> torch.Tensor:
    """(P, C) bool: candidate c occurs in the input of prediction p, up to its position.

    Prediction p is made at position ``positions[p]`` of input row ``rows[p]``; its input is
    ``inputs[rows[p], : positions[p] + 1]``, so items the user meets only later in the window
    are not masked (they are not yet "seen" at p).

    Args:
        candidates: (C,) items shared by every prediction (duplicates allowed).
        inputs: (B, T) right-padded input items.
        rows: (P,) input row of each prediction.
        positions: (P,) position of each prediction within its row.
    """
    distinct, column = candidates.unique(return_inverse=True)  # (U,), (C,)
    # Where each input item sits in ``distinct``, by binary search: no (N,)-sized table.
    slot = torch.searchsorted(distinct, inputs).clamp(max=distinct.numel() - 1)  # (B, T)
    is_candidate = (distinct[slot] == inputs) & (inputs > 0)  # (B, T)
    width = inputs.shape[1]
    # first[b, u]: first position of distinct item u in row b; ``width`` where it is absent.
    first = torch.full(
        (inputs.shape[0], distinct.numel() + 1), width, dtype=torch.long, device=inputs.device
    )
    steps = torch.arange(width, device=inputs.device).expand_as(inputs)  # (B, T)
    first.scatter_reduce_(
        1, torch.where(is_candidate, slot, distinct.numel()), steps, reduce="amin"
    )
    return first[rows][:, column] <= positions.unsqueeze(1)  # (P, C)
