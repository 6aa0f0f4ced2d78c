"""Scale benchmark: speed, memory and accuracy of one training run per data set, in one table.

For each data set, in a process of its own (so peak memory is per data set): preprocessing
time and peak memory against the size of the interaction arrays, then ``rnnrec-train`` for
a few epochs (logged to MLflow, experiment ``benchmark-scale``): median training-epoch
time, training throughput (target positions per second), the share of each epoch spent
waiting for batches, full-evaluation time of the test users and users per second, peak
memory and test NDCG@10. Last, the floor that evaluation is judged against: a bare
``matmul`` of random user vectors against the item table plus ``topk``, in the same item
blocks, for as many users.

Data sets: ``ml100k`` (shipped), ``ml1m`` (SASRec's file under ``$RNNREC_DATA_DIR``, skipped
when absent) and ``synthetic_1m`` (1,000,000 items, about 10,000,000 interactions, sampled
softmax, evaluation in blocks of 65,536 items).

    .venv/bin/python experiments/benchmarks/scale.py [--data ml100k ml1m synthetic_1m]
        [--epochs 2] [-- OVERRIDES]

The overrides go to every run; ``-- model.sparse_gradients=true optimizer=lazy_adam`` trains
the item tables with sparse gradients (``sparse_step.py`` times the parts of such a step).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Hydra overrides per data set; --epochs and the command line's overrides come after them.
DATASETS: dict[str, list[str]] = {
    "ml100k": ["data=ml100k"],
    "ml1m": ["data=ml1m"],
    # 20,000 users with 400 to 600 interactions each over a million items. Long sequences
    # keep the test users (one per user) few enough that full ranking of the catalogue fits
    # in minutes on 2 cores; training still sees every one of the 10 million positions.
    "synthetic_1m": [
        "data=synthetic",
        "data.generator.num_users=20000",
        "data.generator.num_items=1000000",
        "data.generator.min_length=400",
        "data.generator.max_length=600",
        "data.batch_size=256",
        "loss=sampled_ce",
        "sampler=uniform",
        "sampler.num_negatives=2048",
        "eval.item_block_size=65536",
    ],
}
FILES = {"ml1m": "movielens-1m/sasrec/ml-1m.txt"}


def peak_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def floor_seconds(users: int, embedding: int, items: int, block: int | None, k: int) -> float:
    """Seconds for ``users`` random queries against an ``items`` x ``embedding`` table:
    matmul and top-k per block of items, merged into one top-k per user."""
    import torch

    generator = torch.Generator().manual_seed(0)
    table = torch.randn(items, embedding, generator=generator)  # (N, E)
    width = block or items
    started = time.perf_counter()
    for first in range(0, users, 512):
        queries = torch.randn(min(512, users - first), embedding, generator=generator)
        best = torch.full((queries.shape[0], k), float("-inf"))  # (B, k)
        for start in range(0, items, width):
            scores = queries @ table[start : start + width].T  # (B, block)
            top = scores.topk(min(k, scores.shape[1]), dim=1).values
            best = torch.cat([best, top], dim=1).topk(k, dim=1).values
    return time.perf_counter() - started


def run_one(data: str, epochs: int, overrides: list[str]) -> dict[str, float]:
    """Preprocess, train and evaluate one data set in this process."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from rnnrec.train import CONFIG_DIR, train

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                *DATASETS[data],
                f"trainer.max_epochs={epochs}",
                "trainer.enable_progress_bar=false",
                "logger.experiment_name=benchmark-scale",
                f"paths.output_dir={REPO / 'outputs' / 'benchmark-scale' / data}",
                # Measure preprocessing itself, not a cache hit.
                f"paths.cache_dir={REPO / 'outputs' / 'benchmark-scale' / 'cache' / data}",
                *overrides,
            ],
        )
    out: dict[str, float] = {"baseline_mb": peak_mb()}

    started = time.perf_counter()
    datamodule = instantiate(cfg.data)
    datamodule.load()
    out["preprocess_s"] = time.perf_counter() - started
    out["preprocess_peak_mb"] = peak_mb()
    arrays = datamodule.interactions
    out["interactions"] = float(len(arrays.item))
    out["data_mb"] = sum(
        getattr(arrays, name).nbytes / 2**20
        for name in ("user", "item", "timestamp")
        if getattr(arrays, name, None) is not None
    )
    out["items"] = float(datamodule.num_items)
    out["positions_per_epoch"] = float(datamodule.train_lengths.sum())
    out["test_users"] = float(len(datamodule.test_dataloader().dataset))
    del datamodule, arrays

    results, run_id = train(cfg)
    out.update(results)
    out["peak_mb"] = peak_mb()
    out["run_id"] = run_id  # type: ignore[assignment]
    out["floor_s"] = floor_seconds(
        int(out["test_users"]),
        int(cfg.model.embedding_size),
        int(out["items"]) + 1,
        cfg.eval.get("item_block_size"),
        max(cfg.eval.ks),
    )
    return out


def present(data: str) -> bool:
    if data not in FILES:
        return True
    root = Path(os.environ.get("RNNREC_DATA_DIR", REPO.parent / "shared" / "data"))
    return (root / FILES[data]).exists()


def table(rows: list[tuple[str, dict[str, float]]]) -> str:
    header = [
        "data",
        "items",
        "interactions",
        "prep s",
        "prep peak MB (data MB)",
        "epoch s",
        "positions/s",
        "data wait",
        "full eval s",
        "users/s",
        "matmul+topk s",
        "peak MB",
        "NDCG@10 (epochs)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for data, r in rows:
        wait = r.get("time/data_wait_share")
        cells = [
            data,
            f"{r['items']:,.0f}",
            f"{r['interactions']:,.0f}",
            f"{r['preprocess_s']:.1f}",
            f"{r['preprocess_peak_mb'] - r['baseline_mb']:.0f} ({r['data_mb']:.0f})",
            f"{r['time/epoch_s']:.1f}",
            f"{r['positions_per_epoch'] / r['time/epoch_s']:,.0f}",
            "-" if wait is None else f"{100 * wait:.1f}%",
            f"{r['time/test_s']:.1f}",
            f"{r['test_users'] / r['time/test_s']:,.0f}",
            f"{r['floor_s']:.1f}",
            f"{r['peak_mb']:.0f}",
            f"{r['test/ndcg_10']:.4f} ({r['train/epochs']:.0f})",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per data set")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args()

    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args.epochs, args.overrides)))
        return

    rows = []
    for data in args.data:
        if not present(data):
            print(f"{data}: data not found (set RNNREC_DATA_DIR); skipped")
            continue
        rows.append((data, measure(data, args.epochs, args.overrides)))
        print(f"{data}: done, MLflow run {rows[-1][1]['run_id']}", flush=True)

    print(table(rows))
    print(LEGEND)


LEGEND = (
    "prep peak MB: peak memory growth while reading, preprocessing and splitting, beside "
    "the size of the interaction arrays; full eval s: the test users, both protocols; "
    "data wait: share of each training epoch spent waiting for the next batch."
)


def measure(data: str, epochs: int, overrides: list[str]) -> dict[str, float]:
    """:func:`run_one` in a fresh process, so that its peak memory is its own."""
    command = [sys.executable, __file__, "--one", data, "--epochs", str(epochs)]
    done = subprocess.run([*command, "--", *overrides], cwd=REPO, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{data}: run failed")
    result: dict[str, float] = json.loads(lines[-1][len("RESULT ") :])
    return result


if __name__ == "__main__":
    main()
