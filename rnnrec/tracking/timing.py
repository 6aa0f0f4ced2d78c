"""Wall time of training epochs, without the validation pass that Lightning runs inside them."""

from __future__ import annotations

import statistics
import time

import lightning.pytorch as pl


class EpochTimer(pl.Callback):
    """Records how long each training epoch takes, from its first batch fetch to its last step.

    Lightning runs validation before ``on_train_epoch_end``, so the clock stops when
    validation starts (or at epoch end when there is none).
    """

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self._start: float | None = None
        self._stop: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._stop = time.perf_counter(), None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.training and self._start is not None and self._stop is None:
            self._stop = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is None:
            return
        seconds = (self._stop or time.perf_counter()) - self._start
        self.epoch_seconds.append(seconds)
        pl_module.log("time/train_epoch_s", seconds, on_epoch=True)
        self._start = None

    @property
    def median_epoch_seconds(self) -> float:
        """Median over finished epochs; NaN before the first one ends."""
        return statistics.median(self.epoch_seconds) if self.epoch_seconds else float("nan")
