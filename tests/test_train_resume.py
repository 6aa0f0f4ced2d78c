"""Resuming an interrupted rnnrec-train run gives the uninterrupted run's metrics, in its run."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from mlflow.tracking import MlflowClient

from rnnrec import checkpoints
from rnnrec.tracking import mlflow_run
from rnnrec.train import train
from tests.e2e import config

# Dropout, a shuffled loader and a learning rate that changes every epoch: all must continue.
STEADY = (
    "trainer.max_epochs=4",
    "+trainer.limit_train_batches=3",
    "scheduler=step",
    "scheduler.step_size=1",
)


class CrashAtEpoch(pl.Callback):
    """Fails when epoch ``epoch`` (0-based) starts, after the previous one was checkpointed."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"simulated crash at epoch {self.epoch}")


def untimed(results: dict[str, float]) -> dict[str, float]:
    return {key: value for key, value in results.items() if not key.startswith("time/")}


def losses(folder: Path, run_id: str) -> list[tuple[int, float]]:
    """(step, value) of the run's per-epoch training loss.

    A resumed run logs the interrupted epoch's loss once more, at the same step and value
    (Lightning restores the logged values and logs them at the end of that epoch again).
    """
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    return sorted({(m.step, m.value) for m in client.get_metric_history(run_id, "train/loss")})


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, list]]:
    """The four epochs without interruption: final results and the training loss per epoch."""
    folder = tmp_path_factory.mktemp("straight")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("RNNREC_CACHE_DIR", str(folder / "cache"))
        results, run_id = train(config(folder, *STEADY))
        yield results, losses(folder, run_id)


def test_resuming_after_max_epochs_continues_exactly_in_the_same_run(workdir, straight):
    first, run_id = train(config(workdir, *STEADY, "trainer.max_epochs=2"))
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    assert client.get_run(run_id).info.status == "FINISHED"
    last = workdir / "outputs" / "checkpoints" / "last.ckpt"

    # What resuming reads is stored safely, in the checkpoint itself.
    entry = torch.load(last, map_location="cpu", weights_only=True)[checkpoints.CHECKPOINT_KEY]
    assert entry["format_version"] == checkpoints.FORMAT_VERSION
    assert entry["mlflow_run_id"] == run_id
    assert len(entry["random_states"]) == 1

    resumed, resumed_id = train(config(workdir, *STEADY, "ckpt_path=last"))
    assert resumed_id == run_id
    assert untimed(resumed) == untimed(straight[0])
    assert resumed["train/epochs"] == 4
    assert resumed["time/fit_s"] > first["time/fit_s"]  # both parts count
    assert losses(workdir, run_id) == straight[1]  # same steps, same values

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[mlflow_run.RESUMES_TAG] == "1"
    assert run.data.tags[mlflow_run.RESUMED_FROM_TAG] == str(last.resolve())
    # Where to resume from is no change of what is trained: not listed.
    assert run.data.tags[mlflow_run.CHANGED_PARAMS_TAG] == "trainer.max_epochs: 2 -> 4"
    assert run.data.metrics["test/ndcg_10"] == resumed["test/ndcg_10"]
    assert len(client.search_runs([run.info.experiment_id])) == 1

    # Another model config is refused before anything is built from the checkpoint.
    with pytest.raises(ValueError) as caught:
        train(config(workdir, *STEADY, "encoder.hidden_size=16", "ckpt_path=last"))
    assert str(last.resolve()) in str(caught.value)
    assert "model.encoder.hidden_size: checkpoint 8, now 16" in str(caught.value)
    assert len(client.search_runs([run.info.experiment_id])) == 1

    # Fewer epochs than the checkpoint has done is refused before the finished run reopens.
    with pytest.raises(ValueError, match=r"has finished 4 epochs, more than .*max_epochs=2"):
        train(config(workdir, *STEADY, "trainer.max_epochs=2", "ckpt_path=last"))
    assert client.get_run(run_id).info.status == "FINISHED"
    assert client.get_run(run_id).data.tags[mlflow_run.RESUMES_TAG] == "1"


def test_resuming_after_a_crash_reopens_the_failed_run(workdir, straight, monkeypatch, caplog):
    crash = (
        "+callbacks.crash._target_=tests.test_train_resume.CrashAtEpoch",
        "+callbacks.crash.epoch=2",
    )
    with pytest.raises(RuntimeError, match="simulated crash"), caplog.at_level(logging.INFO):
        train(config(workdir, *STEADY, *crash))
    checkpoint = workdir / "outputs" / "checkpoints" / "last.ckpt"
    assert f"rerun the same command with ckpt_path={checkpoint}" in caplog.text
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("rnnrec").experiment_id])
    assert run.info.status == "FAILED"

    statuses = []
    reopen = mlflow_run.reopen_run

    def reopen_and_look(tracking_uri, point):  # type: ignore[no-untyped-def]
        reopen(tracking_uri, point)
        statuses.append(MlflowClient(tracking_uri).get_run(point.mlflow_run_id).info.status)

    monkeypatch.setattr(mlflow_run, "reopen_run", reopen_and_look)
    resumed, resumed_id = train(config(workdir, *STEADY, f"ckpt_path={checkpoint}"))
    assert statuses == ["RUNNING"]
    assert resumed_id == run.info.run_id
    assert untimed(resumed) == untimed(straight[0])
    assert client.get_run(resumed_id).info.status == "FINISHED"


def test_a_run_missing_from_the_store_is_named(workdir):
    train(config(workdir / "a", "+trainer.limit_train_batches=1"))
    checkpoint = workdir / "a" / "outputs" / "checkpoints" / "last.ckpt"
    elsewhere = config(workdir / "b", "+trainer.limit_train_batches=1", f"ckpt_path={checkpoint}")
    with pytest.raises(ValueError, match=r"belongs to MLflow run \w+ .*which the store .*b/mlflow"):
        train(elsewhere)


def test_last_checkpoint_follows_every_epoch_while_the_best_stays(workdir):
    # A learning rate of 0 leaves validation NDCG where epoch 0 put it: no later epoch is
    # better, yet the checkpoint to resume from must be the newest epoch.
    results, _ = train(
        config(workdir, "trainer.max_epochs=3", "+trainer.limit_train_batches=2", "optimizer.lr=0")
    )
    folder = workdir / "outputs" / "checkpoints"
    assert sorted(path.name for path in folder.iterdir()) == ["best-epoch000.ckpt", "last.ckpt"]
    assert torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)["epoch"] == 2
    assert results["train/epochs"] == 3
