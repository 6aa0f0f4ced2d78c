"""Popularity baseline: every user gets the items most often seen in training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rnnrec.models.item_scores import ItemScores, SharedScores
from rnnrec.models.ranking_module import RankingModule


class PopularityRecommender(RankingModule):
    """Scores each item by its number of training interactions; nothing to train.

    Args:
        item_counts: (N + 1,) training interaction count per item, index 0 for padding.
        item_block_size: see :class:`rnnrec.models.ranking_module.RankingModule`.
    """

    trainable = False
    scores_by_block = True
    counts: torch.Tensor

    def __init__(
        self,
        item_counts: np.ndarray,
        ks: Sequence[int] = (5, 10, 20),
        exclude_seen: bool = True,
        item_block_size: int | None = None,
    ) -> None:
        super().__init__(ks=ks, exclude_seen=exclude_seen, item_block_size=item_block_size)
        self.register_buffer("counts", torch.as_tensor(item_counts, dtype=torch.float32))

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.counts.expand(len(batch["targets"]), -1).clone()  # (B, N + 1)

    def item_scores(self, batch: dict[str, torch.Tensor]) -> ItemScores:
        return SharedScores(self.counts, len(batch["targets"]))
