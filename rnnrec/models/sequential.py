"""SequentialRecommender: item embedding -> encoder -> attention -> item scores."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnrec.models.attention.last_state import LastState
from rnnrec.models.heads import HeadInput, as_heads, build_heads
from rnnrec.models.output import ItemScorer
from rnnrec.models.ranking_module import RankingModule
from rnnrec.models.user_fusion import RecurrentState, UserFusion

log = logging.getLogger(__name__)

EMBEDDING_NAMES = ("random", "pretrained")


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
        output_activation: activation on the summary before scoring: none, tanh, relu, gelu.
        cf: user fusion (:mod:`rnnrec.models.user_fusion`), built or as a factory taking
            ``num_users``, ``hidden_size``, ``known_users`` and ``state_shape``; ``None``: no
            user vectors at all.
        num_users: U, needed with ``cf``; user ids run 1..U.
        known_users: (U + 1,) users with training windows; the others get the default vector.
        embedding: the input table's settings (config group ``embedding``): ``name`` is
            ``random`` or ``pretrained``, ``freeze`` keeps the table fixed; the pretraining
            settings are read by ``build_model``, which computes ``pretrained_item_vectors``.
        pretrained_item_vectors: (N + 1, E) start of the input table, or ``None`` (random).
        task: extra heads (config group ``task``): ``heads`` maps ``rating`` and/or ``genre``
            to their settings (``weight``, ...); each adds ``weight * its loss`` to the
            next-item loss. ``None`` or no heads: next-item loss only.
        genre_matrix: (N + 1, G) multi-hot item genres, needed by the genre head.
        rating_mean: mean training rating, the rating head's starting bias.
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
        output_activation: str = "none",
        ks: Sequence[int] = (5, 10, 20),
        exclude_seen: bool = True,
        cf: UserFusion | Callable[..., UserFusion | None] | None = None,
        num_users: int | None = None,
        known_users: np.ndarray | torch.Tensor | None = None,
        embedding: Mapping[str, Any] | None = None,
        pretrained_item_vectors: np.ndarray | torch.Tensor | None = None,
        task: Mapping[str, Any] | None = None,
        genre_matrix: np.ndarray | torch.Tensor | None = None,
        rating_mean: float | None = None,
    ) -> None:
        super().__init__(ks=ks, exclude_seen=exclude_seen)
        self.num_items = num_items
        self.item_embedding = nn.Embedding(num_items + 1, embedding_size, padding_idx=0)
        nn.init.normal_(self.item_embedding.weight, std=embedding_size**-0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        embedding = dict(embedding or {})
        name = embedding.get("name", "random")
        if name not in EMBEDDING_NAMES:
            raise ValueError(f"embedding.name must be one of {list(EMBEDDING_NAMES)}, got {name!r}")
        if pretrained_item_vectors is not None:
            self._load_item_vectors(pretrained_item_vectors)
        if embedding.get("freeze", False):
            # With tie_weights the output layer shares the table, so it stays fixed too.
            self.item_embedding.weight.requires_grad_(False)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.encoder = encoder(input_size=embedding_size)
        hidden_size = int(self.encoder.hidden_size)  # type: ignore[arg-type]
        self.attention: nn.Module = attention if attention is not None else LastState()
        self.hidden_dropout = nn.Dropout(hidden_dropout)
        self.scorer = ItemScorer(
            hidden_size,
            num_items,
            self.item_embedding if tie_weights else None,
            activation=output_activation,
        )
        self.loss: nn.Module = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.user_fusion = self._build_user_fusion(cf, num_users, hidden_size, known_users)
        self.heads = build_heads(
            (task or {}).get("heads"),
            hidden_size=hidden_size,
            embedding_size=embedding_size,
            genre_matrix=genre_matrix,
            rating_mean=rating_mean,
        )

    def _build_user_fusion(
        self,
        cf: UserFusion | Callable[..., UserFusion | None] | None,
        num_users: int | None,
        hidden_size: int,
        known_users: np.ndarray | torch.Tensor | None,
    ) -> UserFusion | None:
        if cf is None or isinstance(cf, UserFusion):
            return cf
        if num_users is None:
            raise ValueError("cf (user embeddings) needs num_users, the number of users")
        return cf(
            num_users=num_users,
            hidden_size=hidden_size,
            known_users=known_users,
            # Only recurrent encoders have an initial state to set (cf=init).
            state_shape=getattr(self.encoder, "state_shape", None),
        )

    def _load_item_vectors(self, vectors: np.ndarray | torch.Tensor) -> None:
        """Copy pretrained vectors into the input table, at the random start's scale.

        The random start has rows of norm about 1; pretrained rows may be far larger, which
        would saturate the encoder and, with tied weights, the output scores at the start.
        """
        weight = self.item_embedding.weight
        table = torch.as_tensor(np.asarray(vectors), dtype=weight.dtype)
        if table.shape != weight.shape:
            raise ValueError(
                f"pretrained item vectors have shape {tuple(table.shape)}, "
                f"the input table {tuple(weight.shape)} (num_items + 1, embedding_size)"
            )
        scale = table[1:].norm(dim=1).mean().clamp(min=1e-12)
        with torch.no_grad():
            weight.copy_(table / scale)
            weight[0].zero_()

    def _user_vectors(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """(B, D) user vectors with cf, else ``None``; a batch without users gets defaults."""
        if self.user_fusion is None:
            return None
        return self.user_fusion.user_vectors(batch.get("users"), batch["inputs"].size(0))

    def encode(
        self, inputs: torch.Tensor, initial_state: RecurrentState | None = None
    ) -> torch.Tensor:
        """(B, T) item ids -> (B, T, H) encoder states."""
        embedded = self.embedding_dropout(self.item_embedding(inputs))  # (B, T, E)
        # Non-recurrent encoders take no initial state; only cf=init ever passes one.
        states = (
            self.encoder(embedded)
            if initial_state is None
            else self.encoder(embedded, initial_state=initial_state)
        )
        return self.hidden_dropout(states)  # (B, T, H)

    def _states(self, inputs: torch.Tensor, users: torch.Tensor | None) -> torch.Tensor:
        """(B, T) items and (B, D) user vectors (or ``None``) -> (B, T, H) encoder states."""
        initial = None
        if self.user_fusion is not None and users is not None:
            initial = self.user_fusion.initial_state(users)
        return self.encode(inputs, initial)

    def _fuse(self, summary: torch.Tensor, users: torch.Tensor | None) -> torch.Tensor:
        if self.user_fusion is None or users is None:
            return summary
        return self.user_fusion.fuse(summary, users)  # (..., H)

    def training_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss of every task (``next_item`` and each head) and their weighted ``total``."""
        inputs, targets = batch["inputs"], batch["targets"]
        users = self._user_vectors(batch)  # (B, D) or None
        mask = inputs > 0  # (B, T)
        states = self._states(inputs, users)  # (B, T, H)
        summaries = self._fuse(self.attention(states, mask), users)[mask]  # (P, H)
        next_items = targets[mask]  # (P,)
        # Score only real positions: padding would waste a (T, N) block per example.
        losses = {"next_item": self.loss(self.scorer(summaries), next_items)}  # (P, N + 1)
        total = losses["next_item"]
        if len(self.heads):
            ratings = batch.get("ratings")
            x = HeadInput(
                summaries,
                next_items,
                self.item_embedding(next_items),  # (P, E)
                None if ratings is None else ratings[mask],  # (P,)
            )
            for name, head in as_heads(self.heads).items():
                losses[name] = head.loss(x)
                total = total + head.weight * losses[name]
        losses["total"] = total
        return losses

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses = self.training_losses(batch)
        for name, value in losses.items():
            key = "train/loss" if name == "total" else f"train/loss_{name}"
            self.log(key, value, on_step=False, on_epoch=True, prog_bar=name == "total")
        return losses["total"]

    def _evaluation_summary(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, H) summary after the last input position of each example."""
        users = self._user_vectors(batch)  # (B, D) or None
        states = self._states(batch["inputs"], users)  # (B, T, H)
        summary = self.attention.last(states, batch["lengths"])  # type: ignore[operator]
        return self._fuse(summary, users)  # (B, H)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.scorer(self._evaluation_summary(batch))  # (B, N + 1)

    def evaluation_scores(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        summary = self._evaluation_summary(batch)  # (B, H)
        if len(self.heads):
            targets = batch["targets"]  # (B,)
            x = HeadInput(
                summary, targets, self.item_embedding(targets), batch.get("target_ratings")
            )
            for head in as_heads(self.heads).values():
                head.update_metrics(x, stage)
        return self.scorer(summary)  # (B, N + 1)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._log_fallback_users("val")
        self._log_head_metrics("val")

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self._log_fallback_users("test")
        self._log_head_metrics("test")

    def _log_head_metrics(self, stage: str) -> None:
        for head in as_heads(self.heads).values():
            for key, value in head.compute_metrics(stage).items():
                self.log(f"{stage}/{key}", value.float())

    def _log_fallback_users(self, prefix: str) -> None:
        """How many evaluated users had no training window and used the default vector."""
        if self.user_fusion is None:
            return
        count = self.user_fusion.users.pop_fallback_count()
        log.info("%s: %d users without a training window used the default vector", prefix, count)
        self.log(f"{prefix}/cf_fallback_users", float(count))

    def configure_optimizers(self) -> Any:
        # A frozen input table (embedding.freeze) has no gradient: leave it out.
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
