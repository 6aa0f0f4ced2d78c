"""End-to-end runs of rnnrec-train on generated data (data=synthetic), in a temporary store."""

from __future__ import annotations

import math

from mlflow.tracking import MlflowClient

from rnnrec.train import train
from tests.e2e import config

# 60 users of 5 to 12 items over 40 items: one epoch takes a moment.
TINY_SYNTHETIC = (
    "data=synthetic",
    "data.generator.num_users=60",
    "data.generator.num_items=40",
    "data.generator.max_length=12",
)


def test_train_on_synthetic_data_with_blocked_evaluation(workdir):
    results, run_id = train(config(workdir, *TINY_SYNTHETIC, "eval.item_block_size=16"))
    run = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}").get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["data.name"] == "synthetic"
    assert run.data.params["data.generator.num_items"] == "40"
    assert run.data.params["eval.item_block_size"] == "16"
    assert run.data.tags["data_fingerprint"]
    for key in ("test/ndcg_10", "val/ndcg_10", "test_seen_included/ndcg_10"):
        assert math.isfinite(results[key]) and 0.0 <= results[key] <= 1.0, key
    assert results["train/epochs"] == 1.0


def test_blocked_evaluation_gives_the_same_metrics_end_to_end(workdir):
    # Popularity scores are integers, so every score is exact and the runs must agree fully.
    whole, _ = train(config(workdir, *TINY_SYNTHETIC, "model=pop"))
    blocked, _ = train(config(workdir, *TINY_SYNTHETIC, "model=pop", "eval.item_block_size=7"))
    keys = [k for k in whole if k.split("/")[0] in ("val", "test", "test_seen_included")]
    assert len(keys) == 27
    assert {key: blocked[key] for key in keys} == {key: whole[key] for key in keys}
    assert 0.0 < whole["test/hr_20"] < 1.0
