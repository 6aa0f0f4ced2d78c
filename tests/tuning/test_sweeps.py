"""End-to-end sweeps of a tiny Hydra app (not rnnrec's training) with ``rnnrec_optuna``.

Each sweep runs as its own process, as a user would start it: the plugin must be found by
Hydra's plugin discovery in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from rnnrec.tuning import make_storage

APP = '''
"""A tiny Hydra app standing in for rnnrec-train: a fake training loop that reports."""
import json
import os
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from rnnrec.tuning import trial_reporter


def wait_for_peer(folder: str) -> None:
    """Hold the job until two sweeper processes have each started one (a barrier)."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(path.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg: DictConfig):
    if cfg.wait_for_peer:
        wait_for_peer(cfg.wait_for_peer)
    section = cfg.get("optuna")
    record = {
        "x": cfg.x,
        "y": cfg.y,
        "z": cfg.get("z"),
        "pid": os.getpid(),
        "optuna": None if section is None else OmegaConf.to_container(section),
    }
    reporter = trial_reporter(cfg)
    for epoch in range(cfg.epochs):
        value = cfg.quality * (epoch + 1) / cfg.epochs
        if reporter is not None and reporter.report(value, epoch):
            record["pruned_at"] = epoch
            with open(cfg.log_file, "a") as f:
                f.write(json.dumps(record) + "\\n")
            raise reporter.pruned_error()
    time.sleep(cfg.sleep)
    with open(cfg.log_file, "a") as f:
        f.write(json.dumps(record) + "\\n")
    if cfg.x == cfg.fail_x:
        raise ValueError("deliberate failure")
    if cfg.x == cfg.nan_x:
        return float("nan")
    score = cfg.quality - (cfg.x - 0.3) ** 2
    if cfg.result == "dict":
        return {"val/ndcg_10": score, "time/fit_s": float(cfg.x) * 10, "train/epochs": 4.0}
    return score


if __name__ == "__main__":
    main()
