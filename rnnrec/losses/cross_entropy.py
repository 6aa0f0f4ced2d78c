"""Full softmax cross-entropy over the whole catalogue."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


class FullSoftmaxCrossEntropy(nn.Module):
    """Cross-entropy of each target against every item; stable through log-sum-exp.

    Args:
        label_smoothing: share of probability mass spread over the other items.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(P, N + 1) scores with padding at -inf and (P,) targets -> mean loss."""
        if self.label_smoothing:
            # Smoothing would put mass on the -inf padding column and give inf: drop it.
            return F.cross_entropy(scores[:, 1:], targets - 1, label_smoothing=self.label_smoothing)
        return F.cross_entropy(scores, targets)
