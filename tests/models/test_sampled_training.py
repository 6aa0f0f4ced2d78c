"""SequentialRecommender trained with sampled losses, and on session-parallel batches."""

from __future__ import annotations

import functools

import pytest
import torch

from rnnrec.losses.cross_entropy import FullSoftmaxCrossEntropy
from rnnrec.losses.sampled import BCE, BPR, GBCE, TOP1, BPRMax, SampledSoftmax, TOP1Max
from rnnrec.models.attention.dot import DotAttention
from rnnrec.models.encoders import RecurrentEncoder
from rnnrec.models.sequential import SequentialRecommender
from tests.models.test_sequential import batch
from tests.models.training import losses_over_steps

COUNTS = torch.ones(21, dtype=torch.long)

LOSSES = {
    "sampled_ce": lambda: SampledSoftmax(logq_correction=True),
    "bpr": BPR,
    "top1": TOP1,
    "bpr_max": lambda: BPRMax(bpreg=0.1),
    "top1_max": TOP1Max,
    "bce": BCE,
    "gbce": lambda: GBCE(t_calibration=0.5),
}


def model(loss: torch.nn.Module, cell: str = "gru", **options) -> SequentialRecommender:
    torch.manual_seed(0)
    return SequentialRecommender(
        num_items=20,
        encoder=functools.partial(RecurrentEncoder, cell=cell, hidden_size=12),
        loss=loss,
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        embedding_size=8,
        item_counts=COUNTS,
        **options,
    )


# TOP1's score regulariser sigmoid(n^2) is at least 1/2 for every negative.
FLOORS = {"top1": 0.5, "top1_max": 0.5}


@pytest.mark.filterwarnings("ignore:You are trying to")
@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("sampler", ["uniform", "mixed"])
def test_sampled_losses_train(name: str, sampler: str) -> None:
    settings = {"name": sampler, "num_negatives": 8, "alpha": 0.5, "seed": 0}
    recommender = model(LOSSES[name](), sampler=settings)
    before = recommender.score(batch()).detach()
    losses = losses_over_steps(recommender, batch(), steps=40)
    floor = FLOORS.get(name, 0.0)
    assert losses[-1] - floor < 0.7 * (losses[0] - floor)
    # The catalogue scores follow: the targets rank higher than before training.
    after = recommender.eval().score(batch()).detach()
    targets = torch.tensor([6, 10, 16])  # the next item after each row's last input
    rows = torch.arange(3)
    assert (after[rows, targets] - after[:, 1:].mean(1)).mean() > (
        before[rows, targets] - before[:, 1:].mean(1)
    ).mean()


def test_a_sampled_loss_needs_a_sampler_and_counts() -> None:
    with pytest.raises(ValueError, match="sampler"):
        model(BPR())
    with pytest.raises(ValueError, match="item_counts"):
        SequentialRecommender(
            num_items=20,
            encoder=functools.partial(RecurrentEncoder, cell="gru", hidden_size=12),
            loss=BPR(),
            optimizer=functools.partial(torch.optim.Adam, lr=0.01),
            sampler={"name": "uniform"},
        )


def test_full_softmax_ignores_the_sampler() -> None:
    recommender = model(FullSoftmaxCrossEntropy(), sampler={"name": "uniform"})
    assert recommender.sampled_objective is None


def session_model(cell: str = "gru", **options) -> SequentialRecommender:
    return model(FullSoftmaxCrossEntropy(), cell=cell, session_parallel=True, **options)


def step(inputs: list[int], resets: list[bool], targets: list[int]) -> dict[str, torch.Tensor]:
    return {
        "inputs": torch.tensor(inputs).unsqueeze(1),
        "targets": torch.tensor(targets),
        "resets": torch.tensor(resets),
        "lengths": torch.ones(len(inputs), dtype=torch.long),
    }


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("stage", ["train", "val"])
def test_a_slot_that_switches_session_starts_from_a_fresh_state(cell: str, stage: str) -> None:
    recommender = session_model(cell).train(stage == "train")  # no dropout: deterministic
    first, second = step([5, 7], [True, True], [6, 8]), step([6, 9], [False, True], [7, 10])
    recommender._states(first, None, stage)
    states = recommender._states(second, None, stage)[:, 0]  # (2, H)
    fresh = recommender.encode(torch.tensor([[9]]))[:, -1]  # session B's first event alone
    continued = recommender.encode(torch.tensor([[5, 6]]))[:, -1]  # slot 0 goes on
    assert torch.allclose(states[1], fresh[0], atol=1e-6)
    assert torch.allclose(states[0], continued[0], atol=1e-6)
    if stage == "val":
        scores = recommender.evaluation_scores(step([6, 9], [False, True], [7, 10]), "test")
        assert torch.allclose(scores[1], recommender.scorer(fresh)[0])


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_session_training_carries_the_state_without_its_history() -> None:
    recommender = session_model()
    optimizer = recommender.configure_optimizers()
    for inputs, resets, targets in (
        ([5, 7], [True, True], [6, 8]),
        ([6, 9], [False, True], [7, 10]),
    ):
        optimizer.zero_grad()
        batch_ = step(inputs, resets, targets)
        batch_["targets"] = batch_["targets"].unsqueeze(1)  # training targets are (B, 1)
        recommender.training_step(batch_, 0).backward()  # a second backward through batch 1
        optimizer.step()  # would fail if the carried state kept its graph


def test_session_data_refuses_parts_that_need_whole_sequences() -> None:
    with pytest.raises(ValueError, match="attention=none"):
        session_model(attention=DotAttention(12))
    masked = {"name": "uniform", "num_negatives": 4, "mask_input_items": True}
    with pytest.raises(ValueError, match="mask_input_items"):
        model(BPR(), session_parallel=True, sampler=masked)
