"""rnnrec-report: grouped means and spreads against a hand-made set of runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from rnnrec.report import main, pareto_front

# (overrides, test/ndcg_10, time/fit_s, status)
RUNS = [
    ("loss=ce seed=1", 0.10, 100.0, "FINISHED"),
    ("loss=ce seed=2", 0.14, 120.0, "FINISHED"),
    ("loss=ce seed=3", 0.12, 110.0, "FINISHED"),
    ("loss=bpr seed=1", 0.05, 40.0, "FINISHED"),
    ("loss=bpr seed=2", 0.07, 60.0, "FINISHED"),
    ("loss=bpr seed=3", 0.99, 1.0, "FAILED"),  # a failed job must not count
]


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("study")
    parent = client.create_run(experiment, tags={"rnnrec.sweep": "true"}).info.run_id
    client.log_metric(parent, "test/ndcg_10", 0.14)  # the parent repeats the best: not a run
    for overrides, ndcg, fit, status in RUNS:
        run = client.create_run(
            experiment, tags={"mlflow.parentRunId": parent, "sweep.overrides": overrides}
        ).info.run_id
        client.log_metric(run, "test/ndcg_10", ndcg)
        client.log_metric(run, "time/fit_s", fit)
        client.set_terminated(run, status)
    return uri, client, parent


def test_groups_by_the_swept_keys_with_mean_and_spread(store, tmp_path, capsys):
    uri, client, parent = store
    out = tmp_path / "report"
    assert main(["study", "--tracking-uri", uri, "--out", str(out)]) == 0
    table = pd.read_csv(out / "report.csv").set_index("loss")
    assert list(table.index) == ["bpr", "ce"]  # grouped by loss, not by seed
    assert table.loc["ce", "runs"] == 3 and table.loc["bpr", "runs"] == 2
    assert table.loc["ce", "test/ndcg_10 mean"] == pytest.approx(0.12)
    assert table.loc["ce", "test/ndcg_10 std"] == pytest.approx(0.02)  # sample std of 3 values
    assert table.loc["bpr", "time/fit_s mean"] == pytest.approx(50.0)
    assert table.loc["bpr", "time/fit_s std"] == pytest.approx(math.sqrt(200.0))
    printed = capsys.readouterr().out
    assert "| ce | 3 | 0.1200 ± 0.0200 |" in printed
    assert (out / "test_ndcg_10_by_loss.png").stat().st_size > 0
    assert (out / "accuracy_vs_time.png").stat().st_size > 0
    logged = {a.path for a in client.list_artifacts(parent, "report")}
    assert "report/report.md" in logged and "report/accuracy_vs_time.png" in logged


def test_explicit_grouping_and_unknown_experiment(store, tmp_path, capsys):
    uri, _, _ = store
    out = tmp_path / "by-seed"
    assert (
        main(["study", "--tracking-uri", uri, "--out", str(out), "--group-by", "seed", "--no-log"])
        == 0
    )
    table = pd.read_csv(out / "report.csv")
    assert table.set_index("seed").loc[1, "runs"] == 2
    assert main(["nothing", "--tracking-uri", uri]) == 1
    assert "no experiment 'nothing'" in capsys.readouterr().err


def test_pareto_front_keeps_only_unbeaten_points():
    cost = [1.0, 2.0, 3.0, 2.5, 0.5]
    gain = [0.1, 0.3, 0.35, 0.2, 0.05]

    assert pareto_front(np.array(cost), np.array(gain)).tolist() == [4, 0, 1, 2]


def test_runs_outside_sweeps_are_told_apart_by_their_choices(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("loose")
    for data, loss, ndcg in (("ml100k", "ce", 0.1), ("ml100k", "bpr", 0.2), ("yc", "ce", 0.3)):
        run = client.create_run(experiment).info.run_id
        client.log_param(run, "choice.data", data)
        client.log_param(run, "choice.loss", loss)
        client.log_param(run, "seed", "42")
        client.log_metric(run, "test/ndcg_10", ndcg)
        client.set_terminated(run, "FINISHED")
    out = tmp_path / "report"
    assert main(["loose", "--tracking-uri", uri, "--out", str(out)]) == 0
    table = pd.read_csv(out / "report.csv")
    assert list(table.columns[:3]) == ["data", "loss", "runs"]  # seed is constant: no column
    assert len(table) == 3 and (table["runs"] == 1).all()
