"""Negative samplers over items 1..N (0 is padding and is never drawn), and candidate sets.

Samplers draw from a CPU buffer refilled in bulk, one random call per ``buffer_size`` draws
rather than one per example; callers move the samples to their device.
"""

from __future__ import annotations

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
        self._log_probabilities = self.probabilities.log()  # (N + 1,), -inf where q = 0
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

    def log_probability(self, items: torch.Tensor) -> torch.Tensor:
        """log q(items), same shape as ``items``; -inf for padding and never-drawn items."""
        table = self._log_probabilities.to(device=items.device, dtype=torch.float32)
        return table[items]


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


def accidental_hits(
    candidates: torch.Tensor, targets: torch.Tensor, input_items: torch.Tensor | None = None
) -> torch.Tensor:
    """(P, C) bool mask of candidates that must not count as negatives.

    True where the candidate is padding (0), the row's target, or (with ``input_items`` (P, L))
    any item of the row's input sequence.
    """
    mask = (candidates == 0) | (candidates == targets.unsqueeze(1))  # (P, C)
    if input_items is not None:
        # Binary search in each sorted row: O(P C log L) memory-light, instead of a (P, C, L)
        # comparison that would not fit for large batches.
        history = input_items.sort(dim=1).values  # (P, L)
        queries = candidates.contiguous()  # (P, C)
        position = torch.searchsorted(history, queries).clamp(max=history.shape[1] - 1)
        mask |= history.gather(1, position) == queries
    return mask


def in_batch_negatives(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every target of the batch as a candidate for every row.

    Returns (P, P) candidates (row i, column j = targets[j]; a broadcast view, not a copy) and
    the (P, P) accidental-hit mask: own target (the diagonal and its duplicates) and padding.
    """
    candidates = targets.unsqueeze(0).expand(targets.shape[0], -1)  # (P, P)
    return candidates, accidental_hits(candidates, targets)


def mixed(
    targets: torch.Tensor,
    sampler: NegativeSampler,
    extra: int,
    input_items: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """In-batch negatives plus ``extra`` samples shared by the whole batch (GRU4Rec style).

    The extra items are drawn once per batch, so their scores cost one (P, extra) product.
    Returns (P, P + extra) candidates, in-batch columns first, and their accidental-hit mask
    (see ``accidental_hits``, with ``input_items`` (P, L) when given).
    """
    size = targets.shape[0]
    shared = sampler.sample(extra).to(targets.device)  # (extra,)
    candidates = torch.cat(
        [targets.unsqueeze(0).expand(size, -1), shared.unsqueeze(0).expand(size, -1)], dim=1
    )  # (P, P + extra)
    return candidates, accidental_hits(candidates, targets, input_items)
