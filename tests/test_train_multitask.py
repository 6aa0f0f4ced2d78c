"""One-epoch end-to-end runs with extra task heads, and a head whose data is missing."""

from __future__ import annotations

import math

import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from rnnrec import recommend
from rnnrec.train import CONFIG_DIR, train
from tests.e2e import config


def test_rating_and_genre_heads_log_every_loss_and_the_rmse(workdir, capsys):
    results, run_id = train(config(workdir, "task=rating_genre"))
    assert math.isfinite(results["test/ndcg_10"])
    # ML-100K ratings run 1..5: an RMSE outside that range means a broken head.
    assert 0.0 < results["test/rating_rmse"] < 4.0
    assert math.isfinite(results["val/rating_rmse"])

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    metrics = client.get_run(run_id).data.metrics
    for task in ("next_item", "rating", "genre"):
        assert math.isfinite(metrics[f"train/loss_{task}"])
    total = metrics["train/loss_next_item"] + 0.1 * (
        metrics["train/loss_rating"] + metrics["train/loss_genre"]
    )
    # Epoch means of the parts combine like the per-batch losses (all batches weigh alike).
    assert metrics["train/loss"] == pytest.approx(total, rel=0.05)

    # The heads play no part in recommending: the saved run still recommends.
    capsys.readouterr()  # drop the trainer's result tables
    tracking = ["--run-id", run_id, "--tracking-uri", client.tracking_uri]
    assert recommend.main([*tracking, "--user", "196", "-k", "3"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_rating_head_without_ratings_fails_before_training(workdir):
    data = workdir / "log.txt"
    data.write_text("".join(f"{u} {i}\n" for u in (1, 2, 3) for i in (1, 2, 3, 4, 5)))
    overrides = [
        "task=rating",
        "data=custom",
        f"data.path={data}",
        "data.format=sasrec",
        "data.preprocessing.min_user_interactions=0",
        "data.preprocessing.min_item_interactions=0",
    ]
    with pytest.raises(ValueError, match=r"task\.rating needs ratings.*data custom.*rating_col"):
        train(config(workdir, *overrides))
    assert not (workdir / "mlflow.db").exists()  # failed before any run started


def test_genre_head_without_an_item_file_names_the_setting(workdir):
    data = workdir / "log.txt"
    data.write_text("".join(f"{u} {i}\n" for u in (1, 2, 3) for i in (1, 2, 3, 4, 5)))
    overrides = [
        "task=genre",
        "data=custom",
        f"data.path={data}",
        "data.format=sasrec",
        "data.preprocessing.min_user_interactions=0",
        "data.preprocessing.min_item_interactions=0",
    ]
    with pytest.raises(ValueError, match=r"task\.genre needs item features.*data\.item_features"):
        train(config(workdir, *overrides))


def test_heads_on_a_model_without_an_encoder_are_refused(workdir):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        overrides = ["task=rating", "model=pop", f"paths.output_dir={workdir / 'outputs'}"]
        cfg = compose("train", overrides=overrides)
    with pytest.raises(ValueError, match=r"task=rating adds heads \(rating\).*use task=next_item"):
        train(cfg)
