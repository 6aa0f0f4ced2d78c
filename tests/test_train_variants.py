"""One-epoch end-to-end runs of the user-embedding (cf) and pretrained-embedding variants."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from rnnrec.train import CONFIG_DIR, train

TINY = [
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "model.embedding_size=8",
    "encoder.hidden_size=8",
    "data.max_len=20",
    "data.batch_size=256",
    "+trainer.limit_train_batches=3",
]


def config(tmp_path: Path, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"paths.output_dir={tmp_path / 'outputs'}",
                f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                *TINY,
                *overrides,
            ],
        )


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # MLflow's SQLite store puts artifacts under ./mlruns: keep them in the temporary folder.
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "overrides",
    [
        ("cf=init", "encoder=lstm", "encoder.num_layers=2"),
        ("cf=gate",),
        ("embedding=pretrained", "embedding.item2vec.epochs=1"),
    ],
    ids=["cf-init-lstm", "cf-gate", "embedding-pretrained"],
)
def test_variant_runs_to_a_finite_test_metric(workdir, overrides):
    results, _ = train(config(workdir, *overrides))
    assert math.isfinite(results["test/ndcg_10"])
    if any(o.startswith("cf=") for o in overrides):
        # Every ML-100K user has training windows: nobody needs the default vector.
        assert results["test/cf_fallback_users"] == 0.0
