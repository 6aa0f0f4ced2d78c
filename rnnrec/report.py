"""``rnnrec-report EXPERIMENT``: the grouped result table and plots of a study, from MLflow.

Runs of one experiment are grouped by the settings their sweep varied (the keys of each
job's ``sweep.overrides`` tag, seeds excepted, or ``--group-by``), and every group gets the
mean and standard deviation of each metric over its runs (its seeds). The table is printed,
written as Markdown and CSV, drawn as PNG plots (each metric against each grouped setting,
and accuracy against training time with the Pareto front), and logged to the sweep's parent
run when the runs have one.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rnnrec.tracking import mlflow_run
from rnnrec.tracking.sweep_run import SWEEP_TAG, parse_overrides

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

DEFAULT_METRICS = ("test/ndcg_10", "test/hr_10", "time/epoch_s", "time/fit_s")
# Config groups whose choice tells runs apart even outside a sweep (logged as choice.<group>).
CHOICE_GROUPS = (
    "data",
    "model",
    "encoder",
    "attention",
    "loss",
    "sampler",
    "cf",
    "embedding",
    "task",
    "optimizer",
    "scheduler",
    "experiment",
)
# Keys that differ between the runs of a sweep without being what it compares (a study
# preset differs between a study and the baseline read beside it).
NOT_GROUPS = {"seed", "study", "hparams_search"}


def job_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Finished training runs: neither sweep parent runs nor failed or killed jobs."""
    parent = runs.get(f"tags.{SWEEP_TAG}", pd.Series(index=runs.index, dtype=object))
    return runs[(runs["status"] == "FINISHED") & (parent != "true")]


def default_group_keys(runs: pd.DataFrame) -> list[str]:
    """The settings that tell these runs apart: keys their sweeps set and config-group
    choices, each kept only if it takes more than one value among the runs."""
    candidates = dict.fromkeys([*swept_keys(runs), *CHOICE_GROUPS])
    values = setting_values(runs, list(candidates))
    return [key for key in candidates if values[key].nunique() > 1]


def swept_keys(runs: pd.DataFrame) -> list[str]:
    """Config keys set by the sweeps' overrides (``a.b=value``), in first-seen order."""
    column = runs.get("tags.sweep.overrides", pd.Series(dtype=object))
    keys: dict[str, None] = {}
    for overrides in column.dropna():
        for key in parse_overrides(overrides):
            if key not in NOT_GROUPS and not key.startswith("optuna."):
                keys[key] = None
    return list(keys)


