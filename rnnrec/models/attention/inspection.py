"""How far back a trained model's attention looks: its weights by distance from the query.

For each user's history before the held-out test item, the query at the last position (the
one that scores the next item) spreads weight over that position and the ones before it.
Lining these weights up by distance back (0: the last item itself) makes models with
different attention layers comparable, and shows whether they use more than recent items.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from rnnrec.data.sequences import padded
from rnnrec.models.sequential import SequentialRecommender


def histories_before_last(
    user_ptr: np.ndarray, items: np.ndarray, max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each user's last ``max_len`` items before their final one, right-padded.

    Args:
        user_ptr: (U + 2,) offsets: user ``u`` owns ``items[user_ptr[u]:user_ptr[u + 1]]``.
        items: (R,) item ids of every user's sequence, concatenated, oldest first.
        max_len: most items kept per history (the model's ``data.max_len``).

    Returns:
        (B, T) item ids and (B,) lengths, for the B users with at least two items.
    """
    ends = user_ptr[1:].astype(np.int64) - 1  # the final item is left out
    starts = np.maximum(user_ptr[:-1].astype(np.int64), ends - max_len)
    lengths = ends - starts
    keep = lengths > 0
    kept_starts, kept_lengths = torch.from_numpy(starts[keep]), torch.from_numpy(lengths[keep])
    inputs = padded(torch.as_tensor(items, dtype=torch.long), kept_starts, kept_lengths)
    return inputs, kept_lengths


@torch.no_grad()
def weights_by_distance(
    model: SequentialRecommender,
    inputs: torch.Tensor,
    lengths: torch.Tensor,
    batch_size: int = 512,
) -> np.ndarray:
    """Attention weights of each history's last position, by distance back.

    Args:
        model: a trained recommender in eval mode, without user vectors (``cf=none``).
        inputs: (B, T) right-padded item ids; lengths: (B,) real items per row.

    Returns:
        (B, T) weights: column d holds the weight on the item d steps before the last one
        (d = 0: the last item itself); NaN where a history is shorter than d + 1.
    """
    if model.user_fusion is not None:
        raise ValueError("weights_by_distance reads models without user vectors (cf=none)")
    # Every attention layer (and LastState, for attention=none) has ``weights``.
    attention_weights: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    attention_weights = model.attention.weights  # type: ignore[assignment]
    rows = []
    for begin in range(0, len(inputs), batch_size):
        batch = inputs[begin : begin + batch_size]
        last = lengths[begin : begin + batch_size] - 1  # (b,)
        states = model.encode(batch)  # (b, T, H)
        weights = attention_weights(states, batch > 0)  # (b, T, T)
        query = weights[torch.arange(len(batch)), last]  # (b, T): the last position's row
        keys = last.unsqueeze(1) - torch.arange(batch.size(1))  # (b, T): key d steps back
        by_distance = query.gather(1, keys.clamp(min=0)).double()
        rows.append(torch.where(keys >= 0, by_distance, torch.nan))
    return torch.cat(rows).numpy()
