"""Checks that run before any training: settings that cannot work fail at once."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rnnrec import recommend
from rnnrec.train import (
    CONFIG_DIR,
    SAMPLED_LOSS_NAMES,
    check_loss_fits_model,
    check_optimized_metric,
    default_run_name,
)
from tests.e2e import config


def test_early_stopping_metric_must_be_computed(tmp_path):
    with pytest.raises(ValueError, match=r"needs K=10 in eval.ks"):
        check_optimized_metric(config(tmp_path, "eval.ks=[5,20]"))
    check_optimized_metric(config(tmp_path, "eval.ks=[10]"))


@pytest.mark.parametrize("model", ["pop", "itemknn", "bprmf"])
def test_a_sampled_loss_is_refused_by_the_baselines(tmp_path, model):
    with pytest.raises(ValueError, match=r"the loss \(BPRMax\) applies to sequential models"):
        check_loss_fits_model(config(tmp_path, f"model={model}", "loss=bpr_max"))
    check_loss_fits_model(config(tmp_path, f"model={model}"))  # the default loss is fine
    check_loss_fits_model(config(tmp_path, "model=sasrec", "loss=bpr_max"))


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ((), "ml100k-gru"),
        (("encoder=lstm", "attention=additive"), "ml100k-lstm-additive"),
        (("model=sasrec",), "ml100k-sasrec"),
        (("model=pop",), "ml100k-pop"),
        (("model=bprmf",), "ml100k-bprmf"),
        (("experiment=quick", "model=pop"), "ml100k-pop"),
        (("loss=bpr_max", "sampler=mixed"), "ml100k-gru-bpr_max-mixed"),
        (("loss=sampled_ce",), "ml100k-gru-sampled_ce-uniform"),
    ],
)
def test_run_names_say_data_and_model(tmp_path, overrides, name):
    assert default_run_name(config(tmp_path, *overrides)) == name


def test_every_sampled_loss_config_has_its_run_name():
    files = sorted(Path(CONFIG_DIR, "loss").glob("*.yaml"))
    targets = {f.stem: OmegaConf.load(f)["_target_"].rsplit(".", 1)[-1] for f in files}
    sampled = {stem: target for stem, target in targets.items() if stem != "ce"}
    assert {SAMPLED_LOSS_NAMES[target]: target for target in sampled.values()} == sampled


def test_recommend_refuses_a_folder_without_a_store(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert recommend.main(["--run-id", "abc", "--user", "1"]) == 1
    assert "no MLflow store" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


def test_recommend_needs_a_positive_k():
    with pytest.raises(SystemExit):
        recommend.parse_args(["--run-id", "abc", "--user", "1", "-k", "0"])
