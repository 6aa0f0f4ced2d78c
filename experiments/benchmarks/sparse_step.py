"""Time the parts of a training step with dense and with sparse item-table gradients.

On a large catalogue most of a step goes to the item table: a dense gradient of every row
and an Adam update of every row, though a batch touches a few thousand. This script builds
the model of a benchmark data set of ``scale.py`` (by default the million-item synthetic
catalogue, sampled softmax) twice, once with ``optimizer=adam`` and dense gradients, once
with ``model.sparse_gradients=true optimizer=lazy_adam``, trains each for the same batches
and prints the median seconds of forward, backward, gradient clipping and optimiser step.

    .venv/bin/python experiments/benchmarks/sparse_step.py [--data synthetic_1m]
        [--steps 20] [-- OVERRIDES]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import DATASETS  # noqa: E402  (the benchmark data sets live there)

VARIANTS = {
    "dense, adam": ["optimizer=adam"],
    "sparse, lazy_adam": ["model.sparse_gradients=true", "optimizer=lazy_adam"],
}
PHASES = ("forward", "backward", "clip", "optimizer", "step")


def time_steps(data: str, variant: list[str], steps: int, overrides: list[str]) -> dict:
    """Median seconds per phase over ``steps`` training steps (after one warm-up step)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from rnnrec.optim.clipping import clip_grad_norm
    from rnnrec.train import CONFIG_DIR, build_model

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*DATASETS[data], *variant, *overrides])
    torch.manual_seed(cfg.seed)
    datamodule = instantiate(cfg.data)
    model = build_model(cfg.model, datamodule)
    model.train()
    optimizer = model.configure_optimizers()
    clip = float(cfg.trainer.gradient_clip_val)
    times: dict[str, list[float]] = {phase: [] for phase in PHASES}
    batches = iter(datamodule.train_dataloader())
    for index in range(steps + 1):
        batch = next(batches)
        started = time.perf_counter()
        loss = model.training_losses(batch)["total"]
        forward = time.perf_counter()
        loss.backward()
        backward = time.perf_counter()
        clip_grad_norm(model.parameters(), clip)  # the rule Lightning applies, sparse or not
        clipped = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        stepped = time.perf_counter()
        if index == 0:
            continue  # the first step allocates the optimiser's state
        times["forward"].append(forward - started)
        times["backward"].append(backward - forward)
        times["clip"].append(clipped - backward)
        times["optimizer"].append(stepped - clipped)
        times["step"].append(stepped - started)
    medians = {phase: statistics.median(values) for phase, values in times.items()}
    medians["loss"] = float(loss.detach())
    medians["items"] = datamodule.num_items
    medians["batch_positions"] = int((batch["inputs"] > 0).sum())
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="synthetic_1m", choices=sorted(DATASETS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both variants")
    args = parser.parse_args()
    rows = {
        name: time_steps(args.data, variant, args.steps, args.overrides)
        for name, variant in VARIANTS.items()
    }
    first = next(iter(rows.values()))
    print(
        f"{args.data}: {first['items']:,} items, {first['batch_positions']:,} positions in the "
        f"last batch, median of {args.steps} steps, {torch.get_num_threads()} threads"
    )
    print("| variant | " + " | ".join(f"{phase} s" for phase in PHASES) + " | last loss |")
    print("|---|" + "---|" * (len(PHASES) + 1))
    for name, row in rows.items():
        cells = " | ".join(f"{row[phase]:.3f}" for phase in PHASES)
        print(f"| {name} | {cells} | {row['loss']:.3f} |")


if __name__ == "__main__":
    main()
