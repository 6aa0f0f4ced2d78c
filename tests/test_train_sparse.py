"""End-to-end runs with sparse item-table gradients (model.sparse_gradients=true)."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pytest
import torch

from rnnrec.train import train
from tests.e2e import config

# Three batches, a sampled loss, and a clipping threshold low enough to scale every step.
SHORT = (
    "+trainer.limit_train_batches=3",
    "loss=sampled_ce",
    "trainer.gradient_clip_val=0.05",
)


def trained_table(run_dir: Path) -> torch.Tensor:
    """The item table a run's last checkpoint holds."""
    checkpoint = torch.load(
        run_dir / "outputs" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    return checkpoint["state_dict"]["item_embedding.weight"]


def test_sparse_and_dense_gradients_train_alike_under_sgd(tmp_path):
    # Without momentum or weight decay, SGD moves exactly the rows that have a gradient, so
    # sparse and dense gradients must give the same run (up to summation order), clipping
    # included.
    sgd = ("optimizer=sgd", "optimizer.momentum=0.0")
    dense, _ = train(config(tmp_path / "dense", *SHORT, *sgd))
    sparse, run_id = train(config(tmp_path / "sparse", *SHORT, *sgd, "model.sparse_gradients=true"))
    train(config(tmp_path / "still", *SHORT, *sgd, "optimizer.lr=0.0"))
    for key in ("val/ndcg_10", "test/ndcg_10", "test/hr_20"):
        assert sparse[key] == pytest.approx(dense[key], rel=1e-6), key
    table = trained_table(tmp_path / "sparse")
    torch.testing.assert_close(table, trained_table(tmp_path / "dense"))
    moved = (table != trained_table(tmp_path / "still")).any(dim=1)
    assert 100 < int(moved.sum()) < len(table)  # the rows of three batches, not all items
    uri = f"sqlite:///{tmp_path / 'sparse' / 'mlflow.db'}"
    params = mlflow.MlflowClient(uri).get_run(run_id).data.params
    assert params["model.sparse_gradients"] == "True"


def test_lazy_adam_run_finishes(tmp_path):
    results, _ = train(
        config(tmp_path, *SHORT, "optimizer=lazy_adam", "model.sparse_gradients=true")
    )
    assert math.isfinite(results["test/ndcg_10"])
    assert results["test/ndcg_10"] > 0.0


def test_adam_with_sparse_gradients_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="optimizer=lazy_adam"):
        train(config(tmp_path, *SHORT, "model.sparse_gradients=true"))


def test_value_clipping_fails_before_training(tmp_path):
    overrides = ("optimizer=lazy_adam", "model.sparse_gradients=true")
    with pytest.raises(ValueError, match="gradient_clip_algorithm=value cannot"):
        train(config(tmp_path, *SHORT, *overrides, "+trainer.gradient_clip_algorithm=value"))
    # No epoch ran: the refusal came from configure_optimizers, before the first step.
    assert not (tmp_path / "outputs" / "checkpoints" / "last.ckpt").exists()
