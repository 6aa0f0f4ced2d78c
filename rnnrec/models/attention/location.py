"""The ``location`` attention: Luong's location-based weights over distances back."""

from __future__ import annotations

import torch
from torch import nn

from rnnrec.models.attention.scored import ScoredAttention


class LocationAttention(ScoredAttention):
    """Weights from the query alone over relative positions (Luong et al., 2015, "location").

    A Linear maps the query to one logit per distance back (0 = the query itself), and a
    learned recency bias per distance is added. Keys' contents are not scored, only their
    distance; distances of ``max_positions`` or more share the last bucket.

    Args:
        hidden_size: encoder state size H.
        max_positions: number of distance buckets; should be at least ``data.max_len``.
    """

    def __init__(self, hidden_size: int, max_positions: int = 200) -> None:
        super().__init__(hidden_size)
        self.max_positions = max_positions
        self.distance_logits = nn.Linear(hidden_size, max_positions)
        self.recency_bias = nn.Parameter(torch.zeros(max_positions))

    def scores(
        self, queries: torch.Tensor, keys: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """(B, Q, H) queries at (B, Q) positions, (B, T, H) keys -> (B, Q, T) scores."""
        key_positions = torch.arange(keys.size(1), device=keys.device)  # (T,)
        # Future keys get a negative distance; clamp to 0 as they are masked out anyway.
        distance = (positions.unsqueeze(-1) - key_positions).clamp(0, self.max_positions - 1)
        logits = self.distance_logits(queries)  # (B, Q, P)
        return logits.gather(-1, distance) + self.recency_bias[distance]  # (B, Q, T)
