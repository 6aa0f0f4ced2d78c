"""The ``dot`` attention: scaled dot product between the query state and earlier states."""

from __future__ import annotations

import torch

from rnnrec.models.attention.scored import ScoredAttention


class DotAttention(ScoredAttention):
    """Score q^T k / sqrt(H), with no parameters.

    Scaling by 1/sqrt(H) keeps the score variance near 1 whatever H, so the softmax does not
    saturate (and starve gradients) for large hidden sizes.

    Args:
        hidden_size: encoder state size H.
    """

    def scores(
        self, queries: torch.Tensor, keys: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """(B, Q, H) queries and (B, T, H) keys -> (B, Q, T) scaled dot products."""
        return queries @ keys.transpose(1, 2) * self.hidden_size**-0.5  # (B, Q, T)
