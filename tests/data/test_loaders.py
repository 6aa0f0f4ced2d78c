"""Loader settings that depend on the trainer: evaluation shards under DDP, pinned memory."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from torch.utils.data import BatchSampler, DistributedSampler, SequentialSampler

from rnnrec.data.loaders import EvaluationShard, evaluation_sampler, pin_memory


def shards(sampler_of_rank, world_size: int) -> list[list[int]]:
    """Every index that each process evaluates, in its order."""
    return [[i for batch in sampler_of_rank(rank) for i in batch] for rank in range(world_size)]


@pytest.mark.parametrize("world_size", [2, 3])
def test_each_example_is_evaluated_by_exactly_one_process(world_size):
    def sampler_of_rank(rank):
        trainer = SimpleNamespace(world_size=world_size, global_rank=rank)
        sampler = evaluation_sampler(11, 3, trainer)  # type: ignore[arg-type]
        # Lightning keeps a loader's DistributedSampler instead of injecting its own.
        assert isinstance(sampler, DistributedSampler)
        assert len(sampler) == len(list(sampler))
        assert all(len(batch) <= 3 for batch in sampler)
        return sampler

    parts = shards(sampler_of_rank, world_size)
    assert sorted(i for part in parts for i in part) == list(range(11))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_lightnings_default_wrapper_would_count_a_batch_twice():
    # What Lightning injects for a loader whose sampler yields batches: padded shards.
    batches = BatchSampler(SequentialSampler(range(11)), 4, False)  # 3 batches for 2 processes
    parts = shards(
        lambda rank: DistributedSamplerWrapper(batches, num_replicas=2, rank=rank, shuffle=False),
        2,
    )
    seen = [i for part in parts for i in part]
    assert len(seen) > len(set(seen)) == 11


def test_one_process_gets_every_batch_in_order():
    sampler = evaluation_sampler(5, 2, None)
    assert list(sampler) == [[0, 1], [2, 3], [4]]
    one = SimpleNamespace(world_size=1, global_rank=0)
    assert list(evaluation_sampler(5, 2, one)) == [[0, 1], [2, 3], [4]]  # type: ignore[arg-type]


def test_fewer_examples_than_processes_is_refused():
    with pytest.raises(ValueError, match="3 evaluation examples cannot be shared by 4 processes"):
        EvaluationShard(3, 2, num_replicas=4, rank=0)


def test_memory_is_pinned_on_cuda_unless_set():
    def on(device: str) -> SimpleNamespace:
        return SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)))

    assert pin_memory(None, on("cuda")) is True  # type: ignore[arg-type]
    assert pin_memory(None, on("cpu")) is False  # type: ignore[arg-type]
    assert pin_memory(None, None) is False
    assert pin_memory(False, on("cuda")) is False  # type: ignore[arg-type]
    assert pin_memory(True, None) is True
