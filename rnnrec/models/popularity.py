"""Popularity baseline: every user gets the items most often seen in training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rnnrec.models.ranking_module import RankingModule


class PopularityRecommender(RankingModule):
    """Scores each item by its number of training interactions; nothing to train.

    Args:
        item_counts: (N + 1,) training interaction count per item, index 0 for padding.
    """

    trainable = False
    counts: torch.Tensor

    def __init__(
        self,
        item_counts: np.ndarray,
        ks: Sequence[int] = (5, 10, 20),
        exclude_seen: bool = True,
    ) -> None:
        super().__init__(ks=ks, exclude_seen=exclude_seen)
        self.register_buffer("counts", torch.as_tensor(item_counts, dtype=torch.float32))

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.counts.expand(len(batch["targets"]), -1).clone()  # (B, N + 1)