def setting_values(runs: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Each run's value of each key: from its sweep overrides, else its logged params
    (``key``, or ``choice.key`` for a config-group choice such as ``loss``), else ``-``."""
    overrides = runs.get("tags.sweep.overrides", pd.Series(index=runs.index, dtype=object))
    parsed = overrides.map(parse_overrides)
    values = pd.DataFrame(index=runs.index)
    for key in keys:
        from_tags = parsed.map(lambda found, key=key: found.get(key))
        empty = pd.Series(index=runs.index, dtype=object)
        from_params = runs.get(f"params.{key}", empty)
        from_choice = runs.get(f"params.choice.{key}", empty)
        values[key] = from_tags.fillna(from_params).fillna(from_choice).fillna("-").astype(str)
    return values


def grouped_table(
    runs: pd.DataFrame, group_by: Sequence[str], metrics: Sequence[str]
) -> pd.DataFrame:
    """One row per group: its settings, ``runs`` (count), and ``mean``/``std`` per metric.

    A group's std is the sample standard deviation over its runs (0 for a single run).
    """
    present = [m for m in metrics if f"metrics.{m}" in runs]
    if not present:
        raise ValueError(f"no run logged any of the metrics {', '.join(metrics)}")
    frame = setting_values(runs, group_by)
    for metric in present:
        frame[metric] = runs[f"metrics.{metric}"].astype(float)
    keys = list(group_by) or ["all"]
    if not group_by:
        frame["all"] = "all runs"
    grouped = frame.groupby(keys, sort=True)
    table = grouped.size().rename("runs").to_frame()
    for metric in present:
        table[f"{metric} mean"] = grouped[metric].mean()
        table[f"{metric} std"] = grouped[metric].std(ddof=1).fillna(0.0)
    return table.reset_index()


def markdown(table: pd.DataFrame, metrics: Sequence[str]) -> str:
    """GitHub Markdown, each metric as ``mean ± std``."""
    shown = [c for c in table.columns if not c.endswith((" mean", " std"))]
    present = [m for m in metrics if f"{m} mean" in table]
    lines = ["| " + " | ".join(shown + present) + " |", "|" + "---|" * (len(shown) + len(present))]
    for _, row in table.iterrows():
        cells = [str(row[c]) for c in shown]
        for metric in present:
            digits = 1 if metric.startswith(("time/", "train/epochs")) else 4
            mean, std = row[f"{metric} mean"], row[f"{metric} std"]
            # A group whose runs never logged the metric (a head it lacks) shows a dash.
            cells.append("-" if pd.isna(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pareto_front(cost: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (less or equal cost and more gain, or
    equal gain and less cost), by increasing cost."""
    order = np.lexsort((-gain, cost))  # by cost, then best gain first
    front, best = [], -np.inf
    for index in order:
        if gain[index] > best:
            front.append(index)
            best = gain[index]
    return np.asarray(front, dtype=np.int64)


def configuration_labels(table: pd.DataFrame, group_by: Sequence[str]) -> list[str]:
    """One label per row of a grouped table: its settings, ``"a, b"``."""
    if not group_by:
        return ["all runs"] * len(table)
    return [", ".join(str(row[key]) for key in group_by) for _, row in table.iterrows()]


def metric_figure(table: pd.DataFrame, group_by: Sequence[str], metric: str) -> Figure:
    """Horizontal bars: ``metric``'s mean per configuration, its standard deviation as the
    error bar, best configuration on top."""
    import matplotlib.pyplot as plt

    order = table[f"{metric} mean"].to_numpy(dtype=float).argsort()[::-1]
    labels = configuration_labels(table, group_by)
    figure, axes = plt.subplots(figsize=(7, 0.9 + 0.35 * len(table)))
    positions = np.arange(len(table))
    axes.barh(
        positions,
        table[f"{metric} mean"].to_numpy(dtype=float)[order],
        xerr=table[f"{metric} std"].to_numpy(dtype=float)[order],
    )
    axes.set_yticks(positions, [labels[i] for i in order])
    axes.invert_yaxis()
    axes.set_xlabel(f"{metric} (mean ± std over runs)")
    figure.tight_layout()
    return figure


def accuracy_vs_time_figure(
    table: pd.DataFrame,
    group_by: Sequence[str],
    accuracy: str = "test/ndcg_10",
    time: str = "time/fit_s",
) -> Figure | None:
    """Accuracy against training time, one point per configuration (means), the Pareto front
    joined in red; ``None`` when the table lacks either metric."""
    import matplotlib.pyplot as plt

    if f"{accuracy} mean" not in table or f"{time} mean" not in table:
        return None
    cost = table[f"{time} mean"].to_numpy(dtype=float)
    gain = table[f"{accuracy} mean"].to_numpy(dtype=float)
    front = pareto_front(cost, gain)
    labels = configuration_labels(table, group_by)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.errorbar(
        cost,
        gain,
        xerr=table[f"{time} std"].to_numpy(dtype=float),
        yerr=table[f"{accuracy} std"].to_numpy(dtype=float),
        fmt="o",
        alpha=0.7,
        label="configurations (mean ± std)",
    )
    axes.plot(cost[front], gain[front], "r.-", label="Pareto front")
    for index, label in enumerate(labels):
        axes.annotate(label, (cost[index], gain[index]), fontsize=7)
    axes.set_xlabel(f"{time} (mean)")
    axes.set_ylabel(f"{accuracy} (mean)")
    axes.legend()
    figure.tight_layout()
    return figure


def plot(
    table: pd.DataFrame, group_by: Sequence[str], metrics: Sequence[str], folder: Path
) -> list[Path]:
    """PNG plots: each metric per configuration, and accuracy against time."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and in CI
    import matplotlib.pyplot as plt

    for old in [*folder.glob("*_by_*.png"), folder / "accuracy_vs_time.png"]:
        old.unlink(missing_ok=True)  # plots of an earlier grouping would mislead
    figures: dict[str, Figure | None] = {}
    suffix = "_".join(key.replace("/", "_") for key in group_by) or "all"
    for metric in [m for m in metrics if f"{m} mean" in table]:
        figures[f"{metric.replace('/', '_')}_by_{suffix}.png"] = metric_figure(
            table, group_by, metric
        )
    figures["accuracy_vs_time.png"] = accuracy_vs_time_figure(table, group_by)
    paths = []
    for name, figure in figures.items():
        if figure is not None:
            figure.savefig(folder / name, dpi=100)
            plt.close(figure)
            paths.append(folder / name)
    return paths


def load_runs(experiments: Sequence[str], tracking_uri: str | None = None) -> pd.DataFrame:
    """Finished job runs of these MLflow experiments (a study's and, say, its baseline's).

    Raises:
        ValueError: naming the experiments and the store when none of them has a finished run.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = mlflow_run.resolve_tracking_uri(tracking_uri)
    client = MlflowClient(uri)
    missing = [name for name in experiments if client.get_experiment_by_name(name) is None]
    if missing:
        raise ValueError(f"no experiment {', '.join(map(repr, missing))} in {uri}")
    mlflow.set_tracking_uri(uri)
    runs = job_runs(mlflow.search_runs(experiment_names=list(experiments)))
    if runs.empty:
        raise ValueError(f"no finished runs in {', '.join(map(repr, experiments))} at {uri}")
    return runs.reset_index(drop=True)


def _single_parent(runs: pd.DataFrame, experiment_id: str) -> str | None:
    """The sweep run that all runs of the first-named experiment belong to (the study's own;
    a baseline read beside it has sweeps of its own); ``None`` (and a note) when they span
    several sweeps or none, since the report would not describe any one sweep."""
    runs = runs[runs["experiment_id"] == experiment_id]
    column = runs.get("tags.mlflow.parentRunId", pd.Series(index=runs.index, dtype=object))
    parents = column.unique()
    if len(parents) == 1 and isinstance(parents[0], str):
        return str(parents[0])
    log.info("runs from %d sweeps (or none): report not logged to a sweep run", len(parents))
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rnnrec-report", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "experiments",
        nargs="+",
        metavar="EXPERIMENT",
        help="MLflow experiment names; several are read as one (a study and its baseline)",
    )
    parser.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or ./mlflow.db")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    parser.add_argument("--out", type=Path, help="default: reports/FIRST_EXPERIMENT")
    parser.add_argument(
        "--group-by",
        nargs="+",
        dest="group_by",
        help="settings to group by: config keys (encoder.hidden_size) or config groups (loss);\n"
        "default: those that differ among the runs, seeds excepted",
    )
    parser.add_argument(
        "--parent", help="sweep run to log the report to (default: the runs' one sweep run)"
    )
    parser.add_argument("--no-log", action="store_true", help="do not log to a sweep run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from mlflow.tracking import MlflowClient

    try:
        runs = load_runs(args.experiments, args.tracking_uri)
    except ValueError as error:
        print(f"rnnrec-report: {error}", file=sys.stderr)
        return 1
    client = MlflowClient(mlflow_run.resolve_tracking_uri(args.tracking_uri))
    group_by = args.group_by if args.group_by is not None else default_group_keys(runs)
    try:
        table = grouped_table(runs, group_by, args.metrics)
    except ValueError as error:
        print(f"rnnrec-report: {error}", file=sys.stderr)
        return 1

    text = markdown(table, args.metrics)
    print(text, end="")
    folder = args.out or Path("reports") / args.experiments[0]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(text)
    table.to_csv(folder / "report.csv", index=False)
    paths = [
        folder / "report.md",
        folder / "report.csv",
        *plot(table, group_by, args.metrics, folder),
    ]
    print(f"wrote {len(paths)} files to {folder}")

    first = client.get_experiment_by_name(args.experiments[0])
    assert first is not None  # load_runs checked that every experiment exists
    parent = args.parent or _single_parent(runs, first.experiment_id)
    if not args.no_log and parent:
        for path in paths:
            client.log_artifact(parent, str(path), artifact_path="report")
        print(f"logged to the sweep run {parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
