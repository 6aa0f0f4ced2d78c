"""Extra task heads on the shared encoder (config group ``task``).

Each head turns summaries into its own loss; the model adds ``weight * loss`` of every head
to the next-item loss. Heads see the same :class:`HeadInput` in training (every real
position) and evaluation (the target of each example), and may keep evaluation metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torchmetrics import MeanSquaredError

STAGES = ("val", "test")


@dataclass(frozen=True)
class HeadInput:
    """What every head sees at P positions, each followed by a known next item."""

    summaries: torch.Tensor  # (P, H) summary at the position
    items: torch.Tensor  # (P,) the next item
    item_vectors: torch.Tensor  # (P, E) the next item's input embedding
    ratings: torch.Tensor | None = None  # (P,) the rating it got, when the data has ratings


class TaskHead(nn.Module):
    """Interface of a head: a loss, its weight, and optional evaluation metrics per stage."""

    name: ClassVar[str]

    def __init__(self, weight: float) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"task.heads.{self.name}.weight must be >= 0, got {weight}")
        self.weight = float(weight)

    def loss(self, x: HeadInput) -> torch.Tensor:
        """Scalar loss, averaged over positions."""
        raise NotImplementedError

    def update_metrics(self, x: HeadInput, stage: str) -> None:
        """Accumulate evaluation metrics of ``stage`` (val or test); none by default."""

    def compute_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        """Metrics of ``stage`` keyed without prefix (``rating_rmse``), then reset them."""
        return {}


class RatingHead(TaskHead):
    """Rating the user gives the next item: MLP on [summary; item vector], MSE loss.

    Args:
        hidden_size: summary size H.
        embedding_size: item embedding size E.
        weight: loss weight.
        mlp_size: width of the MLP's hidden layer.
        rating_mean: start of the output bias; the mean training rating spares the optimiser
            a long walk from 0 to the rating scale.
    """

    name = "rating"

    def __init__(
        self,
        hidden_size: int,
        embedding_size: int,
        weight: float = 0.1,
        mlp_size: int = 32,
        rating_mean: float = 0.0,
    ) -> None:
        super().__init__(weight)
        output = nn.Linear(mlp_size, 1)
        nn.init.constant_(output.bias, rating_mean)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size + embedding_size, mlp_size), nn.ReLU(), output
        )
        self.rmse = nn.ModuleDict({s: MeanSquaredError(squared=False) for s in STAGES})

    def predict(self, summaries: torch.Tensor, item_vectors: torch.Tensor) -> torch.Tensor:
        """(P, H) summaries and (P, E) item vectors -> (P,) predicted ratings."""
        return self.mlp(torch.cat([summaries, item_vectors], dim=-1)).squeeze(-1)

    def loss(self, x: HeadInput) -> torch.Tensor:
        return F.mse_loss(self.predict(x.summaries, x.item_vectors), self._ratings(x))

    def update_metrics(self, x: HeadInput, stage: str) -> None:
        self._rmse(stage).update(self.predict(x.summaries, x.item_vectors), self._ratings(x))

    def compute_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        metric = self._rmse(stage)
        if not metric.update_called:  # e.g. limit_val_batches=0: nothing to report
            return {}
        value = metric.compute()
        metric.reset()
        return {"rating_rmse": value}

    def _rmse(self, stage: str) -> MeanSquaredError:
        return cast(MeanSquaredError, self.rmse[stage])

    def _ratings(self, x: HeadInput) -> torch.Tensor:
        if x.ratings is None:
            raise ValueError("task.rating needs ratings, but the batch has none")
        return x.ratings.float()


class GenreHead(TaskHead):
    """Genres of the next item: a linear layer on the summary, multi-label BCE with logits.

    Positions whose next item has no genre are left out of the loss: the item file may lack
    the item, so all zeros means "unknown" rather than "none of them".

    Args:
        hidden_size: summary size H.
        genre_matrix: (N + 1, G) multi-hot genres of every item.
        weight: loss weight.
    """

    name = "genre"
    genres: torch.Tensor

    def __init__(
        self, hidden_size: int, genre_matrix: np.ndarray | torch.Tensor, weight: float = 0.1
    ) -> None:
        super().__init__(weight)
        matrix = torch.as_tensor(np.asarray(genre_matrix), dtype=torch.float32)
        if matrix.ndim != 2 or matrix.size(1) == 0:
            shape = tuple(matrix.shape)
            raise ValueError(f"task.genre needs a (N + 1, G) genre matrix, got shape {shape}")
        # Data, not a learned weight: rebuilt from the item file, so kept out of checkpoints.
        self.register_buffer("genres", matrix, persistent=False)  # (N + 1, G)
        self.classifier = nn.Linear(hidden_size, matrix.size(1))

    def loss(self, x: HeadInput) -> torch.Tensor:
        targets = self.genres[x.items]  # (P, G)
        known = targets.any(dim=1)  # (P,)
        losses = F.binary_cross_entropy_with_logits(
            self.classifier(x.summaries), targets, reduction="none"
        ).mean(dim=1)  # (P,)
        return (losses * known).sum() / known.sum().clamp(min=1)


HEADS: dict[str, type[TaskHead]] = {"rating": RatingHead, "genre": GenreHead}


def as_heads(heads: nn.ModuleDict) -> dict[str, TaskHead]:
    """The heads of a :func:`build_heads` result, typed."""
    return {name: cast(TaskHead, head) for name, head in heads.items()}


def build_heads(
    heads: Mapping[str, Mapping[str, Any] | None] | None,
    *,
    hidden_size: int,
    embedding_size: int,
    genre_matrix: np.ndarray | torch.Tensor | None = None,
    rating_mean: float | None = None,
) -> nn.ModuleDict:
    """Build the heads named in ``task.heads``, each from its settings (``weight``, ...)."""
    built: dict[str, TaskHead] = {}
    for name, settings in (heads or {}).items():
        options = dict(settings or {})
        if name == "rating":
            if rating_mean is not None:
                options.setdefault("rating_mean", rating_mean)
            built[name] = RatingHead(hidden_size, embedding_size, **options)
        elif name == "genre":
            if genre_matrix is None:
                raise ValueError("task.genre needs item genres (genre_matrix), but none were given")
            built[name] = GenreHead(hidden_size, genre_matrix, **options)
        else:
            raise ValueError(f"unknown head task.heads.{name}; choose from {', '.join(HEADS)}")
    return nn.ModuleDict(built)