'''

CONFIG = """
x: 0.5
y: 1
quality: 1.0
epochs: 4
sleep: 0
fail_x: -1
nan_x: -2
result: float
wait_for_peer: null
log_file: jobs.jsonl
hydra:
  sweeper:
    params:
      x: choice(0, 1, 2, 3)
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "app.py").write_text(textwrap.dedent(APP))
    (folder / "config.yaml").write_text(CONFIG)
    return folder


def start(app: Path, sweep_dir: Path, *overrides: str) -> subprocess.Popen[str]:
    command = [sys.executable, "app.py", "-m", "hydra/sweeper=rnnrec_optuna"]
    command += [*overrides, f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    return subprocess.Popen(
        command,
        cwd=app,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 0, output
    return output


def sweep(app: Path, sweep_dir: Path, *overrides: str) -> str:
    return finish(start(app, sweep_dir, *overrides))


def results(sweep_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())


def jobs(app: Path) -> list[dict[str, Any]]:
    lines = (app / "jobs.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_failed_and_nan_trials_are_counted_and_the_sweep_goes_on(app: Path) -> None:
    # Grid over x (config params) and y (command line): 8 trials, x=1 raises, x=2 gives NaN.
    # No storage but a pruner: the study goes to a journal file so that jobs can report.
    output = sweep(
        app,
        app / "grid",
        "hydra.sweeper.sampler=grid",
        "hydra.sweeper.n_trials=100",
        "hydra.sweeper.pruner.name=median",
        "y=range(1,3)",
        "+z=5",
        "fail_x=1",
        "nan_x=2",
    )
    summary = results(app / "grid")
    assert summary["n_trials"] == 8  # cut to the grid's size
    assert summary["trials"] == {
        "complete": 4,
        "pruned": 0,
        "failed": 4,
        "running": 0,
        "waiting": 0,
    }
    reasons = sorted(failure["reason"] for failure in summary["failures"])
    assert reasons == 2 * ["ValueError: deliberate failure"] + 2 * ["val/ndcg_10 is NaN"]
    assert summary["best_trial"]["params"]["x"] == 0
    assert "best trial" in output
    records = jobs(app)
    assert {(r["x"], r["y"]) for r in records} == {(x, y) for x in range(4) for y in (1, 2)}
    assert all(r["z"] == 5 for r in records)  # fixed override passed to every job
    storage = records[0]["optuna"]["storage"]
    assert storage == f"journal:{app / 'grid' / 'optuna_journal.log'}"
    assert sorted(r["optuna"]["trial_number"] for r in records) == list(range(8))
    # Job folders are named by trial number.
    assert sorted(int(p.name) for p in (app / "grid").iterdir() if p.name.isdigit()) == list(
        range(8)
    )


def test_median_pruner_stops_a_lagging_trial(app: Path) -> None:
    storage = f"sqlite:///{app / 'db' / 'optuna.db'}"
    common = [
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=pruning",
        "hydra.sweeper.pruner.name=median",
        "hydra.sweeper.pruner.n_startup_trials=2",
        "hydra.sweeper.pruner.n_warmup_steps=1",
    ]
    sweep(app, app / "good", *common, "hydra.sweeper.n_trials=2")
    # Resumed with a deliberately bad model: its curve lags the median from epoch 1.
    output = sweep(app, app / "bad", *common, "hydra.sweeper.n_trials=3", "quality=0.1")
    summary = results(app / "bad")
    assert summary["trials"]["complete"] == 2
    assert summary["trials"]["pruned"] == 1
    assert "trial 2 pruned" in output
    assert "Error executing job" not in output  # Hydra's crash message: not for pruning
    study = optuna.load_study(study_name="pruning", storage=storage)
    pruned = study.trials[2]
    assert pruned.state == TrialState.PRUNED
    assert sorted(pruned.intermediate_values) == [0, 1]  # stopped after warm-up, not at 3
    assert pruned.user_attrs["pruned"] is True
    assert jobs(app)[-1]["pruned_at"] == 1


def test_resume_runs_only_the_missing_trials(app: Path) -> None:
    storage = f"journal:{app / 'study.log'}"
    common = [f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=resume"]
    sweep(app, app / "first", *common, "hydra.sweeper.n_trials=3")
    output = sweep(
        app, app / "second", *common, "hydra.sweeper.n_trials=5", "hydra.sweeper.n_jobs=4"
    )
    assert "3 of 5 trials taken" in output
    assert "Launching 2 jobs locally" in output  # the two missing trials, in one batch
    assert results(app / "second")["trials"]["complete"] == 5
    study = optuna.load_study(study_name="resume", storage=_journal(app / "study.log"))
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in (app / "second").iterdir() if p.name.isdigit()) == ["3", "4"]
    assert len(jobs(app)) == 5


@pytest.fixture(params=["sqlite", "journal", "postgresql"])
def shared_storage(request: pytest.FixtureRequest, app: Path) -> str:
    """An Optuna storage URL that several processes can share: one SQLite file, Optuna's
    journal file, or a PostgreSQL database (skipped when no server is running)."""
    if request.param == "sqlite":
        return f"sqlite:///{app / 'shared.db'}"
    if request.param == "journal":
        return f"journal:{app / 'shared.log'}"
    database: str = request.getfixturevalue("postgres_database")
    return database


def test_two_processes_share_one_study(app: Path, shared_storage: str) -> None:
    storage = shared_storage
    common = [
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=shared",
        "hydra.sweeper.n_trials=6",
        f"wait_for_peer={app / 'barrier'}",
        "sleep=0.1",
        "x=interval(0,1)",
    ]
    first = start(app, app / "one", *common)
    second = start(app, app / "two", *common)
    finish(first)
    finish(second)
    study = optuna.load_study(study_name="shared", storage=make_storage(storage))
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 6
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    # Both processes ran trials (the barrier holds each first job until the other started).
    assert len({t.user_attrs["sweeper.pid"] for t in finished}) == 2
    assert len(jobs(app)) == 6


def test_multi_objective_sweep_reports_the_pareto_front(app: Path) -> None:
    output = sweep(
        app,
        app / "pareto",
        f"hydra.sweeper.storage=journal:{app / 'pareto.log'}",
        "hydra.sweeper.study_name=pareto",
        "hydra.sweeper.sampler=grid",
        "hydra.sweeper.direction=[maximize,minimize]",
        "hydra.sweeper.objectives=[val/ndcg_10,time/fit_s]",
        "x=0,0.1,0.3,0.5,1",
        "result=dict",
    )
    summary = results(app / "pareto")
    assert summary["trials"]["complete"] == 5
    front = {trial["params"]["x"]: trial["values"] for trial in summary["pareto_front"]}
    # x above 0.3 is worse on both objectives than x=0.3; x in [0, 0.3] trades one for other.
    assert sorted(front) == [0, 0.1, 0.3]
    assert set(front[0.1]) == {"val/ndcg_10", "time/fit_s"}
    assert "Pareto front (3 trials)" in output
    # Jobs reach the study, see two objectives and report nothing: said once per process.
    assert output.count("Optuna cannot prune multi-objective studies") == 1


def _journal(path: Path) -> optuna.storages.BaseStorage:
    storage = make_storage(f"journal:{path}")
    assert storage is not None
    return storage
