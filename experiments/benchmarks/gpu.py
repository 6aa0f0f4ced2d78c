"""Check and time the GPU path: the same runs on the CPU and on one CUDA GPU (bf16-mixed).

For each data set, :mod:`scale`'s measurement runs twice, with ``trainer=cpu`` and with
``trainer=gpu`` (bfloat16 mixed precision, pinned loader memory); the table shows both rows
and the check fails when the GPU run's test NDCG@10 is more than ``--tolerance`` (relative)
away from the CPU run's, since bfloat16 changes the arithmetic but should not change what
the model learns. Exits with a message, and status 2, on a machine without CUDA.

    .venv/bin/python experiments/benchmarks/gpu.py [--data ml100k synthetic_1m] [--epochs 2]
"""

from __future__ import annotations

import argparse
import sys

import torch
from scale import DATASETS, LEGEND, measure, present, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", nargs="+", default=["ml100k"], choices=list(DATASETS))
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per run")
    parser.add_argument("--tolerance", type=float, default=0.1, help="relative NDCG@10 gap")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here (or torch is a CPU build): nothing to check", file=sys.stderr)
        raise SystemExit(2)
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)

    rows, gaps = [], []
    for data in args.data:
        if not present(data):
            print(f"{data}: data not found (set RNNREC_DATA_DIR); skipped")
            continue
        cpu = measure(data, args.epochs, ["trainer=cpu", *args.overrides])
        gpu = measure(data, args.epochs, ["trainer=gpu", *args.overrides])
        rows += [(f"{data} cpu", cpu), (f"{data} gpu bf16", gpu)]
        gap = abs(gpu["test/ndcg_10"] - cpu["test/ndcg_10"]) / max(cpu["test/ndcg_10"], 1e-12)
        gaps.append((data, gap))
        print(
            f"{data}: epoch {cpu['time/epoch_s']:.2f} s on CPU, {gpu['time/epoch_s']:.2f} s "
            f"on GPU; NDCG@10 gap {100 * gap:.1f}%",
            flush=True,
        )

    print(table(rows))
    print(LEGEND)
    failed = [data for data, gap in gaps if gap > args.tolerance]
    if failed:
        raise SystemExit(f"GPU and CPU test NDCG@10 differ by more than the tolerance: {failed}")


if __name__ == "__main__":
    main()
