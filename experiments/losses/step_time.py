"""Training-step time of full softmax against sampled losses, measured side by side.

Builds the models of each loss on one data set and times their training steps in
interleaved rounds (model A, B, C, A, B, C, ...), so that other load on the machine slows
every model alike. Prints the median step time and the projected epoch time.

    .venv/bin/python experiments/losses/step_time.py [--data ml1m] [--steps 20] \
        [--variant ce] [--variant "loss=sampled_ce sampler.num_negatives=256"] ...
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from rnnrec.train import CONFIG_DIR, build_model

DEFAULT_VARIANTS = [
    "loss=ce",
    "loss=sampled_ce sampler.num_negatives=256",
    "loss=sampled_ce sampler.num_negatives=2048",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="ml1m")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--variant", action="append", help="Hydra overrides, space-separated")
    args = parser.parse_args()
    variants = args.variant or DEFAULT_VARIANTS

    models, datamodule = [], None
    for variant in variants:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(
                "train", overrides=[f"data={args.data}", "paths.output_dir=.", *variant.split()]
            )
        if datamodule is None:
            datamodule = instantiate(cfg.data)
            datamodule.load()
        torch.manual_seed(0)
        model = build_model(cfg.model, datamodule)
        models.append((model, model.configure_optimizers()))
    assert datamodule is not None
    batches = iter(datamodule.train_dataloader())
    steps_per_epoch = len(datamodule.train_dataloader())

    seconds: list[list[float]] = [[] for _ in variants]
    for step in range(args.steps + 2):
        batch = next(batches)
        for index, (model, optimizer) in enumerate(models):
            started = time.perf_counter()
            optimizer.zero_grad()
            model.training_losses(batch)["total"].backward()
            optimizer.step()
            if step >= 2:  # the first steps warm up allocators and caches
                seconds[index].append(time.perf_counter() - started)

    print(f"data {args.data}: {steps_per_epoch} steps per epoch, {torch.get_num_threads()} threads")
    print("| variant | median step s | projected epoch s |")
    print("|---|---:|---:|")
    for variant, times in zip(variants, seconds, strict=True):
        median = statistics.median(times)
        print(f"| {variant} | {median:.3f} | {median * steps_per_epoch:.1f} |")


if __name__ == "__main__":
    main()
