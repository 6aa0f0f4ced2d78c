"""Output layer: a summary vector (..., H) -> a score for every item (..., N + 1)."""

from __future__ import annotations

import torch
from torch import nn

from rnnrec.models.item_scores import DotProductScores

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "none": nn.Identity,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
}


class ItemScorer(nn.Module):
    """Scores every item; column 0 (padding) is always minus infinity.

    With ``item_embedding`` given, scores are dot products with the input embedding table
    (tied weights), after a projection from H to the embedding size when the two differ.
    Otherwise the layer has its own (N + 1, H) weight matrix. ``activation`` (``none``,
    ``tanh``, ``relu`` or ``gelu``) is applied to the projected summary before scoring.
    With ``sparse_gradients``, scoring chosen items (sampled losses) gives the item table a
    sparse gradient over those items' rows.
    """

    def __init__(
        self,
        hidden_size: int,
        num_items: int,
        item_embedding: nn.Embedding | None = None,
        activation: str = "none",
        sparse_gradients: bool = False,
    ) -> None:
        super().__init__()
        self.sparse_gradients = sparse_gradients
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"model.output_activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        self.activation = ACTIVATIONS[activation]()
        self.item_embedding = item_embedding
        if item_embedding is None:
            self.projection: nn.Module = nn.Identity()
            self.weight = nn.Parameter(torch.empty(num_items + 1, hidden_size))
            nn.init.normal_(self.weight, std=hidden_size**-0.5)
        else:
            size = item_embedding.embedding_dim
            self.projection = nn.Identity() if size == hidden_size else nn.Linear(hidden_size, size)
        self.bias = nn.Parameter(torch.zeros(num_items + 1))

    @property
    def item_weight(self) -> torch.Tensor:
        """(N + 1, E or H) one output vector per item."""
        return self.weight if self.item_embedding is None else self.item_embedding.weight

    def forward(self, summary: torch.Tensor) -> torch.Tensor:
        projected = self.project(summary)  # (..., E or H)
        scores = projected @ self.item_weight.T + self.bias  # (..., N + 1)
        padding = torch.zeros_like(self.bias, dtype=torch.bool)
        padding[0] = True
        return scores.masked_fill(padding, float("-inf"))

    def item_scores(self, summary: torch.Tensor) -> DotProductScores:
        """(B, H) summaries -> the scores of :meth:`forward`, computed one block at a time.

        Padding is not set to minus infinity here: evaluation does that in each block.
        """
        return DotProductScores(self.project(summary), self.item_weight, self.bias)

    def project(self, summary: torch.Tensor) -> torch.Tensor:
        """(..., H) summaries -> (..., E or H) vectors that are dotted with item vectors."""
        return self.activation(self.projection(summary))

    def score_items(self, projected: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(P, E) projected summaries and (C,) items -> (P, C) scores of those items only."""
        return torch.addmm(self.bias[items], projected, self._rows(items).T)  # fused

    def score_targets(self, projected: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(P, E) projected summaries and (P,) targets -> (P,) each row's own target score."""
        return (projected * self._rows(targets)).sum(dim=1) + self.bias[targets]

    def _rows(self, items: torch.Tensor) -> torch.Tensor:
        """(..., E or H) the output vectors of ``items``."""
        if self.sparse_gradients:
            return nn.functional.embedding(items, self.item_weight, sparse=True)
        return self.item_weight[items]
