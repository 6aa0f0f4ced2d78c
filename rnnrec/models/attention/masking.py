"""Masks, masked softmax and position gathering shared by the attention layers.

Conventions: sequences are right-padded, ``mask`` (B, T) is True on real items, and an
``allowed`` tensor (B, Q, T) is True where query q may attend to key position t.
"""

from __future__ import annotations

import torch


def causal_key_mask(mask: torch.Tensor) -> torch.Tensor:
    """Keys each position may attend to: (B, T) mask -> (B, T, T), real keys at or before it.

    A query row with no real key (only in an all-padding sequence) is allowed key 0, so a
    softmax never sees an all-masked row (which gives NaN, also in the backward pass).
    """
    length = mask.size(1)
    causal = torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()  # (T, T)
    allowed = causal & mask.unsqueeze(1)  # (B, T, T)
    return _never_empty(allowed)


def last_key_mask(lengths: torch.Tensor, length: int) -> torch.Tensor:
    """Keys of the query at each last real position: (B,) lengths -> (B, 1, T)."""
    positions = torch.arange(length, device=lengths.device)  # (T,)
    allowed = positions < lengths.view(-1, 1, 1)  # (B, 1, T)
    return _never_empty(allowed)


def _never_empty(allowed: torch.Tensor) -> torch.Tensor:
    """Allows key 0 in rows that allow nothing, which keeps them causal and free of NaN."""
    empty = ~allowed.any(dim=-1, keepdim=True)  # (B, Q, 1)
    first = torch.zeros_like(allowed)
    first[..., 0] = True
    return allowed | (empty & first)


def masked_softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim restricted to ``allowed``; exactly 0 elsewhere.

    ``allowed`` broadcasts against ``scores`` (..., Q, T).
    """
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1)


def gather_positions(states: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """States at given positions: (B, T, H) and (B, Q) indices -> (B, Q, H)."""
    index = positions.unsqueeze(-1).expand(-1, -1, states.size(-1))  # (B, Q, H)
    return states.gather(1, index)


def query_positions(states: torch.Tensor) -> torch.Tensor:
    """Every position as a query: (B, T, H) -> (B, T) indices 0..T-1."""
    batch, length = states.shape[:2]
    return torch.arange(length, device=states.device).expand(batch, length)  # (B, T)


def last_positions(lengths: torch.Tensor) -> torch.Tensor:
    """Each sequence's last real position as the only query: (B,) -> (B, 1)."""
    return (lengths - 1).clamp(min=0).unsqueeze(1)  # (B, 1)
