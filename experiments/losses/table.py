"""Print a markdown table of the loss and sampler runs of one MLflow experiment.

    .venv/bin/python experiments/losses/table.py loss-grid-ml100k [--tracking-uri URI]

One row per finished run, best test NDCG@10 first: loss, sampler, test NDCG@10 and HR@10
with the run's ranking protocol, NDCG@10 with the other protocol, median epoch time, epochs.
"""

from __future__ import annotations

import argparse
import sys

import mlflow
import pandas as pd

from rnnrec.report import job_runs
from rnnrec.tracking.mlflow_run import resolve_tracking_uri
from rnnrec.train import SAMPLED_LOSS_NAMES

COLUMNS = {
    "params.loss._target_": "loss",
    "params.sampler.name": "sampler",
    "params.sampler.num_negatives": "negatives",
    "params.eval.exclude_seen": "seen excluded",
    "metrics.test/ndcg_10": "NDCG@10",
    "metrics.test/hr_10": "HR@10",
    "metrics.test/mrr_20": "MRR@20",
    "metrics.test/hr_20": "HR@20",
    "metrics.time/epoch_s": "epoch s",
    "metrics.train/epochs": "epochs",
}
OTHER = ("metrics.test_seen_included/ndcg_10", "metrics.test_seen_excluded/ndcg_10")


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """The printed columns of finished runs, best test NDCG@10 first."""
    runs = job_runs(runs).reindex(columns=[*runs.columns, *COLUMNS])
    runs = runs.loc[:, ~runs.columns.duplicated()]
    out = runs[list(COLUMNS)].rename(columns=COLUMNS)
    # Config names (ce, sampled_ce, bpr_max, ...) rather than class names.
    names = {"FullSoftmaxCrossEntropy": "ce", **SAMPLED_LOSS_NAMES}
    out["loss"] = out["loss"].str.rsplit(".", n=1).str[-1].map(lambda c: names.get(c, c))
    other = [c for c in OTHER if c in runs]
    out["NDCG@10, other protocol"] = runs[other].bfill(axis=1).iloc[:, 0] if other else None
    # A loss over the whole catalogue samples nothing.
    out.loc[out["loss"] == "ce", ["sampler", "negatives"]] = "-"
    out.loc[out["sampler"] == "in_batch", "negatives"] = "batch"
    return out.sort_values("NDCG@10", ascending=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("experiment")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args()
    mlflow.set_tracking_uri(resolve_tracking_uri(args.tracking_uri))
    runs = mlflow.search_runs(experiment_names=[args.experiment])
    if runs.empty:
        raise SystemExit(f"no runs in experiment {args.experiment!r}")
    sys.stdout.write(markdown(table(runs)))


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub markdown table; floats with 4 decimals (times with 1, epochs with none)."""

    def cell(column: str, value: object) -> str:
        if isinstance(value, float):
            if pd.isna(value):
                return "-"
            digits = {"epoch s": 1, "epochs": 0}.get(column, 4)
            return f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(cell(c, row[c]) for c in frame.columns) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
