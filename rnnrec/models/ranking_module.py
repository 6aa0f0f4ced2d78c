"""Shared evaluation for every recommender: full ranking of the catalogue, HR/NDCG/MRR@K."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch

from rnnrec.metrics.ranking import RankingMetrics, block_rank_counts, blocked_topk, item_blocks
from rnnrec.models.item_scores import FullScores, ItemScores, SeenItems

log = logging.getLogger(__name__)

# Checkpoint entry naming the data a model was trained on (see rnnrec.data.cache.fingerprint).
FINGERPRINT_KEY = "rnnrec_data_fingerprint"


class RankingModule(pl.LightningModule):
    """Base class: subclasses implement :meth:`score`; evaluation is the same for all.

    Args:
        ks: cut-offs K for HR@K, NDCG@K and MRR@K.
        exclude_seen: rank only items outside the example's input history. Seen items get a
            score of minus infinity (not zero, which could still outrank negative scores).
            Test metrics are also logged the other way, under ``test_seen_included/`` or
            ``test_seen_excluded/``, since published numbers use both protocols.
        item_block_size: rank the catalogue this many items at a time, so that evaluation
            holds (batch x block) scores instead of (batch x catalogue); ``None`` scores the
            whole catalogue at once. Ranks, hence metrics, are the same either way as long
            as a block holds the same scores as the whole matrix's columns (see
            :func:`rnnrec.metrics.ranking.blocked_target_ranks`). Models that cannot score a
            block alone (``scores_by_block`` false) still compute every score first.
    """

    # True where :meth:`item_scores` computes only the block asked for.
    scores_by_block: ClassVar[bool] = False

    def __init__(
        self,
        ks: Sequence[int] = (5, 10, 20),
        exclude_seen: bool = True,
        item_block_size: int | None = None,
    ) -> None:
        super().__init__()
        if item_block_size is not None and (
            isinstance(item_block_size, bool)
            or not isinstance(item_block_size, int)
            or item_block_size < 1
        ):
            raise ValueError(
                f"eval.item_block_size must be a positive integer or null, got {item_block_size!r}"
            )
        if item_block_size is not None and not self.scores_by_block:
            log.warning(
                "%s computes every item's score at once; eval.item_block_size=%d bounds only "
                "the memory of ranking them",
                type(self).__name__,
                item_block_size,
            )
        self.item_block_size = item_block_size
        self.exclude_seen = exclude_seen
        self.val_metrics = RankingMetrics(ks)
        self.test_metrics = RankingMetrics(ks)
        self.test_metrics_other_protocol = RankingMetrics(ks)
        # Set by whoever trains the model; stored in checkpoints to catch mismatched data.
        self.data_fingerprint: str | None = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.data_fingerprint is not None:
            checkpoint[FINGERPRINT_KEY] = self.data_fingerprint

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, N + 1) scores of every item for each evaluation example."""
        raise NotImplementedError

    def item_scores(self, batch: dict[str, torch.Tensor]) -> ItemScores:
        """The scores of :meth:`score`, served one block of items at a time.

        The default computes the whole (B, N + 1) matrix; models whose scores are a dot
        product with an item table override it to compute one block at a time.
        """
        return FullScores(self.score(batch))

    def ranking_scores(
        self, batch: dict[str, torch.Tensor], exclude_seen: bool | None = None
    ) -> torch.Tensor:
        """Scores with padding, and seen items when excluded, set to minus infinity."""
        scores = self.score(batch).float()  # (B, N + 1)
        return self._mask(
            scores, batch, self.exclude_seen if exclude_seen is None else exclude_seen
        )

    @staticmethod
    def _mask(
        scores: torch.Tensor, batch: dict[str, torch.Tensor], exclude_seen: bool
    ) -> torch.Tensor:
        scores[:, 0] = float("-inf")
        if exclude_seen:
            scores[batch["seen_example"], batch["seen_items"]] = float("-inf")
        return scores

    def top_items(
        self, batch: dict[str, torch.Tensor], k: int, exclude_seen: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` best items of each example, by blocks of ``item_block_size`` items.

        Returns:
            ``(scores, items)``, both (B, min(k, N + 1)), best first. Padding and (when
            excluded) seen items are never ranked above a rankable item; a row with fewer
            than ``k`` rankable items ends in scores of minus infinity, to be dropped.
        """
        exclude = self.exclude_seen if exclude_seen is None else exclude_seen
        if self.item_block_size is None:
            scores = self.ranking_scores(batch, exclude)  # (B, N + 1)
            values, items = scores.topk(min(k, scores.size(1)), dim=1)
            return values, items
        item_scores = self.item_scores(batch)
        seen = SeenItems.from_batch(batch)

        def block(start: int, end: int) -> torch.Tensor:
            scores = item_scores.block(start, end).float()  # (B, C)
            _exclude_padding(scores, start)
            if exclude:
                seen.exclude(scores, start)
            return scores

        return blocked_topk(block, item_scores.num_columns, k, self.item_block_size)

    def evaluation_scores(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        """:meth:`score` during validation or test (``stage``); a subclass may update its own
        metrics here from the same forward pass."""
        return self.score(batch)

    def evaluation_item_scores(self, batch: dict[str, torch.Tensor], stage: str) -> ItemScores:
        """:meth:`evaluation_scores` served by blocks (see :meth:`item_scores`)."""
        return FullScores(self.evaluation_scores(batch, stage))

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if self.item_block_size is not None:
            item_scores = self.evaluation_item_scores(batch, "val")
            ranks = self.blocked_ranks(item_scores, batch, [self.exclude_seen])
            _update_ranks(self.val_metrics, ranks[self.exclude_seen], batch["targets"])
            return
        scores = self.evaluation_scores(batch, "val").float()  # (B, N + 1)
        _update(self.val_metrics, self._mask(scores, batch, self.exclude_seen), batch["targets"])

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if self.item_block_size is not None:
            # Both protocols from one pass over the blocks.
            item_scores = self.evaluation_item_scores(batch, "test")
            ranks = self.blocked_ranks(item_scores, batch, [False, True])
            targets = batch["targets"]
            _update_ranks(self.test_metrics, ranks[self.exclude_seen], targets)
            _update_ranks(self.test_metrics_other_protocol, ranks[not self.exclude_seen], targets)
            return
        scores = self.evaluation_scores(batch, "test").float()  # (B, N + 1)
        other = self._mask(scores.clone(), batch, not self.exclude_seen)
        targets = batch["targets"]
        _update(self.test_metrics, self._mask(scores, batch, self.exclude_seen), targets)
        _update(self.test_metrics_other_protocol, other, targets)

    def blocked_ranks(
        self, scores: ItemScores, batch: dict[str, torch.Tensor], protocols: Iterable[bool]
    ) -> dict[bool, torch.Tensor]:
        """(B,) 0-based target ranks per protocol (``exclude_seen`` true or false), ranking
        ``item_block_size`` items at a time; equal to the ranks of the whole matrix.

        The target's score is taken once; each block adds the items that score at least as
        high. Padding, and seen items where excluded, are set to minus infinity in each
        block, and in the target's score when the target is one of them, exactly as
        :meth:`_mask` does to the whole matrix.
        """
        targets = batch["targets"]  # (B,)
        seen = SeenItems.from_batch(batch)
        raw = scores.of_items(targets).float()  # (B,)
        target_scores: dict[bool, torch.Tensor] = {}
        for exclude_seen in set(protocols):
            excluded = targets == 0
            if exclude_seen:
                excluded |= seen.contains(targets)
            target_scores[exclude_seen] = raw.masked_fill(excluded, float("-inf"))  # (B,)
        ranks = {
            key: torch.zeros(len(targets), dtype=torch.long, device=targets.device)  # (B,)
            for key in target_scores
        }
        for start, end in item_blocks(scores.num_columns, self.item_block_size):
            block = scores.block(start, end).float()  # (B, C)
            _exclude_padding(block, start)
            # Seen items kept first: excluding them afterwards edits the same block in place.
            for exclude_seen in sorted(target_scores):
                if exclude_seen:
                    seen.exclude(block, start)
                ranks[exclude_seen] += block_rank_counts(
                    block, target_scores[exclude_seen], targets, start
                )
        return ranks

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)
        other = "test_seen_included" if self.exclude_seen else "test_seen_excluded"
        self._log_metrics(other, self.test_metrics_other_protocol)

    def _log_metrics(self, prefix: str, metrics: RankingMetrics) -> None:
        values = {f"{prefix}/{key}": value.float() for key, value in metrics.compute().items()}
        # The metric state is already summed over processes, hence no sync_dist.
        self.log_dict(values, prog_bar=False)
        metrics.reset()
        if not self.trainer.sanity_checking:
            summary = ", ".join(
                f"{key} {float(value):.4f}" for key, value in values.items() if key.endswith("_10")
            )
            log.info("epoch %d %s", self.current_epoch, summary)


def _exclude_padding(scores: torch.Tensor, start: int) -> None:
    """Padding (item 0) is never ranked: set it to -inf in a (B, C) block starting at start."""
    if start == 0:
        scores[:, 0] = float("-inf")


def _update_ranks(metrics: RankingMetrics, ranks: torch.Tensor, targets: torch.Tensor) -> None:
    """Add the (B,) ranks of the rows with a real target (see :func:`_update`)."""
    real = targets > 0  # (B,)
    metrics.update_ranks(ranks if bool(real.all()) else ranks[real])


def _update(metrics: RankingMetrics, scores: torch.Tensor, targets: torch.Tensor) -> None:
    """Add the rows with a real target; target 0 (padding) marks a row with nothing to predict,
    such as an idle slot of a session-parallel batch."""
    real = targets > 0  # (B,)
    if bool(real.all()):
        metrics.update(scores, targets)
    else:
        metrics.update(scores[real], targets[real])
