"""model.sparse_gradients: the item tables' gradients cover the batch's rows only, and equal
the dense gradients on those rows."""

from __future__ import annotations

import functools
import types

import pytest
import torch

from rnnrec.losses.cross_entropy import FullSoftmaxCrossEntropy
from rnnrec.losses.sampled import SampledSoftmax
from rnnrec.models.encoders import RecurrentEncoder
from rnnrec.models.sequential import SequentialRecommender
from rnnrec.optim.lazy_adam import LazyAdam
from tests.models.test_sequential import batch
from tests.models.training import losses_over_steps

SAMPLER = {"name": "uniform", "num_negatives": 4, "alpha": 0.0, "seed": 0}


def model(
    sparse: bool, tie_weights: bool = True, loss: torch.nn.Module | None = None, optimizer=None
) -> SequentialRecommender:
    torch.manual_seed(0)
    return SequentialRecommender(
        num_items=40,
        encoder=functools.partial(RecurrentEncoder, cell="gru", hidden_size=8),
        loss=loss if loss is not None else SampledSoftmax(),
        optimizer=optimizer or functools.partial(LazyAdam, lr=0.02),
        embedding_size=8,
        tie_weights=tie_weights,
        sampler=SAMPLER,
        item_counts=torch.ones(41, dtype=torch.long),
        sparse_gradients=sparse,
    )


def gradients(recommender: SequentialRecommender) -> dict[str, torch.Tensor]:
    recommender.zero_grad()
    recommender.training_step(batch(), 0).backward()
    return {name: p.grad for name, p in recommender.named_parameters() if p.grad is not None}


@pytest.mark.filterwarnings("ignore:You are trying to")
@pytest.mark.parametrize("tie_weights", [True, False], ids=["tied", "untied"])
def test_sparse_gradients_equal_the_dense_ones(tie_weights: bool) -> None:
    dense = gradients(model(sparse=False, tie_weights=tie_weights))
    sparse = gradients(model(sparse=True, tie_weights=tie_weights))
    assert dense.keys() == sparse.keys()
    tables = {"item_embedding.weight"} | (set() if tie_weights else {"scorer.weight"})
    for name, gradient in sparse.items():
        assert gradient.is_sparse == (name in tables), name
        torch.testing.assert_close(gradient.to_dense(), dense[name])
    # Only the rows of the batch's inputs, targets and 4 negatives carry a gradient.
    rows = sparse["item_embedding.weight"].coalesce().indices()[0]
    assert 0 < len(rows) <= 16 + 4


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_full_softmax_leaves_the_tied_table_a_dense_gradient() -> None:
    recommender = model(sparse=True, loss=FullSoftmaxCrossEntropy())
    assert not gradients(recommender)["item_embedding.weight"].is_sparse
    losses = losses_over_steps(recommender, batch(), steps=30)
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_lazy_adam_trains_the_sparse_model() -> None:
    recommender = model(sparse=True)
    targets = torch.tensor([6, 10, 16])  # the next item after each row's last input
    before = recommender.score(batch()).detach()
    losses = losses_over_steps(recommender, batch(), steps=40)
    assert losses[-1] < 0.5 * losses[0]
    after = recommender.eval().score(batch()).detach()

    # Each target now ranks among the top 5 of the 40 items; at the start none did.
    def target_ranks(scores: torch.Tensor) -> torch.Tensor:
        return (scores > scores[torch.arange(3), targets].unsqueeze(1)).sum(dim=1)

    assert (target_ranks(after) < 5).all(), target_ranks(after)
    assert (target_ranks(before) >= 5).all(), target_ranks(before)


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_clipping_takes_the_sparse_gradients() -> None:
    recommender = model(sparse=True)
    optimizer = recommender.configure_optimizers()
    grads = gradients(recommender)
    before = torch.linalg.vector_norm(
        torch.stack(
            [
                torch.linalg.vector_norm(g.coalesce().values() if g.is_sparse else g)
                for g in grads.values()
            ]
        )
    )
    assert before > 1e-3
    recommender.configure_gradient_clipping(optimizer, 1e-3, "norm")
    after = [p.grad for p in recommender.parameters() if p.grad is not None]
    norms = [torch.linalg.vector_norm(g.values() if g.is_sparse else g) for g in after]
    torch.testing.assert_close(torch.linalg.vector_norm(torch.stack(norms)), torch.tensor(1e-3))
    with pytest.raises(ValueError, match="gradient_clip_algorithm=value"):
        recommender.configure_gradient_clipping(optimizer, 1.0, "value")


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        (functools.partial(torch.optim.Adam, lr=0.01), "optimizer=lazy_adam"),
        (functools.partial(torch.optim.Adagrad, weight_decay=0.1), "optimizer.weight_decay=0"),
    ],
    ids=["adam", "adagrad-weight-decay"],
)
def test_optimizers_without_sparse_support_are_refused(optimizer, message: str) -> None:
    with pytest.raises(ValueError, match="model.sparse_gradients=true") as error:
        model(sparse=True, optimizer=optimizer).configure_optimizers()
    assert message in str(error.value)


def test_plain_sgd_and_adagrad_are_accepted() -> None:
    for optimizer in (torch.optim.SGD, torch.optim.Adagrad):
        built = model(sparse=True, optimizer=functools.partial(optimizer, lr=0.01))
        assert isinstance(built.configure_optimizers(), optimizer)


def test_several_processes_are_refused() -> None:
    recommender = model(sparse=True)
    recommender._trainer = types.SimpleNamespace(world_size=2)  # what trainer=ddp would attach
    with pytest.raises(ValueError, match="one process only"):
        recommender.configure_optimizers()


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_sgd_momentum_keeps_one_row_per_item() -> None:
    recommender = model(sparse=True, optimizer=functools.partial(torch.optim.SGD, lr=0.01))
    optimizer = recommender.configure_optimizers()
    optimizer.param_groups[0]["momentum"] = 0.9
    for _ in range(30):
        optimizer.zero_grad()
        recommender.training_step(batch(), 0).backward()
        recommender.on_before_optimizer_step(optimizer)  # as Lightning calls it
        optimizer.step()
    buffer = optimizer.state[recommender.item_embedding.weight]["momentum_buffer"]
    # Unmerged, the repeated rows of each step's lookups pile up past the table's 41 rows.
    assert buffer._nnz() <= 41


def test_a_momentum_setting_is_named_when_refused() -> None:
    from rnnrec.optim.adagrad_momentum import AdagradMomentum

    optimizer = functools.partial(AdagradMomentum, lr=0.05, momentum=0.7)
    with pytest.raises(ValueError, match="~optimizer.momentum"):
        model(sparse=True, optimizer=optimizer).configure_optimizers()
