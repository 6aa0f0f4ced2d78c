"""Loader settings that depend on where the trainer runs: pinned memory, evaluation shards.

Under several processes (DDP) Lightning gives each evaluation loader a
``DistributedSampler``, which pads the shards to equal length by repeating examples: users
would be counted twice and metrics would differ from a single process. :class:`EvaluationShard`
deals the examples out without padding; the ranking metrics sum over processes, so the
result is the single-process one exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from torch.utils.data import (
    BatchSampler,
    Dataset,
    DistributedSampler,
    Sampler,
    SequentialSampler,
)

if TYPE_CHECKING:
    import lightning.pytorch as pl


def pin_memory(setting: bool | None, trainer: pl.Trainer | None) -> bool:
    """Whether loaders pin their batches: ``setting``, or when ``None``, whether the trainer
    runs on a CUDA device (pinned host memory makes the copy to the GPU faster)."""
    if setting is not None:
        return bool(setting)
    return trainer is not None and trainer.strategy.root_device.type == "cuda"


def evaluation_sampler(
    num_examples: int, batch_size: int, trainer: pl.Trainer | None
) -> Sampler[list[int]]:
    """Batches of example indices in order; under several processes, this one's share."""
    if trainer is None or trainer.world_size <= 1:
        return BatchSampler(SequentialSampler(range(num_examples)), batch_size, False)
    return EvaluationShard(num_examples, batch_size, trainer.world_size, trainer.global_rank)


class EvaluationShard(DistributedSampler):
    """Batches of index lists over examples ``rank, rank + W, rank + 2W, ...`` (W processes).

    A ``DistributedSampler`` subclass, so that Lightning keeps it instead of wrapping the
    loader's sampler in its padding one. Shards differ in length by at most one example,
    and every process gets at least one batch (needed by DDP, which synchronises module
    buffers on a process's first evaluation step).

    Args:
        num_examples: evaluation examples in all.
        batch_size: examples per batch.
        num_replicas: processes W.
        rank: this process, 0..W-1.
    """

    def __init__(self, num_examples: int, batch_size: int, num_replicas: int, rank: int) -> None:
        if batch_size < 1:
            raise ValueError(f"data.eval_batch_size must be positive, got {batch_size}")
        if num_examples < num_replicas:
            raise ValueError(
                f"{num_examples} evaluation examples cannot be shared by {num_replicas} "
                "processes (each needs at least one): use fewer devices"
            )
        # DistributedSampler only asks the dataset for its length.
        examples = cast("Dataset[int]", range(num_examples))
        super().__init__(examples, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.batch_size = batch_size
        self.indices = range(rank, num_examples, num_replicas)
        self.num_samples = len(self.indices)
        self.total_size = num_examples

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        for begin in range(0, len(self.indices), self.batch_size):
            yield list(self.indices[begin : begin + self.batch_size])

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)
