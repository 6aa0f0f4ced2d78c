"""PNG plots of an Optuna study, written when a sweep ends (the sweep run logs them)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna

log = logging.getLogger(__name__)


def write_study_plots(study: optuna.Study, folder: Path, objectives: Sequence[str]) -> list[Path]:
    """Optimisation history and parameter importances (one objective), or the Pareto front
    (several); a plot the study cannot support yet (too few trials) is skipped and logged."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and in CI
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    names = list(objectives)
    if len(study.directions) == 1:
        plots = {
            "optuna_history.png": lambda: optuna_plots.plot_optimization_history(
                study, target_name=names[0]
            ),
            "optuna_importances.png": lambda: optuna_plots.plot_param_importances(study),
        }
    else:
        plots = {
            "optuna_pareto_front.png": lambda: optuna_plots.plot_pareto_front(
                study, target_names=names
            )
        }
    written = []
    for name, draw in plots.items():
        if len(complete) < 2:
            log.info("%s skipped: %d complete trials", name, len(complete))
            continue
        try:
            with warnings.catch_warnings():
                # Optuna marks its matplotlib plots experimental; that is not news per sweep.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = draw()
        except (ValueError, RuntimeError) as error:  # e.g. importances without varied params
            log.info("%s skipped: %s", name, error)
            continue
        # The plot returns one Axes or an array of them.
        figure = np.ravel(np.asarray(axes, dtype=object))[0].figure
        figure.tight_layout()
        figure.savefig(folder / name, dpi=100)
        plt.close(figure)
        written.append(folder / name)
    return written
