"""Full-ranking accuracy metrics: HR@K, NDCG@K and MRR@K over the whole catalogue.

The catalogue can also be scored in blocks of items (:func:`blocked_target_ranks`,
:func:`blocked_topk`), so that memory grows with the block instead of the catalogue. A
target's rank only counts the items that score at least as high as the target, so the sum of
per-block counts is the rank itself, whatever the block size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

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


def item_blocks(num_columns: int, block_size: int | None) -> Iterator[tuple[int, int]]:
    """``(start, end)`` column ranges of at most ``block_size`` columns covering ``num_columns``.

    ``block_size=None`` gives one range over every column.
    """
    if block_size is not None and block_size < 1:
        raise ValueError(
            f"eval.item_block_size must be a positive integer or null, got {block_size}"
        )
    step = num_columns if block_size is None else block_size
    for start in range(0, num_columns, max(step, 1)):
        yield start, min(start + step, num_columns)


def block_rank_counts(
    scores: torch.Tensor, target_scores: torch.Tensor, targets: torch.Tensor, start: int
) -> torch.Tensor:
    """Count, per row, the items of one block other than the target that score >= the target.

    Summed over blocks that cover the catalogue, this is :func:`target_ranks`. The target's
    own column is left out by index, not by comparing its score with itself, so the count is
    right even if the target score was computed apart from the block.

    Args:
        scores: (B, C) scores of items ``start .. start + C - 1``, excluded items at -inf.
        target_scores: (B,) score of each row's target, -inf when the target is excluded.
        targets: (B,) target item of each row (a column of the whole catalogue).
        start: the block's first item.
    """
    at_least = scores >= target_scores.unsqueeze(1)  # (B, C)
    counts = at_least.sum(dim=1)  # (B,)
    inside = (targets >= start) & (targets < start + scores.size(1))  # (B,)
    rows = inside.nonzero(as_tuple=True)[0]  # (B',)
    counts[rows] -= at_least[rows, targets[rows] - start].to(counts.dtype)
    return counts  # (B,)


# A function from an item range (start, end) to the (B, end - start) scores of those items.
BlockScores = Callable[[int, int], torch.Tensor]


def blocked_target_ranks(
    score_block: BlockScores,
    target_scores: torch.Tensor,
    targets: torch.Tensor,
    num_columns: int,
    block_size: int | None,
) -> torch.Tensor:
    """:func:`target_ranks` computed one block of items at a time.

    Args:
        score_block: (start, end) -> (B, end - start) scores, excluded items at -inf.
        target_scores: (B,) score of each row's target, -inf when the target is excluded.
        targets: (B,) column of each row's target.
        num_columns: catalogue width N (including any padding column).
        block_size: columns scored at once; ``None`` scores all of them in one block.

    Returns:
        (B,) 0-based ranks, equal to :func:`target_ranks` of the whole score matrix whenever
        each block holds the same scores as the corresponding columns of that matrix.
    """
    ranks = torch.zeros(len(targets), dtype=torch.long, device=targets.device)  # (B,)
    for start, end in item_blocks(num_columns, block_size):
        ranks += block_rank_counts(score_block(start, end), target_scores, targets, start)
    return ranks


def blocked_topk(
    score_block: BlockScores, num_columns: int, k: int, block_size: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best ``k`` scores of every row and their columns, scoring one block at a time.

    A running merge keeps each row's best ``k`` so far: the block's own top ``k`` joins them
    and the best ``k`` of that union stay. Values come out sorted in descending order and
    equal those of ``torch.topk`` on the whole matrix; among tied scores the columns kept
    may differ, as they may between two ``torch.topk`` calls.

    Returns:
        ``(values, indices)``, both (B, min(k, num_columns)).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    k = min(k, num_columns)
    best_values: torch.Tensor | None = None
    best_indices: torch.Tensor | None = None
    for start, end in item_blocks(num_columns, block_size):
        block = score_block(start, end)  # (B, C)
        values, indices = block.topk(min(k, end - start), dim=1)  # (B, k'), (B, k')
        indices = indices + start
        if best_values is not None and best_indices is not None:
            values = torch.cat([best_values, values], dim=1)  # (B, k + k')
            indices = torch.cat([best_indices, indices], dim=1)  # (B, k + k')
            values, position = values.topk(min(k, values.size(1)), dim=1)  # (B, k)
            indices = indices.gather(1, position)  # (B, k)
        best_values, best_indices = values, indices
    assert best_values is not None and best_indices is not None  # num_columns >= 1
    return best_values, best_indices


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

    def update(  # type: ignore[override]
        self,
        scores: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        *,
        ranks: torch.Tensor | None = None,
    ) -> None:
        """Add a batch: (B, N) scores with excluded items at -inf and (B,) target indices,
        or the (B,) 0-based target ranks alone (see :meth:`update_ranks`)."""
        if ranks is None:
            if scores is None or targets is None:
                raise TypeError("RankingMetrics.update needs scores and targets, or ranks")
            ranks = target_ranks(scores, targets)
        per_example = ranking_metrics(ranks, self.ks)
        self.sums += torch.stack([per_example[key].sum() for key in self.keys])
        self.count += ranks.numel()

    def update_ranks(self, ranks: torch.Tensor) -> None:
        """Add a batch of (B,) 0-based target ranks (e.g. from :func:`blocked_target_ranks`).

        Goes through :meth:`update`, which torchmetrics wraps to track that it was called.
        """
        self.update(ranks=ranks)

    def compute(self) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """Mean of every metric over all examples seen since the last reset."""
        means = self.sums / self.count.clamp(min=1)
        return {key: means[i] for i, key in enumerate(self.keys)}
