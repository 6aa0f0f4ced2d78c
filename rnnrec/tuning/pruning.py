"""Lightning callback that prunes a trial of an Optuna sweep whose validation metric lags.

Use in the training code (``rnnrec/train.py``)::

    callback = pruning_callback(cfg)       # None outside an Optuna sweep with a storage
    if callback is not None:
        callbacks.append(callback)

After every validation epoch the callback reports the monitored metric to the trial; when the
study's pruner says so it sets ``pruned`` and raises :class:`optuna.TrialPruned`, which
Lightning passes on out of ``trainer.fit`` (after its ``on_exception`` hooks; note that
Lightning's ``MLFlowLogger.finalize`` marks the run FAILED there, so the training code must
set the final status itself, see :func:`rnnrec.tuning.is_pruned`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from rnnrec.tuning import (
    DEFAULT_MONITOR,
    PRUNED_TAG,
    TrialReporter,
    is_pruned,
    trial_reporter,
    trial_tags,
)

log = logging.getLogger(__name__)


class OptunaPruning(Callback):
    """Reports ``monitor`` to the trial after each validation epoch; stops a pruned trial."""

    def __init__(self, reporter: TrialReporter, monitor: str = DEFAULT_MONITOR) -> None:
        super().__init__()
        self.reporter = reporter
        self.monitor = monitor
        self._missing_logged = False

    @property
    def pruned(self) -> bool:
        """Whether the pruner stopped this trial."""
        return self.reporter.pruned

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The sanity check runs a few batches before training: not an epoch's result.
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            if not self._missing_logged:
                self._missing_logged = True
                log.warning(
                    "pruning watches %s, which validation did not log (logged: %s)",
                    self.monitor,
                    ", ".join(sorted(trainer.callback_metrics)) or "nothing",
                )
            return
        if self.reporter.report(float(value), step=trainer.current_epoch):
            raise self.reporter.pruned_error()


def pruning_callback(cfg: Mapping[str, Any]) -> OptunaPruning | None:
    """The pruning callback of a sweep job, or None when ``cfg`` has no ``optuna`` section.

    Watches ``optuna.monitor`` (the study's objective, set by the sweeper), else
    ``optimized_metric``, else validation NDCG@10.
    """
    reporter = trial_reporter(cfg)
    if reporter is None:
        return None
    monitor = reporter.monitor or cfg.get("optimized_metric") or DEFAULT_MONITOR
    return OptunaPruning(reporter, monitor=str(monitor))


__all__ = ["PRUNED_TAG", "OptunaPruning", "is_pruned", "pruning_callback", "trial_tags"]
