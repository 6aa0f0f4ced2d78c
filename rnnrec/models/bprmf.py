"""BPR-MF: matrix factorisation trained with Bayesian personalised ranking."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from rnnrec.models.item_scores import DotProductScores, ItemScores
from rnnrec.models.ranking_module import RankingModule


class BPRMFRecommender(RankingModule):
    """User and item vectors (plus an item bias); an item's score is ``user . item + bias``.

    Training pairs each positive (user, item) with one item drawn uniformly from 1..N and
    minimises ``-log sigmoid(score(pos) - score(neg))``. The L2 penalty is the optimizer's
    ``weight_decay``. Scoring needs ``users`` in the batch: the model knows nothing else.

    Args:
        num_items: catalogue size N; item ids run 1..N and 0 is padding.
        num_users: number of users U; user ids run 1..U (row 0 is unused).
        optimizer: builds the optimizer, given the parameters.
        scheduler: builds a learning-rate scheduler, given the optimizer, or ``None``.
        embedding_size: size d of user and item vectors.
        item_block_size: see :class:`rnnrec.models.ranking_module.RankingModule`.
    """

    scores_by_block = True

    def __init__(
        self,
        num_items: int,
        num_users: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        embedding_size: int = 64,
        ks: Sequence[int] = (5, 10, 20),
        exclude_seen: bool = True,
        item_block_size: int | None = None,
    ) -> None:
        super().__init__(ks=ks, exclude_seen=exclude_seen, item_block_size=item_block_size)
        self.num_items = num_items
        self.num_users = num_users
        self.user_embedding = nn.Embedding(num_users + 1, embedding_size, padding_idx=0)
        self.item_embedding = nn.Embedding(num_items + 1, embedding_size, padding_idx=0)
        self.item_bias = nn.Embedding(num_items + 1, 1, padding_idx=0)
        # Small vectors: scores start near 0, where the logistic loss has useful gradients.
        for table in (self.user_embedding, self.item_embedding):
            nn.init.normal_(table.weight, std=0.1)
        nn.init.zeros_(self.item_bias.weight)
        with torch.no_grad():
            self.user_embedding.weight[0].zero_()
            self.item_embedding.weight[0].zero_()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    def positive_pairs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Every real (user, item) of the batch's windows: (P,) users and (P,) items.

        Targets are the inputs shifted by one, so a window's items are its inputs plus its
        last target; taking all of both would count the middle items twice.
        """
        inputs, targets, lengths = batch["inputs"], batch["targets"], batch["lengths"]
        last = targets.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1))  # (B, 1)
        items = torch.cat([inputs, last], dim=1)  # (B, T + 1)
        users = batch["users"].unsqueeze(1).expand_as(items)  # (B, T + 1)
        real = items > 0
        return users[real], items[real]  # (P,), (P,)

    def sample_negatives(self, count: int) -> torch.Tensor:
        """(count,) items drawn uniformly from 1..N, never the padding item 0."""
        return torch.randint(1, self.num_items + 1, (count,), device=self.item_bias.weight.device)

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(P,) scores of given (user, item) pairs."""
        user_vectors = self.user_embedding(users)  # (P, d)
        item_vectors = self.item_embedding(items)  # (P, d)
        return (user_vectors * item_vectors).sum(-1) + self.item_bias(items).squeeze(-1)

    def bpr_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean ``-log sigmoid(pos - neg)`` over the batch's positives, one negative each."""
        users, positives = self.positive_pairs(batch)
        negatives = self.sample_negatives(len(positives))
        margin = self.pair_scores(users, positives) - self.pair_scores(users, negatives)  # (P,)
        # logsigmoid is stable for large negative margins, where log(sigmoid) underflows.
        return -F.logsigmoid(margin).mean()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.bpr_loss(batch)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        user_vectors = self._user_vectors(batch)  # (B, d)
        scores = user_vectors @ self.item_embedding.weight.T + self.item_bias.weight.T  # (B, N+1)
        scores[:, 0] = float("-inf")
        return scores

    def item_scores(self, batch: dict[str, torch.Tensor]) -> ItemScores:
        return DotProductScores(
            self._user_vectors(batch), self.item_embedding.weight, self.item_bias.weight[:, 0]
        )

    def _user_vectors(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if "users" not in batch:
            raise KeyError("BPR-MF scores known users only: the batch needs 'users'")
        return self.user_embedding(batch["users"])  # (B, d)

    def item_vectors(self) -> torch.Tensor:
        """(N + 1, d) item vectors, row 0 (padding) all zero; without the item bias."""
        return self.item_embedding.weight.detach()

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
