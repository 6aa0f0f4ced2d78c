"""Two DDP processes on CPU (gloo) evaluate exactly as one process: each user counted once."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient

from rnnrec.train import check_distributed_fits_data, train
from tests.e2e import TINY, config

# A learning rate of 0 keeps the initial weights (the same seed in both runs), so the two
# runs evaluate the same model while DDP still trains: gradients synchronised, checkpoints
# selected. 943 users in batches of 200 make 5 batches, which 2 processes cannot share
# evenly: Lightning's padding sampler would evaluate one batch twice.
SAME = ("+trainer.limit_train_batches=2", "optimizer.lr=0", "data.eval_batch_size=200")


@pytest.mark.slow
def test_ddp_metrics_equal_single_process_metrics(workdir):
    single, _ = train(config(workdir / "single", *SAME))

    command = [
        sys.executable,
        "-m",
        "rnnrec.train",
        "trainer=ddp",
        "trainer.devices=2",
        *TINY,
        *SAME,
        f"hydra.run.dir={workdir / 'ddp'}",
        f"logger.tracking_uri=sqlite:///{workdir / 'ddp.db'}",
    ]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in done.stderr  # two processes did run

    client = MlflowClient(f"sqlite:///{workdir / 'ddp.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("rnnrec").experiment_id])
    assert run.info.status == "FINISHED"
    keys = [k for k in single if k.startswith(("val/", "test/", "test_seen_included/"))]
    assert len(keys) == 27
    assert {k: run.data.metrics[k] for k in keys} == {k: single[k] for k in keys}


def test_trainer_configs_extend_the_cpu_one(tmp_path):
    gpu = config(tmp_path, "trainer=gpu").trainer
    assert (gpu.accelerator, gpu.devices, gpu.precision) == ("gpu", 1, "bf16-mixed")
    ddp = config(tmp_path, "trainer=ddp", "trainer.devices=3").trainer
    assert (ddp.accelerator, ddp.devices, ddp.strategy) == ("cpu", 3, "ddp")
    for trainer in (gpu, ddp):  # the rest comes from trainer=cpu
        assert trainer.gradient_clip_val == 5.0 and trainer.max_epochs == 1


def test_session_data_is_refused_under_several_processes(tmp_path):
    trainer = instantiate(config(tmp_path, "trainer=ddp").trainer, logger=False)
    assert trainer.world_size == 2
    sessions = SimpleNamespace(name="yoochoose_sample", session_parallel=True)
    with pytest.raises(ValueError, match="yoochoose_sample is served in session-parallel"):
        check_distributed_fits_data(trainer, sessions)
    check_distributed_fits_data(trainer, SimpleNamespace(name="ml100k"))  # sequences are fine
