"""Peak memory and time of one test batch, whole catalogue against blocks of items.

An untrained GRU model (no data file needed) scores a batch of random histories over a
large catalogue, once per setting of ``eval.item_block_size``, each in its own process so
peak memory is per setting. Both test protocols (seen items excluded and kept) are
computed, as in ``rnnrec-train``. Random targets rank anywhere, so the metrics compared are
at cut-offs up to half the catalogue, where NDCG depends on almost every target's rank.

    .venv/bin/python experiments/benchmarks/blocked_evaluation.py [--items 200000]
        [--batch 512] [--blocks none 65536 8192]
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import time


def run_one(items: int, batch_size: int, block: int | None) -> dict[str, float]:
    """One test step in this process; its time, peak-memory growth and metrics."""
    import torch

    from rnnrec.losses.cross_entropy import FullSoftmaxCrossEntropy
    from rnnrec.models.encoders import RecurrentEncoder
    from rnnrec.models.sequential import SequentialRecommender

    torch.manual_seed(0)
    model = SequentialRecommender(
        num_items=items,
        encoder=functools.partial(RecurrentEncoder, cell="gru", hidden_size=64),
        loss=FullSoftmaxCrossEntropy(),
        optimizer=functools.partial(torch.optim.Adam),
        embedding_size=64,
        tie_weights=True,
        item_block_size=block,
        ks=(10, items // 100, items // 2),
    ).eval()
    length = 50
    inputs = torch.randint(1, items + 1, (batch_size, length))  # (B, T)
    batch = {
        "inputs": inputs,
        "lengths": torch.full((batch_size,), length),
        "targets": torch.randint(1, items + 1, (batch_size,)),
        "users": torch.arange(1, batch_size + 1),
        "seen_example": torch.arange(batch_size).repeat_interleave(length),
        "seen_items": inputs.flatten(),
    }
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    with torch.no_grad():
        model.test_step(batch, 0)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    metrics = {f"test/{k}": float(v) for k, v in model.test_metrics.compute().items()}
    other = model.test_metrics_other_protocol.compute().items()
    metrics.update({f"kept/{k}": float(v) for k, v in other})
    return {"seconds": seconds, "peak_growth_mb": after - before, **metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--blocks", nargs="+", default=["none", "65536", "8192"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        block = None if args.one == "none" else int(args.one)
        json.dump(run_one(args.items, args.batch, block), sys.stdout)
        return

    rows = {}
    for block in args.blocks:
        command = [sys.executable, __file__, "--items", str(args.items)]
        command += ["--batch", str(args.batch), "--one", block]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows[block] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{args.batch} users x {args.items} items, both test protocols")
    key = f"ndcg_{args.items // 2}"
    print(f"{'item_block_size':>16} {'seconds':>8} {'peak MB':>8} {key:>12} {'seen kept':>12}")
    for block, row in rows.items():
        print(
            f"{block:>16} {row['seconds']:8.2f} {row['peak_growth_mb']:8.0f} "
            f"{row[f'test/{key}']:12.9f} {row[f'kept/{key}']:12.9f}"
        )
    reference = next(iter(rows.values()))
    same = all(
        {k: v for k, v in row.items() if "/" in k}
        == {k: v for k, v in reference.items() if "/" in k}
        for row in rows.values()
    )
    print("metrics identical in every setting:", same)


if __name__ == "__main__":
    main()
