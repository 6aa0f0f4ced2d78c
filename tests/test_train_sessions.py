"""End-to-end runs on session data: session-parallel training, per-event evaluation, MLflow."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from hydra.errors import InstantiationException

from rnnrec.train import train
from tests.e2e import config

DAY = 86_400.0


def write_session_log(path: Path, sessions: int = 400, items: int = 30) -> Path:
    """A real session file: sessions over four days, each walking items i, i+1, i+2, ..."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 7, sessions)
    session = np.repeat(np.arange(1, sessions + 1), lengths)
    start = np.sort(rng.uniform(0, 4 * DAY, sessions))
    first = rng.integers(0, items, sessions)
    step = np.arange(len(session)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    frame = pd.DataFrame(
        {
            "SessionId": session,
            "ItemId": 100 + (np.repeat(first, lengths) + step) % items,  # raw ids 100..129
            "Time": np.repeat(start, lengths) + 30.0 * step,
        }
    )
    frame.to_csv(path, sep="\t", index=False)
    return path


SMALL = ("model.embedding_size=8", "encoder.hidden_size=8", "sampler.num_negatives=16")


@pytest.mark.parametrize("loss", ["sampled_ce", "bpr_max", "ce"])
def test_gru4rec_preset_trains_on_a_session_log(workdir, loss):
    log_file = write_session_log(workdir / "clicks.tsv")
    overrides = ["experiment=gru4rec", "data=sessions", f"data.path={log_file}", f"loss={loss}"]
    cfg = config(workdir, *overrides, *SMALL, "trainer.max_epochs=3")
    results, run_id = train(cfg)
    # Walking i -> i + 1 is easy to learn: far above chance (HR@10 = 10/30 at random, less
    # with seen items excluded).
    assert results["test/hr_10"] > 0.5, results["test/hr_10"]
    # The preset ranks items clicked earlier in the session, as GRU4Rec does; the other
    # protocol is logged beside it.
    assert cfg.eval.exclude_seen is False
    assert math.isfinite(results["test_seen_excluded/ndcg_10"])
    run = mlflow.MlflowClient(cfg.logger.tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["data.name"] == "sessions"


def test_session_data_refuses_a_model_that_reads_whole_sequences(workdir):
    log_file = write_session_log(workdir / "clicks.tsv")
    cfg = config(workdir, "data=sessions", f"data.path={log_file}", "attention=dot")
    # Hydra wraps the model's ValueError; its message reaches the user unchanged.
    with pytest.raises(InstantiationException, match="attention=none"):
        train(cfg)
