"""Benchmark of the default model: epoch time, evaluation time, peak memory and accuracy.

Runs the default config on MovieLens-100K and, when the benchmark data is present, on
SASRec's ML-1M, each in its own process so peak memory is per data set. Runs are logged to
MLflow (experiment ``benchmark``) like any other run.

    .venv/bin/python experiments/benchmarks/foundation.py [--data ml100k ml1m] [-- OVERRIDES]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KEYS = ("time/epoch_s", "train/epochs", "time/fit_s", "time/test_s", "test/ndcg_10", "test/hr_10")


def run_one(data: str, overrides: list[str]) -> dict[str, float]:
    """Train and evaluate in this process; returns the run's metrics and peak memory."""
    from hydra import compose, initialize_config_dir

    from rnnrec.train import CONFIG_DIR, train

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"data={data}",
                "logger.experiment_name=benchmark",
                f"paths.output_dir={REPO / 'outputs' / 'benchmark' / data}",
                "trainer.enable_progress_bar=false",
                *overrides,
            ],
        )
    results, run_id = train(cfg)
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["run_id"] = run_id  # type: ignore[assignment]
    return results


def data_present(data: str) -> bool:
    if data == "ml100k":
        return True
    root = Path(os.environ.get("RNNREC_DATA_DIR", REPO.parent / "shared" / "data"))
    files = {"ml1m": "movielens-1m/sasrec/ml-1m.txt", "beauty": "s3rec-amazon-beauty/Beauty.txt"}
    return (root / files[data]).exists()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", nargs="+", default=["ml100k", "ml1m"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args()

    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args.overrides)))
        return

    rows = []
    for data in args.data:
        if not data_present(data):
            print(f"{data}: data not found (set RNNREC_DATA_DIR); skipped")
            continue
        done = subprocess.run(
            [sys.executable, __file__, "--one", data, "--", *args.overrides],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            print(done.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"{data}: run failed")
        rows.append((data, json.loads(lines[-1][len("RESULT ") :])))

    header = ["data", "epoch s", "epochs", "fit s", "full eval s", "peak MB", "NDCG@10", "HR@10"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for data, r in rows:
        cells = [
            data,
            f"{r['time/epoch_s']:.2f}",
            f"{r['train/epochs']:.0f}",
            f"{r['time/fit_s']:.0f}",
            f"{r['time/test_s']:.2f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['test/ndcg_10']:.4f}",
            f"{r['test/hr_10']:.4f}",
        ]
        print("| " + " | ".join(cells) + " |")
    print(f"(keys: {', '.join(KEYS)}; run ids: {', '.join(r['run_id'] for _, r in rows)})")


if __name__ == "__main__":
    main()
