"""Next-item loss over the target and a batch's sampled negatives (not the whole catalogue).

Turns the model's projected summaries into target scores (P,) and candidate scores (P, C),
masks accidental hits (the row's own target, and by config the items already in its input),
and applies one of the candidate losses of :mod:`rnnrec.losses.sampled`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from rnnrec.losses.candidates import BatchNegatives
from rnnrec.losses.sampled import GBCE, SampledSoftmax
from rnnrec.losses.samplers import accidental_hits, input_hits


class ScoresItems(Protocol):
    """What the objective needs from the output layer (:class:`rnnrec.models.output.ItemScorer`)."""

    def project(self, summary: torch.Tensor) -> torch.Tensor: ...

    def score_items(self, projected: torch.Tensor, items: torch.Tensor) -> torch.Tensor: ...

    def score_targets(self, projected: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Predictions:
    """The P predictions of a batch: where each sits in the (B, T) input, and its target.

    ``inputs`` is ``None`` when the batch carries no input history (session-parallel batches
    hold one event per slot); then input items cannot be masked.
    """

    summaries: torch.Tensor  # (P, H)
    targets: torch.Tensor  # (P,)
    inputs: torch.Tensor | None = None  # (B, T)
    rows: torch.Tensor | None = None  # (P,)
    positions: torch.Tensor | None = None  # (P,)


class SampledObjective(nn.Module):
    """Candidate loss of every prediction against one set of negatives drawn for the batch.

    Args:
        loss: a loss of :mod:`rnnrec.losses.sampled` (``SampledSoftmax``, ``BPR``, ...).
        negatives: draws the batch's candidates.
        num_items: catalogue size N (gBCE calibrates with it when its config leaves it unset).
    """

    def __init__(self, loss: nn.Module, negatives: BatchNegatives, num_items: int) -> None:
        super().__init__()
        if isinstance(loss, GBCE) and loss.num_items is None:
            loss.num_items = num_items
        self.loss = loss
        self.negatives = negatives
        self.logq = isinstance(loss, SampledSoftmax) and loss.logq_correction

    def forward(
        self, scorer: ScoresItems, predictions: Predictions
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean loss, and the share of candidate slots masked as accidental hits."""
        targets = predictions.targets
        candidates, candidate_log_q = self.negatives.draw(targets)  # (C,), (C,)
        mask = accidental_hits(candidates, targets)  # (P, C)
        if self.negatives.mask_input_items:
            if predictions.inputs is None:
                raise ValueError(
                    "sampler.mask_input_items needs each prediction's input sequence, which "
                    "session-parallel batches (one event per slot) do not carry; set it false"
                )
            assert predictions.rows is not None and predictions.positions is not None
            mask |= input_hits(
                candidates, predictions.inputs, predictions.rows, predictions.positions
            )
        projected = scorer.project(predictions.summaries)  # (P, E)
        target_scores = scorer.score_targets(projected, targets)  # (P,)
        candidate_scores = scorer.score_items(projected, candidates)  # (P, C)
        if self.logq:
            loss = self.loss(
                target_scores,
                candidate_scores,
                mask,
                candidate_log_q=candidate_log_q.expand_as(candidate_scores),
                target_log_q=self.negatives.target_log_q(targets),
            )
        else:
            loss = self.loss(target_scores, candidate_scores, mask)
        return loss, mask.float().mean()
