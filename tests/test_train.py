"""End-to-end runs of rnnrec-train on the shipped MovieLens-100K, tracked in a temporary store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from rnnrec import recommend
from rnnrec.data import cache
from rnnrec.train import train
from tests.e2e import TINY, config

FINAL_KEYS = [
    f"{part}/{name}_{k}"
    for part in ("test", "val")
    for name in ("hr", "ndcg", "mrr")
    for k in (5, 10, 20)
] + ["time/fit_s", "time/epoch_s", "time/test_s", "model/num_params"]


@pytest.fixture
def trained_run(workdir: Path) -> tuple[MlflowClient, str, dict[str, float]]:
    results, run_id = train(config(workdir))
    return MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}"), run_id, results


def test_run_logs_every_key_params_tags_and_artifacts(trained_run):
    client, run_id, results = trained_run
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert set(FINAL_KEYS) <= set(run.data.metrics)
    for key in FINAL_KEYS:
        assert run.data.metrics[key] == pytest.approx(results[key])
    assert 0.0 <= run.data.metrics["test/hr_5"] <= run.data.metrics["test/hr_10"] <= 1.0
    assert 0.0 <= run.data.metrics["test_seen_included/ndcg_10"] <= 1.0
    assert run.data.metrics["model/num_params"] > 0
    assert run.data.tags["data_fingerprint"]
    assert run.data.tags["git_commit"]
    assert run.data.params["encoder.cell"] == "gru"
    assert run.data.params["data.name"] == "ml100k"
    history = client.get_metric_history(run_id, "train/loss")
    assert len(history) == 1
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "data", "model"} <= artifacts
    assert {a.path for a in client.list_artifacts(run_id, "model")} == {"model/model.pt"}


def test_recommend_from_the_run(trained_run, capsys):
    client, run_id, _ = trained_run
    tracking = ["--run-id", run_id, "--tracking-uri", client.tracking_uri]
    assert recommend.main([*tracking, "--user", "196", "-k", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5

    assert recommend.main([*tracking, "--items", "242", "nope", "302", "-k", "3"]) == 0
    captured = capsys.readouterr()
    assert "unknown item id 'nope'" in captured.err
    items = [line.split()[1] for line in captured.out.strip().splitlines()]
    assert len(items) == 3 and not {"242", "302"} & set(items)

    assert recommend.main([*tracking, "--user", "no-such-user"]) == 1


def test_recommend_from_a_checkpoint_matches_the_run(trained_run, workdir, capsys, monkeypatch):
    client, run_id, _ = trained_run
    # Hydra writes the job's config here; compose() in the tests does not, so write it.
    hydra_dir = workdir / "outputs" / ".hydra"
    hydra_dir.mkdir(parents=True)
    client.download_artifacts(run_id, "config.yaml", str(hydra_dir))
    (checkpoint,) = (workdir / "outputs" / "checkpoints").glob("best-*.ckpt")
    tracking = ["--run-id", run_id, "--tracking-uri", client.tracking_uri]
    assert recommend.main([*tracking, "--user", "196"]) == 0
    from_run = capsys.readouterr().out
    assert recommend.main(["--checkpoint", str(checkpoint), "--user", "196"]) == 0
    assert capsys.readouterr().out == from_run

    # Other data behind the same config (an edited file) would silently mix up ids.
    monkeypatch.setattr(cache, "fingerprint", lambda *args: "0123456789abcdef")
    with pytest.raises(ValueError, match="is not the data"):
        recommend.main(["--checkpoint", str(checkpoint), "--user", "196"])


def test_same_seed_same_metrics(workdir):
    overrides = ("+trainer.limit_train_batches=3",)
    first, _ = train(config(workdir / "a", *overrides))
    second, _ = train(config(workdir / "b", *overrides))
    assert {k: v for k, v in first.items() if not k.startswith("time/")} == {
        k: v for k, v in second.items() if not k.startswith("time/")
    }


def test_a_crashing_run_ends_failed(workdir):
    with pytest.raises(ValueError, match="learning rate"):
        train(config(workdir, "optimizer.lr=-1"))
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs(client.get_experiment_by_name("rnnrec").experiment_id)
    assert [run.info.status for run in runs] == ["FAILED"]


def test_popularity_baseline_needs_no_training(workdir):
    results, _ = train(config(workdir, "model=pop"))
    assert results["time/fit_s"] == 0.0
    # Popular items are a real signal on MovieLens: far above random (about 10/1682).
    assert results["test/hr_10"] > 0.02


@pytest.mark.slow
def test_multirun_over_two_encoders_from_the_command_line(workdir):
    command = [
        sys.executable,
        "-m",
        "rnnrec.train",
        "-m",
        "encoder=rnn,lstm",
        *TINY,
        "+trainer.limit_train_batches=2",
        f"hydra.sweep.dir={workdir / 'multirun'}",
    ]
    # Earlier in-process runs leave MLFLOW_TRACKING_URI set (MLflow exports it); the
    # command should find the default store, ./mlflow.db, on its own.
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs(client.get_experiment_by_name("rnnrec").experiment_id)
    # One run per job, plus the sweep's parent run (tests/tracking checks the nesting).
    jobs = [run for run in runs if "rnnrec.sweep" not in run.data.tags]
    assert sorted(run.data.params["encoder.cell"] for run in jobs) == ["lstm", "rnn"]
    assert len(runs) == len(jobs) + 1
    assert all(run.info.status == "FINISHED" for run in runs)
