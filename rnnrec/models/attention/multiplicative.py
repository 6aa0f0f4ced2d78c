"""The ``multiplicative`` attention: Luong's "general" score q^T W k."""

from __future__ import annotations

import torch
from torch import nn

from rnnrec.models.attention.scored import ScoredAttention


class MultiplicativeAttention(ScoredAttention):
    """Score q^T W k with a learned (H, H) matrix W (Luong et al., 2015, "general").

    Args:
        hidden_size: encoder state size H.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__(hidden_size)
        self.key_projection = nn.Linear(hidden_size, hidden_size, bias=False)  # W

    def scores(
        self, queries: torch.Tensor, keys: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """(B, Q, H) queries and (B, T, H) keys -> (B, Q, T) bilinear scores."""
        # W k once per key (B, T, H), then dot products; cheaper than W^T q per query pair.
        return queries @ self.key_projection(keys).transpose(1, 2)  # (B, Q, T)
