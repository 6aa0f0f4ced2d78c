"""EpochTimer: epoch times and the share of each epoch spent waiting for batches."""

from __future__ import annotations

import time

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from rnnrec.tracking.timing import EpochTimer


class SlowDataset(Dataset[torch.Tensor]):
    """Four examples, each taking ``fetch_s`` to produce."""

    def __init__(self, fetch_s: float) -> None:
        self.fetch_s = fetch_s

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> torch.Tensor:
        time.sleep(self.fetch_s)
        return torch.ones(2)


class SlowStep(pl.LightningModule):
    """A linear model whose every training step takes at least ``step_s``."""

    def __init__(self, step_s: float) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.step_s = step_s

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        time.sleep(self.step_s)
        return self.layer(batch).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(fetch_s: float, step_s: float) -> EpochTimer:
    timer = EpochTimer()
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(SlowStep(step_s), DataLoader(SlowDataset(fetch_s), batch_size=1))
    return timer


def test_a_slow_loader_shows_as_data_wait():
    # 4 batches an epoch: 4 x 0.05 s fetching against 4 x 0.005 s of steps.
    timer = fit(fetch_s=0.05, step_s=0.005)
    assert len(timer.data_wait_shares) == len(timer.epoch_seconds) == 2
    assert timer.median_data_wait_share > 0.75
    assert timer.median_epoch_seconds >= 4 * 0.055


def test_a_slow_model_shows_no_data_wait():
    timer = fit(fetch_s=0.0, step_s=0.05)
    assert timer.median_data_wait_share < 0.25
