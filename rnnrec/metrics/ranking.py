"""Full-ranking accuracy metrics: HR@K, NDCG@K and MRR@K over the whole catalogue."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

METRIC_NAMES = ("hr", "ndcg", "mrr")


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Return the 0-based rank of each target among all candidates.

    The rank counts every *other* item whose score is greater than or equal to the target's,
    so ties never favour the target and the result does not depend on the order of items in
    the catalogue. Items that must not be ranked (padding, seen items) are expected to carry
    a score of minus infinity.

    Args:
        scores: (B, N) scores for every item.
        targets: (B,) index of the target item in each row.
    """
    target_scores = scores.gather(1, targets.unsqueeze(1))  # (B, 1)
    # The target itself always satisfies >=, hence the -1.
    return (scores >= target_scores).sum(dim=1) - 1  # (B,)


def ranking_metrics(ranks: torch.Tensor, ks: Sequence[int]) -> dict[str, torch.Tensor]:
    """Per-example HR@K, NDCG@K and MRR@K from 0-based ranks, keyed like ``ndcg_10``."""
    ranks = ranks.to(torch.float64)
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        hit = ranks < k
        out[f"hr_{k}"] = hit.to(torch.float64)
        out[f"ndcg_{k}"] = torch.where(hit, 1.0 / torch.log2(ranks + 2.0), 0.0)
        out[f"mrr_{k}"] = torch.where(hit, 1.0 / (ranks + 1.0), 0.0)
    return out


class RankingMetrics(Metric):
    """Accumulates HR/NDCG/MRR at several K over batches, as sums plus a count.

    Sums reduce exactly across processes, so distributed evaluation gives the same numbers as
    one process provided every example is evaluated once.
    """

    full_state_update = False
    sums: torch.Tensor
    count: torch.Tensor

    def __init__(self, ks: Sequence[int] = (5, 10, 20)) -> None:
        super().__init__()
        if not ks or any(int(k) < 1 for k in ks):
            raise ValueError(f"eval.ks must be a non-empty list of positive integers, got {ks}")
        self.ks = tuple(sorted(int(k) for k in ks))
        self.keys = [f"{name}_{k}" for k in self.ks for name in METRIC_NAMES]
        self.add_state(
            "sums", default=torch.zeros(len(self.keys), dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, scores: torch.Tensor, targets: torch.Tensor) -> None:  # type: ignore[override]
        """Add a batch: (B, N) scores with excluded items at -inf, (B,) target indices."""
        per_example = ranking_metrics(target_ranks(scores, targets), self.ks)
        self.sums += torch.stack([per_example[key].sum() for key in self.keys])
        self.count += targets.numel()

    def compute(self) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """Mean of every metric over all examples seen since the last reset."""
        means = self.sums / self.count.clamp(min=1)
        return {key: means[i] for i, key in enumerate(self.keys)}
