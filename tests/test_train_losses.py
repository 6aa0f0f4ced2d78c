"""Short end-to-end runs with the sampled losses and every sampler, tracked in MLflow."""

from __future__ import annotations

import math

import mlflow
import pytest

from rnnrec.train import train
from tests.e2e import config

SHORT = ("+trainer.limit_train_batches=3",)


@pytest.mark.parametrize(
    "overrides",
    [
        ("loss=sampled_ce", "sampler=popularity"),
        ("loss=bpr_max", "sampler=mixed", "sampler.num_negatives=64"),
        ("loss=gbce", "sampler=uniform", "sampler.mask_input_items=true"),
        ("loss=top1", "sampler=in_batch", "model=sasrec"),
    ],
    ids=["sampled_ce-popularity", "bpr_max-mixed", "gbce-uniform-masked", "top1-in_batch-sasrec"],
)
def test_sampled_loss_runs_and_logs_the_masked_share(workdir, overrides):
    cfg = config(workdir, *SHORT, *overrides)
    results, run_id = train(cfg)
    assert math.isfinite(results["test/ndcg_10"])
    run = mlflow.MlflowClient(cfg.logger.tracking_uri).get_run(run_id)
    masked = run.data.metrics["train/masked_negatives"]
    assert 0.0 <= masked < 1.0
    if "sampler.mask_input_items=true" in overrides:
        # With input items masked, some of 256 uniform draws hit a user's history.
        assert masked > 0.0
    sampler = next(o for o in overrides if o.startswith("sampler=")).split("=")[1]
    assert run.data.params["sampler.name"] == sampler
