"""Shared evaluation for every recommender: full ranking of the catalogue, HR/NDCG/MRR@K."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from rnnrec.metrics.ranking import RankingMetrics

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
    """

    def __init__(self, ks: Sequence[int] = (5, 10, 20), exclude_seen: bool = True) -> None:
        super().__init__()
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

    def evaluation_scores(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        """:meth:`score` during validation or test (``stage``); a subclass may update its own
        metrics here from the same forward pass."""
        return self.score(batch)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        scores = self.evaluation_scores(batch, "val").float()  # (B, N + 1)
        _update(self.val_metrics, self._mask(scores, batch, self.exclude_seen), batch["targets"])

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        scores = self.evaluation_scores(batch, "test").float()  # (B, N + 1)
        other = self._mask(scores.clone(), batch, not self.exclude_seen)
        targets = batch["targets"]
        _update(self.test_metrics, self._mask(scores, batch, self.exclude_seen), targets)
        _update(self.test_metrics_other_protocol, other, targets)

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


def _update(metrics: RankingMetrics, scores: torch.Tensor, targets: torch.Tensor) -> None:
    """Add the rows with a real target; target 0 (padding) marks a row with nothing to predict,
    such as an idle slot of a session-parallel batch."""
    real = targets > 0  # (B,)
    if bool(real.all()):
        metrics.update(scores, targets)
    else:
        metrics.update(scores[real], targets[real])
