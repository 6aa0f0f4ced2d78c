"""SequentialRecommender: item embedding -> encoder -> attention -> item scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from rnnrec.models.attention.last_state import LastState
from rnnrec.models.output import ItemScorer
from rnnrec.models.ranking_module import RankingModule


class SequentialRecommender(RankingModule):
    """Next-item recommender assembled from parts chosen by config.

    Training runs one forward pass per window and puts a loss at every position (targets are
    the inputs shifted by one); evaluation scores the catalogue from the last real position.

    Args:
        num_items: catalogue size N; item ids run 1..N and 0 is padding.
        encoder: builds the encoder, given ``input_size``; maps (B, T, E) to (B, T, H).
        attention: maps states and mask to summaries (``None``: last state).
        loss: maps (P, N + 1) scores and (P,) targets to a scalar.
        optimizer: builds the optimizer, given the parameters.
        scheduler: builds a learning-rate scheduler, given the optimizer, or ``None``.
        embedding_size: item embedding size E (independent of H).
        embedding_dropout: dropout on item embeddings.
        hidden_dropout: dropout on encoder states before scoring.
        tie_weights: score items with the input embedding table instead of a separate one.
    """

    def __init__(
        self,
        num_items: int,
        encoder: Callable[..., nn.Module],
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        attention: nn.Module | None = None,
        scheduler: Callable[..., Any] | None = None,
        embedding_size: int = 64,
        embedding_dropout: float = 0.0,
        hidden_dropout: float = 0.0,
        tie_weights: bool = False,
        ks: Sequence[int] = (5, 10, 20),
        exclude_seen: bool = True,
    ) -> None:
        super().__init__(ks=ks, exclude_seen=exclude_seen)
        self.num_items = num_items
        self.item_embedding = nn.Embedding(num_items + 1, embedding_size, padding_idx=0)
        nn.init.normal_(self.item_embedding.weight, std=embedding_size**-0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.encoder = encoder(input_size=embedding_size)
        hidden_size = self.encoder.hidden_size
        self.attention = attention if attention is not None else LastState()
        self.hidden_dropout = nn.Dropout(hidden_dropout)
        self.scorer = ItemScorer(
            hidden_size, num_items, self.item_embedding if tie_weights else None
        )
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, T) item ids -> (B, T, H) encoder states."""
        embedded = self.embedding_dropout(self.item_embedding(inputs))  # (B, T, E)
        return self.hidden_dropout(self.encoder(embedded))  # (B, T, H)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch["inputs"], batch["targets"]
        mask = inputs > 0  # (B, T)
        summaries = self.attention(self.encode(inputs), mask)  # (B, T, H)
        # Score only real positions: padding would waste a (T, N) block per example.
        loss = self.loss(self.scorer(summaries[mask]), targets[mask])  # (P, N + 1) scores
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        states = self.encode(batch["inputs"])  # (B, T, H)
        return self.scorer(self.attention.last(states, batch["lengths"]))  # (B, N + 1)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
