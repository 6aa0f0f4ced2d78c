"""The ``self`` attention: multi-head causal self-attention over the encoder states."""

from __future__ import annotations

import torch
from torch import nn

from rnnrec.models.attention.masking import (
    causal_key_mask,
    gather_positions,
    last_key_mask,
    last_positions,
)


class SelfAttention(nn.Module):
    """One Transformer-style block: LayerNorm(q + Dropout(MultiheadAttention(q, K, V))).

    Queries, keys and values are projections of the encoder states; each position attends to
    the real positions at or before it. The residual keeps the state itself available, so
    the block can start close to ``none`` and learn to mix in history.

    Args:
        hidden_size: encoder state size H; must be divisible by ``num_heads``.
        num_heads: attention heads, each of size H / num_heads.
        dropout: on the attention weights and on the attention output before the residual.
    """

    def __init__(self, hidden_size: int, num_heads: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(
                f"attention.num_heads ({num_heads}) must divide hidden_size ({hidden_size})"
            )
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.attention = nn.MultiheadAttention(
            hidden_size, num_heads, dropout=dropout, batch_first=True
        )
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size)

    def attend(
        self,
        states: torch.Tensor,
        queries: torch.Tensor,
        allowed: torch.Tensor,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Summaries (B, Q, H) for (B, Q, H) queries, and head-averaged weights (B, Q, T)."""
        # nn.MultiheadAttention wants True = blocked, one (Q, T) mask per example and head.
        blocked = (~allowed).repeat_interleave(self.num_heads, dim=0)  # (B * heads, Q, T)
        context, weights = self.attention(
            queries, states, states, attn_mask=blocked, need_weights=need_weights
        )  # (B, Q, H)
        return self.norm(queries + self.dropout(context)), weights

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Summaries at every position: (B, T, H) states and (B, T) mask -> (B, T, H)."""
        return self.attend(states, states, causal_key_mask(mask))[0]

    def last(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Summary at each sequence's last real position: (B, T, H) -> (B, H)."""
        queries = gather_positions(states, last_positions(lengths))  # (B, 1, H)
        allowed = last_key_mask(lengths, states.size(1))  # (B, 1, T)
        return self.attend(states, queries, allowed)[0].squeeze(1)

    def weights(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Head-averaged weights for inspection (call in eval mode), (B, T, T)."""
        weights = self.attend(states, states, causal_key_mask(mask), need_weights=True)[1]
        assert weights is not None  # need_weights=True always returns them
        return weights
