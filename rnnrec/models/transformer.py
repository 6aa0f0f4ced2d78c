"""SASRec-style causal transformer encoder: (B, T, E) embedded items -> (B, T, H) states."""

from __future__ import annotations

import torch
from torch import nn


class CausalTransformerEncoder(nn.Module):
    """Self-attention blocks over right-padded sequences, each position seeing only the past.

    Items are projected to H (when E differs), learned position embeddings are added, then
    ``num_blocks`` transformer blocks run with a causal mask. Real positions form a prefix of
    each row, so the causal mask alone keeps padding after a sequence's end from reaching its
    real positions, as with :class:`rnnrec.models.encoders.RecurrentEncoder`. A ``mask`` given
    to :meth:`forward` also hides padding keys (needed only for padding that is not a suffix).
    The feed-forward width is H, as in SASRec.

    Args:
        input_size: embedding size E fed in at each position.
        hidden_size: state size H.
        num_blocks: stacked transformer blocks.
        num_heads: attention heads; must divide H.
        dropout: dropout on the input (after adding positions) and inside each block.
        max_len: longest sequence, the size of the position table.
        norm_first: pre-LN blocks plus a final LayerNorm (stable without warm-up); ``False``
            gives the post-LN blocks of the original transformer.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 64,
        num_blocks: int = 2,
        num_heads: int = 1,
        dropout: float = 0.2,
        max_len: int = 200,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(
                f"encoder.hidden_size ({hidden_size}) must be a multiple of "
                f"encoder.num_heads ({num_heads})"
            )
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.max_len = max_len
        self.projection: nn.Module = (
            nn.Identity() if input_size == hidden_size else nn.Linear(input_size, hidden_size)
        )
        self.position_embedding = nn.Embedding(max_len, hidden_size)
        # Same scale as the item embeddings of SequentialRecommender, so neither dominates.
        nn.init.normal_(self.position_embedding.weight, std=hidden_size**-0.5)
        self.input_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                hidden_size,
                num_heads,
                dim_feedforward=hidden_size,
                dropout=dropout,
                batch_first=True,
                norm_first=norm_first,
            )
            for _ in range(num_blocks)
        )
        # Pre-LN blocks leave their residual stream unnormalised; post-LN ones end normalised.
        self.final_norm: nn.Module = nn.LayerNorm(hidden_size) if norm_first else nn.Identity()

    def forward(self, embedded: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, E) embedded items, optional (B, T) real-item mask -> (B, T, H) states."""
        length = embedded.size(1)
        if length > self.max_len:
            raise ValueError(
                f"sequence of {length} positions is longer than encoder.max_len ({self.max_len})"
            )
        positions = torch.arange(length, device=embedded.device)  # (T,)
        states = self.projection(embedded) + self.position_embedding(positions)  # (B, T, H)
        states = self.input_dropout(states)
        blocked = self._blocked_keys(length, mask, embedded.device)
        for block in self.blocks:
            states = block(states, src_mask=blocked)  # (B, T, H)
        return self.final_norm(states)  # (B, T, H)

    def _blocked_keys(
        self, length: int, mask: torch.Tensor | None, device: torch.device
    ) -> torch.Tensor:
        """True where a query may not attend: (T, T), or (B * heads, T, T) with a mask."""
        future = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)  # (T, T)
        if mask is None:
            return future
        allowed = ~future & mask.unsqueeze(1)  # (B, T, T)
        # A query with no real key at or before it would get an all -inf softmax row (NaN,
        # also in the backward pass): let it see key 0, which is still causal.
        empty = ~allowed.any(dim=-1)  # (B, T)
        allowed[..., 0] |= empty
        return (~allowed).repeat_interleave(self.num_heads, dim=0)  # (B * heads, T, T)
