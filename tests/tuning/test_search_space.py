"""Unit tests of the sweeper's parts: search-space grammar, values, storage URLs, results."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hydra_plugins.rnnrec_optuna_sweeper import optuna_sweeper as plugin
from hydra_plugins.rnnrec_optuna_sweeper.optuna_sweeper import (
    RnnrecOptunaSweeper,
    fail_orphaned_trials,
    format_value,
    interpret_result,
    parse_search_space,
    resolve_storage_url,
    warn_if_fixed_overrides_changed,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("a=choice(1,2.5,x)", CategoricalDistribution([1, 2.5, "x"])),
        ("a=adam,sgd", CategoricalDistribution(["adam", "sgd"])),
        ("a=range(1,5)", IntDistribution(1, 4)),
        ("a=range(0,10,3)", IntDistribution(0, 9, step=3)),
        ("a=range(0.1,0.5,0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
        ("a=tag(log,range(1,100))", IntDistribution(1, 99, log=True)),
        ("a=interval(0.1,0.5)", FloatDistribution(0.1, 0.5)),
        ("a=tag(log,interval(1e-4,1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
        ("a=tag(int,interval(1,100))", IntDistribution(1, 100)),
        ("a=tag(int,log,interval(1,64))", IntDistribution(1, 64, log=True)),
    ],
)
def test_each_grammar_form_becomes_its_distribution(override: str, expected: Any) -> None:
    space = parse_search_space([override])
    assert space.distributions == {"a": expected}
    assert space.keys == {"a": "a"}
    assert space.fixed == []


def test_plain_values_are_fixed_and_later_overrides_win() -> None:
    space = parse_search_space(
        ["lr=choice(0.1,0.2)", "+extra=choice(a,b)", "data.batch_size=64", "lr=interval(0,1)"]
    )
    assert space.fixed == ["data.batch_size=64"]
    assert space.distributions["lr"] == FloatDistribution(0.0, 1.0)  # the later one
    assert space.keys == {"extra": "+extra", "lr": "lr"}
    assert space.overrides({"lr": 0.5, "extra": "b"}) == [
        "data.batch_size=64",
        "+extra=b",
        "lr=0.5",
    ]


def test_config_params_become_overrides() -> None:
    params = {"x": "choice(1,2)", "y": 0.5, "flag": True, "none": None, "sizes": [1, 2]}
    assert plugin.params_as_overrides(params) == [
        "x=choice(1,2)",
        "y=0.5",
        "flag=true",
        "none=null",
        "sizes=[1,2]",
    ]


def test_choices_that_optuna_cannot_store_become_override_text() -> None:
    space = parse_search_space(["layers=choice([64,32],[128])"])
    assert space.distributions["layers"] == CategoricalDistribution(["[64,32]", "[128]"])
    assert space.overrides({"layers": "[128]"}) == ["layers=[128]"]


@pytest.mark.parametrize(
    "override",
    ["a=glob(*)", "a=tag(log,choice(1,2))", "a=tag(fancy,interval(0,1))", "a=range(5,1)"],
)
def test_sweeps_without_a_distribution_are_refused(override: str) -> None:
    with pytest.raises(ValueError, match="a:"):
        parse_search_space([override])


@pytest.mark.parametrize(
    "value",
    [
        0,
        -3,
        1e-05,
        0.25,
        True,
        None,
        "gru",
        "x y",
        "a,b",
        "it's",
        "back\\",
        "a\\'b",
        "1",
        "",
        "null",
        "sqlite:////tmp/x y/o.db",
        "${x}",
        [1, "a b"],
        {"k": 1.5},
    ],
)
def test_formatted_values_read_back_unchanged(value: Any) -> None:
    parsed = OverridesParser.create().parse_override(f"key={format_value(value)}").value()
    assert parsed == value
    assert type(parsed) is type(value)


def test_relative_storage_paths_become_absolute(tmp_path: Path) -> None:
    assert resolve_storage_url(None, tmp_path) is None
    assert resolve_storage_url("sqlite:///o.db", tmp_path) == f"sqlite:///{tmp_path}/o.db"
    assert resolve_storage_url("sqlite:////abs/o.db", tmp_path) == "sqlite:////abs/o.db"
    assert resolve_storage_url("journal:j.log", tmp_path) == f"journal:{tmp_path}/j.log"
    url = "postgresql://u:secret@localhost:5433/optuna"
    assert resolve_storage_url(url, tmp_path) == url
    assert "secret" not in plugin.mask_url(url)


def test_settings_are_checked_when_the_sweeper_is_built() -> None:
    with pytest.raises(ValueError, match="need as many directions"):
        RnnrecOptunaSweeper(objectives=["val/ndcg_10", "time/fit_s"])
    with pytest.raises(ValueError, match="unknown sampler"):
        RnnrecOptunaSweeper(sampler="bayes")
    with pytest.raises(ValueError, match="takes no n_warmup_steps"):
        RnnrecOptunaSweeper(pruner={"name": "hyperband", "n_warmup_steps": 3})
    sweeper = RnnrecOptunaSweeper(
        direction=["maximize", "minimize"],
        objectives=["val/ndcg_10", "time/fit_s"],
        pruner="median",
    )
    assert sweeper.pruner_spec == {"name": "none"}  # multi-objective: no pruning


def _job(value: Any, failed: bool = False) -> JobReturn:
    job = JobReturn()
    job.return_value = value
    job.status = JobStatus.FAILED if failed else JobStatus.COMPLETED
    return job


def test_job_results_become_trial_states() -> None:
    one, two = ["val/ndcg_10"], ["val/ndcg_10", "time/fit_s"]
    metrics = {"val/ndcg_10": 0.3, "time/fit_s": 12.0}
    assert interpret_result(_job(0.25), one) == (TrialState.COMPLETE, [0.25], "", None)
    assert interpret_result(_job(metrics), two).values == [0.3, 12.0]
    assert interpret_result(_job(metrics), one).values == [0.3]
    missing = interpret_result(_job({"test/ndcg_10": 0.1}), one)
    assert missing.state == TrialState.FAIL and "has no val/ndcg_10" in missing.reason
    assert interpret_result(_job(0.25), two).state == TrialState.FAIL
    assert interpret_result(_job(float("nan")), one).reason == "val/ndcg_10 is NaN"
    crashed = interpret_result(_job(RuntimeError("boom"), failed=True), one)
    assert crashed.state == TrialState.FAIL and isinstance(crashed.error, RuntimeError)
    pruned = _job(optuna.TrialPruned("lagging"), failed=True)
    assert interpret_result(pruned, one).state == TrialState.PRUNED
    assert interpret_result(_job({"optuna.pruned": True}), one).state == TrialState.PRUNED
    assert interpret_result(_job(0.25), one, flagged_pruned=True).state == TrialState.PRUNED


def test_trials_of_a_dead_sweeper_process_are_marked_failed() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its id names no process now
    study = optuna.create_study()
    owners = [dead.pid, os.getppid(), os.getpid()]  # gone, alive, this process (at start)
    for pid in owners:
        trial = study.ask()
        trial.set_user_attr(plugin.HOST_ATTR, socket.gethostname())
        trial.set_user_attr(plugin.PID_ATTR, pid)
    other_host = study.ask()
    other_host.set_user_attr(plugin.HOST_ATTR, "elsewhere")
    other_host.set_user_attr(plugin.PID_ATTR, dead.pid)

    assert fail_orphaned_trials(study) == [0, 2]
    assert [t.state for t in study.trials] == [
        TrialState.FAIL,
        TrialState.RUNNING,
        TrialState.FAIL,
        TrialState.RUNNING,
    ]
    assert "which is gone" in study.trials[0].user_attrs["fail_reason"]
    assert fail_orphaned_trials(study, stale_after_s=0.0) == [1, 3]


def test_resuming_under_other_fixed_overrides_warns(caplog: pytest.LogCaptureFixture) -> None:
    study = optuna.create_study()
    warn_if_fixed_overrides_changed(study, ["data=ml100k", "trainer.max_epochs=20"])
    study.tell(study.ask(), 0.5)
    with caplog.at_level("WARNING", logger=plugin.__name__):
        # The same overrides in another order: nothing to say.
        warn_if_fixed_overrides_changed(study, ["trainer.max_epochs=20", "data=ml100k"])
        assert not caplog.records
        warn_if_fixed_overrides_changed(study, ["data=ml1m", "trainer.max_epochs=20"])
    (record,) = caplog.records
    assert "now added: data=ml1m; now gone: data=ml100k" in record.getMessage()
    assert study.user_attrs[plugin.FIXED_ATTR] == ["data=ml1m", "trainer.max_epochs=20"]


def test_a_trial_asked_past_the_budget_is_handed_back(monkeypatch: pytest.MonkeyPatch) -> None:
    study = optuna.create_study()
    for _ in range(2):
        study.tell(study.ask(), 1.0)
    real_count = plugin.count_taken

    def stale_count(study: optuna.Study, up_to: int | None = None) -> int:
        # As if another process asked the last trial between our count and our ask.
        return real_count(study, up_to) - (1 if up_to is None else 0)

    monkeypatch.setattr(plugin, "count_taken", stale_count)
    sweeper = RnnrecOptunaSweeper(n_jobs=3)
    space = parse_search_space(["x=interval(0,1)"])
    assert sweeper._ask_batch(study, space, n_trials=2) == []
    assert [t.state for t in study.trials] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.WAITING,
    ]
