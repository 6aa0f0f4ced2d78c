"""Tiny configs for end-to-end runs of rnnrec-train inside the tests."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from rnnrec.train import CONFIG_DIR

# Small enough that one epoch on MovieLens-100K takes a few seconds on 2 cores.
TINY = [
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "model.embedding_size=8",
    "encoder.hidden_size=8",
    "data.max_len=20",
    "data.batch_size=256",
]


def config(tmp_path: Path, *overrides: str) -> DictConfig:
    """The training config with :data:`TINY` sizes, writing everything below ``tmp_path``."""
    # Baselines have no embedding size to shrink; session data has no windows to cut.
    baseline = any(o in overrides for o in ("model=pop", "model=itemknn"))
    sessions = any(o in overrides for o in ("data=sessions", "data=yoochoose_sample"))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"paths.output_dir={tmp_path / 'outputs'}",
                f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                *(
                    o
                    for o in TINY
                    if not (baseline and o.startswith("model."))
                    and not (sessions and o.startswith("data."))
                ),
                *overrides,
            ],
        )
