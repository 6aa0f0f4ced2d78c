"""The ``additive`` attention: Bahdanau's score, optionally with NARM's global + local summary."""

from __future__ import annotations

import torch
from torch import nn

from rnnrec.models.attention.scored import ScoredAttention


class AdditiveAttention(ScoredAttention):
    """Score v^T tanh(W1 q + W2 k) (Bahdanau et al., 2015; NARM, Li et al., 2017).

    Memory grows as B * Q * T * A, since the tanh is taken for every query-key pair.

    Args:
        hidden_size: encoder state size H.
        attention_size: size A of the tanh layer (``None``: H).
        concat_last: NARM's summary: the attended (global) context concatenated with the
            query state (local) and projected from 2H back to H, as the scorer takes H.
    """

    def __init__(
        self, hidden_size: int, attention_size: int | None = None, concat_last: bool = False
    ) -> None:
        super().__init__(hidden_size)
        attention_size = attention_size or hidden_size
        self.query_projection = nn.Linear(hidden_size, attention_size, bias=False)  # W1
        self.key_projection = nn.Linear(hidden_size, attention_size, bias=False)  # W2
        self.vector = nn.Linear(attention_size, 1, bias=False)  # v
        self.output = nn.Linear(2 * hidden_size, hidden_size) if concat_last else None

    def scores(
        self, queries: torch.Tensor, keys: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """(B, Q, H) queries and (B, T, H) keys -> (B, Q, T) additive scores."""
        query = self.query_projection(queries).unsqueeze(2)  # (B, Q, 1, A)
        key = self.key_projection(keys).unsqueeze(1)  # (B, 1, T, A)
        return self.vector(torch.tanh(query + key)).squeeze(-1)  # (B, Q, T)

    def combine(self, context: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Context alone, or NARM's [global; local] projected back to (B, Q, H)."""
        if self.output is None:
            return context
        return self.output(torch.cat([context, queries], dim=-1))  # (B, Q, H)
