"""A few optimisation steps on a fixed batch, shared by the model tests."""

from __future__ import annotations

import torch

from rnnrec.models.sequential import SequentialRecommender


def losses_over_steps(
    model: SequentialRecommender, batch: dict[str, torch.Tensor], steps: int = 30
) -> list[float]:
    """Training loss before each of ``steps`` optimiser steps on the same batch."""
    optimizer = model.configure_optimizers()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
