"""Multiruns open one MLflow parent run that nests every job and records the best one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from rnnrec.tracking.sweep_run import SWEEP_TAG, summarise_sweep


def multirun(workdir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "rnnrec.train",
            "-m",
            *overrides,
            f"hydra.sweep.dir={workdir / 'multirun'}",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )


def runs(workdir: Path) -> list:
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("rnnrec")
    return client.search_runs([experiment.experiment_id])


def test_every_job_nests_under_the_sweep_run(workdir):
    done = multirun(workdir, "model=pop,itemknn")
    assert done.returncode == 0, done.stderr[-3000:]
    found = runs(workdir)
    parents = [r for r in found if r.data.tags.get(SWEEP_TAG) == "true"]
    assert len(parents) == 1
    parent = parents[0]
    jobs = [r for r in found if r is not parent]
    assert len(jobs) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert sorted(r.data.tags["sweep.overrides"] for r in jobs) == ["model=itemknn", "model=pop"]
    # Config-group choices are params too, so reports can group runs outside sweeps.
    assert sorted(r.data.params["choice.model"] for r in jobs) == ["itemknn", "pop"]
    assert parent.info.status == "FINISHED"
    best = max(jobs, key=lambda r: r.data.metrics["val/ndcg_10"])
    assert parent.data.tags["sweep.best_run_id"] == best.info.run_id
    assert parent.data.metrics["val/ndcg_10"] == best.data.metrics["val/ndcg_10"]
    assert parent.data.params["best.model"] == best.data.tags["sweep.overrides"].split("=")[1]
    assert parent.data.metrics["sweep/jobs_finished"] == 2


def test_a_crashing_sweep_leaves_no_running_parent(workdir):
    # The basic launcher stops at the first failing job; the parent must not stay RUNNING.
    done = multirun(workdir, "model=pop", "data=custom", "data.path=missing.csv,other.csv")
    assert done.returncode != 0
    found = runs(workdir)
    parent = next(r for r in found if r.data.tags.get(SWEEP_TAG) == "true")
    assert parent.info.status == "FAILED"
    assert all(r.info.status != "RUNNING" for r in found)


def test_summary_picks_the_best_finished_job(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("sweep")
    parent = client.create_run(experiment).info.run_id
    values = {"a": (0.2, "FINISHED"), "b": (0.5, "FAILED"), "c": (0.3, "FINISHED")}
    ids = {}
    for name, (value, status) in values.items():
        run = client.create_run(
            experiment,
            tags={"mlflow.parentRunId": parent, "sweep.overrides": f"+x={name} y=1"},
        )
        client.log_metric(run.info.run_id, "val/ndcg_10", value)
        client.set_terminated(run.info.run_id, status)
        ids[name] = run.info.run_id
    assert summarise_sweep(client, parent, "val/ndcg_10") == ids["c"]  # b failed
    logged = client.get_run(parent).data
    assert logged.params == {"best.x": "c", "best.y": "1"}
    assert logged.metrics["sweep/jobs_finished"] == 2
    assert logged.metrics["sweep/jobs_failed"] == 1


def test_joblib_launcher_runs_jobs_in_parallel_processes_under_one_sweep_run(workdir):
    # Two jobs at once in worker processes (one torch thread each): they must still find the
    # sweep's parent run, which lives in the launching process.
    done = multirun(
        workdir, "model=pop,itemknn", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = runs(workdir)
    parent = next(r for r in found if r.data.tags.get(SWEEP_TAG) == "true")
    jobs = [r for r in found if r is not parent]
    assert sorted(r.data.params["choice.model"] for r in jobs) == ["itemknn", "pop"]
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert all(r.info.status == "FINISHED" for r in found)
    assert parent.data.metrics["sweep/jobs_finished"] == 2


def test_slurm_launcher_config_composes_over_submitit(tmp_path):
    # No SLURM here: check that our launcher config composes onto submitit's and keeps its
    # settings, so a cluster user gets what the README says.
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rnnrec.train import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu"
    assert launcher.gpus_per_node == 1
    assert launcher.timeout_min == 240
