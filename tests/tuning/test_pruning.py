"""The job side: reconnecting to a trial, reporting, pruning, tags, and the Lightning callback."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest

from rnnrec import tuning
from rnnrec.tuning import (
    TrialReporter,
    build_pruner,
    is_pruned,
    make_storage,
    trial_reporter,
    trial_tags,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(tmp_path: Path, directions: list[str], pruner: dict[str, Any]) -> optuna.Study:
    study = optuna.create_study(
        storage=make_storage(f"journal:{tmp_path / 'study.log'}"),
        study_name="s",
        directions=[optuna.study.StudyDirection[d.upper()] for d in directions],
    )
    study.set_user_attr(tuning.PRUNER_ATTR, pruner)
    return study


def _config(tmp_path: Path, trial: optuna.Trial, **extra: Any) -> dict[str, Any]:
    section = {
        "storage": f"journal:{tmp_path / 'study.log'}",
        "study_name": "s",
        "trial_id": trial._trial_id,
        "trial_number": trial.number,
        "monitor": "val/ndcg_10",
    }
    return {"optimized_metric": "val/hr_10", "optuna": section, **extra}


def test_reporter_prunes_a_trial_below_the_median(tmp_path: Path) -> None:
    study = _study(tmp_path, ["maximize"], {"name": "median", "n_startup_trials": 1})
    good = study.ask()
    for step in range(3):
        good.report(0.5, step)
    study.tell(good, 0.5)
    bad = study.ask()

    reporter = trial_reporter(_config(tmp_path, bad))
    assert reporter is not None
    assert reporter.report(0.1, 0) is True
    assert reporter.pruned and is_pruned(reporter)
    assert is_pruned(reporter.pruned_error())
    wrapped = RuntimeError("fit failed")
    wrapped.__cause__ = reporter.pruned_error()
    assert is_pruned(wrapped) and not is_pruned(ValueError("other"))
    assert study.trials[1].intermediate_values == {0: 0.1}
    assert study.trials[1].user_attrs[tuning.PRUNED_ATTR] is True


def test_multi_objective_studies_report_nothing_and_say_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study = _study(tmp_path, ["maximize", "minimize"], {"name": "none"})
    trial = study.ask()
    caplog.set_level(logging.INFO, logger="rnnrec.tuning")
    tuning._warned.discard("s")
    for _ in range(2):
        reporter = trial_reporter(_config(tmp_path, trial))
        assert reporter is not None
        assert reporter.report(0.1, 0) is False
    assert study.trials[0].intermediate_values == {}
    assert sum("cannot prune" in record.message for record in caplog.records) == 1


def test_configs_without_an_optuna_section_get_nothing(tmp_path: Path) -> None:
    assert trial_reporter({"seed": 1}) is None
    assert trial_tags({"seed": 1}) == {}
    assert trial_reporter({"optuna": {"study_name": "s"}}) is None  # incomplete: warned
    study = _study(tmp_path, ["maximize"], {"name": "none"})
    tags = trial_tags(_config(tmp_path, study.ask()))
    assert tags == {"optuna.study_name": "s", "optuna.trial_number": "0"}


def test_pruners_are_built_from_their_settings() -> None:
    assert isinstance(build_pruner(None), optuna.pruners.NopPruner)
    median = build_pruner({"name": "median", "n_warmup_steps": 3, "n_startup_trials": None})
    assert isinstance(median, optuna.pruners.MedianPruner)
    halving = build_pruner({"name": "successive_halving", "reduction_factor": 3})
    assert isinstance(halving, optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(build_pruner({"name": "hyperband"}), optuna.pruners.HyperbandPruner)
    with pytest.raises(ValueError, match="unknown pruner"):
        build_pruner({"name": "threshold"})


def test_lightning_callback_raises_trial_pruned(tmp_path: Path) -> None:
    pruning = pytest.importorskip("rnnrec.tuning.pruning")  # imports Lightning: a few seconds
    pruner = {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 1}
    study = _study(tmp_path, ["maximize"], pruner)
    good = study.ask()
    good.report(0.5, 0)
    good.report(0.5, 1)
    study.tell(good, 0.5)
    callback = pruning.pruning_callback(_config(tmp_path, study.ask()))
    assert callback is not None and callback.monitor == "val/ndcg_10"

    def trainer(epoch: int, value: float, sanity: bool = False) -> Any:
        metrics = {"val/ndcg_10": value}
        return SimpleNamespace(
            sanity_checking=sanity, callback_metrics=metrics, current_epoch=epoch
        )

    callback.on_validation_end(trainer(0, 0.0, sanity=True), None)  # sanity check: ignored
    callback.on_validation_end(trainer(0, 0.1), None)  # lagging, but still warming up
    assert not callback.pruned
    with pytest.raises(optuna.TrialPruned):
        callback.on_validation_end(trainer(1, 0.1), None)  # the median pruner's best-so-far
    assert callback.pruned and is_pruned(callback)
    assert study.trials[1].intermediate_values == {0: 0.1, 1: 0.1}
    assert pruning.pruning_callback({"seed": 1}) is None


def test_reporter_skips_a_step_reported_twice(tmp_path: Path) -> None:
    study = _study(tmp_path, ["maximize"], {"name": "none"})
    reporter = TrialReporter(f"journal:{tmp_path / 'study.log'}", "s", study.ask()._trial_id)
    assert reporter.report(0.2, 0) is False
    assert reporter.report(0.3, 0) is False
    assert study.trials[0].intermediate_values == {0: 0.2}
