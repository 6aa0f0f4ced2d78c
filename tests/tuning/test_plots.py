"""Study plots written at the end of a sweep."""

from __future__ import annotations

import optuna

from rnnrec.tuning.plots import write_study_plots


def test_single_objective_history_and_importances(tmp_path):
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) - t.suggest_int("n", 0, 3), n_trials=6)
    paths = write_study_plots(study, tmp_path, ["val/ndcg_10"])
    assert {p.name for p in paths} == {"optuna_history.png", "optuna_importances.png"}
    assert all(p.stat().st_size > 0 for p in paths)


def test_pareto_front_for_two_objectives_and_nothing_without_trials(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"])
    assert write_study_plots(study, tmp_path, ["val/ndcg_10", "time/fit_s"]) == []
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), 4)
    paths = write_study_plots(study, tmp_path, ["val/ndcg_10", "time/fit_s"])
    assert [p.name for p in paths] == ["optuna_pareto_front.png"]
