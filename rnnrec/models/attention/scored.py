"""Base class for single-head attention over encoder states, given a score function."""

from __future__ import annotations

import torch
from torch import nn

from rnnrec.models.attention.masking import (
    causal_key_mask,
    gather_positions,
    last_key_mask,
    last_positions,
    masked_softmax,
    query_positions,
)


class ScoredAttention(nn.Module):
    """Causal attention whose values are the states; subclasses define ``scores``.

    The query at a position is the encoder state there; keys and values are the real states
    at that position or before it. ``forward`` runs every position as a query, ``last`` only
    each sequence's last real one, so evaluation costs O(T) rather than O(T^2).

    Args:
        hidden_size: encoder state size H; the summary has size H too.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size

    def scores(
        self, queries: torch.Tensor, keys: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """Raw scores: (B, Q, H) queries at (B, Q) positions and (B, T, H) keys -> (B, Q, T)."""
        raise NotImplementedError

    def combine(self, context: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Turns (B, Q, H) attended contexts and their queries into summaries (default: context)."""
        return context

    def attend(
        self, states: torch.Tensor, positions: torch.Tensor, allowed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summaries (B, Q, H) and weights (B, Q, T) for the queries at (B, Q) positions."""
        queries = gather_positions(states, positions)  # (B, Q, H)
        weights = masked_softmax(self.scores(queries, states, positions), allowed)  # (B, Q, T)
        context = weights @ states  # (B, Q, H)
        return self.combine(context, queries), weights

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Summaries at every position: (B, T, H) states and (B, T) mask -> (B, T, H)."""
        return self.attend(states, query_positions(states), causal_key_mask(mask))[0]

    def last(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Summary at each sequence's last real position: (B, T, H) -> (B, H)."""
        allowed = last_key_mask(lengths, states.size(1))  # (B, 1, T)
        return self.attend(states, last_positions(lengths), allowed)[0].squeeze(1)

    def weights(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention weights for inspection: row t holds position t's weights, (B, T, T)."""
        return self.attend(states, query_positions(states), causal_key_mask(mask))[1]
