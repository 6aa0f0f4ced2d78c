"""Wall time of training epochs, without the validation pass that Lightning runs inside them,
and the share of it spent waiting for batches."""

from __future__ import annotations

import statistics
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.trainer.states import TrainerFn


class EpochTimer(pl.Callback):
    """Records how long each training epoch takes, from its first batch fetch to its last step.

    Lightning runs validation before ``on_train_epoch_end``, so the clock stops when
    validation starts (or at epoch end when there is none). Checkpoints keep the epoch times
    and the fitting time so far, so a resumed run reports totals over all its epochs.

    The data wait of an epoch is the time from its start, or from the end of one training
    step, to the start of the next step: fetching and collating the batch, plus Lightning's
    own bookkeeping between steps (which this cannot tell apart, so the share is an upper
    bound on the time the model waited for data).
    """

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self.data_wait_shares: list[float] = []  # per epoch, waiting time / epoch time
        # Fitting time spent before the checkpoint this run resumed from (0 for a new run).
        self.resumed_fit_seconds = 0.0
        self._start: float | None = None
        self._stop: float | None = None
        self._fit_start: float | None = None
        self._step_end = 0.0
        self._waited = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        """Epoch times and fitting seconds up to now, for the checkpoint."""
        elapsed = 0.0 if self._fit_start is None else time.perf_counter() - self._fit_start
        return {
            "epoch_seconds": list(self.epoch_seconds),
            "data_wait_shares": list(self.data_wait_shares),
            "fit_seconds": self.resumed_fit_seconds + elapsed,
        }

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Continue the counts of the checkpoint's run when resuming training.

        (Not ``load_state_dict``: Lightning also restores callbacks when it validates or
        tests a checkpoint, and the best epoch's counts would replace the finished ones.)
        """
        if trainer.state.fn != TrainerFn.FITTING:
            return
        state = (checkpoint.get("callbacks") or {}).get(self.state_key) or {}
        self.epoch_seconds = [float(s) for s in state.get("epoch_seconds", [])]
        self.data_wait_shares = [float(s) for s in state.get("data_wait_shares", [])]
        self.resumed_fit_seconds = float(state.get("fit_seconds", 0.0))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._stop = time.perf_counter(), None
        self._step_end, self._waited = self._start, 0.0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._waited += time.perf_counter() - self._step_end

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._step_end = time.perf_counter()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.training and self._start is not None and self._stop is None:
            self._stop = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is None:
            return
        seconds = (self._stop or time.perf_counter()) - self._start
        self.epoch_seconds.append(seconds)
        share = self._waited / seconds if seconds > 0 else 0.0
        self.data_wait_shares.append(share)
        pl_module.log("time/train_epoch_s", seconds, on_epoch=True)
        pl_module.log("time/data_wait_share", share, on_epoch=True)
        self._start = None

    @property
    def median_epoch_seconds(self) -> float:
        """Median over finished epochs; NaN before the first one ends."""
        return statistics.median(self.epoch_seconds) if self.epoch_seconds else float("nan")

    @property
    def median_data_wait_share(self) -> float:
        """Median over finished epochs of the share spent waiting for batches; NaN before."""
        return statistics.median(self.data_wait_shares) if self.data_wait_shares else float("nan")
