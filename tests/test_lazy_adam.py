"""LazyAdam: Adam on dense gradients, and Adam on the touched rows only for sparse ones."""

from __future__ import annotations

import io

import pytest
import torch

from rnnrec.optim.lazy_adam import LazyAdam

SETTINGS = {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-6, "weight_decay": 0.1}


def table() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.randn(6, 3, generator=torch.Generator().manual_seed(0)))


def sparse(rows: list[int], values: torch.Tensor) -> torch.Tensor:
    """An uncoalesced sparse (6, 3) gradient: ``values[i]`` on row ``rows[i]``."""
    return torch.sparse_coo_tensor(torch.tensor([rows]), values, (6, 3), check_invariants=True)


def gradients(steps: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(6, 3, generator=generator) for _ in range(steps)]


def test_dense_gradients_get_adams_update_exactly() -> None:
    ours, theirs = table(), table()
    lazy, adam = LazyAdam([ours], **SETTINGS), torch.optim.Adam([theirs], **SETTINGS)
    for gradient in gradients(4):
        ours.grad, theirs.grad = gradient.clone(), gradient.clone()
        lazy.step()
        adam.step()
    assert torch.equal(ours, theirs)


def test_sparse_gradients_on_every_row_match_adam() -> None:
    ours, theirs = table(), table()
    lazy, adam = LazyAdam([ours], **SETTINGS), torch.optim.Adam([theirs], **SETTINGS)
    for gradient in gradients(4):
        ours.grad = gradient.to_sparse(sparse_dim=1)
        theirs.grad = gradient.clone()
        lazy.step()
        adam.step()
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(lazy.state[ours]["exp_avg_sq"], adam.state[theirs]["exp_avg_sq"])


def test_untouched_rows_keep_weights_and_moments() -> None:
    param = table()
    start = param.detach().clone()
    optimizer = LazyAdam([param], **SETTINGS)
    param.grad = sparse([1, 4], torch.ones(2, 3))
    optimizer.step()
    param.grad = sparse([4], torch.ones(1, 3))
    optimizer.step()
    untouched = [0, 2, 3, 5]
    assert torch.equal(param[untouched], start[untouched])
    assert not optimizer.state[param]["exp_avg"][untouched].any()
    # Row 1 moved once, by Adam's first step: lr * g' / (|g'| + eps) with g' = g + wd * p.
    g = 1.0 + 0.1 * start[1]
    first_step = 0.01 * g / (g.abs() + 1e-6)
    torch.testing.assert_close(param[1].detach(), start[1] - first_step)
    assert float(optimizer.state[param]["step"]) == 2.0


def test_repeated_rows_are_summed() -> None:
    repeated, summed = table(), table()
    one, other = LazyAdam([repeated], lr=0.1), LazyAdam([summed], lr=0.1)
    repeated.grad = sparse([2, 2], torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, 0.5]]))
    summed.grad = sparse([2], torch.tensor([[3.0, 0.0, -0.5]]))
    one.step()
    other.step()
    assert torch.equal(repeated, summed)
    # The gradient was put back after the step, as other optimizers leave it.
    assert repeated.grad is not None and repeated.grad.is_sparse


def test_dense_and_sparse_steps_share_one_step_count() -> None:
    param = table()
    start = param.detach().clone()
    optimizer = LazyAdam([param], lr=0.1, eps=1e-12)
    param.grad = torch.ones(6, 3)
    optimizer.step()  # every row: -0.1
    param.grad = sparse([0], torch.ones(1, 3))
    optimizer.step()  # row 0 again: with t = 2, both bias-corrected moments are 1, so -0.1
    assert float(optimizer.state[param]["step"]) == 2.0
    expected = start - 0.1
    expected[0] -= 0.1
    torch.testing.assert_close(param.detach(), expected)


def test_a_closure_runs_before_the_update() -> None:
    embedding = torch.nn.Embedding(6, 3, sparse=True)
    optimizer = LazyAdam(embedding.parameters(), lr=0.1)
    before = embedding.weight.detach().clone()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = embedding(torch.tensor([3])).sum()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert loss is not None
    changed = (embedding.weight != before).any(dim=1)
    assert changed.tolist() == [False, False, False, True, False, False]


def test_gradients_sparse_in_both_dimensions_are_refused() -> None:
    param = table()
    param.grad = torch.ones(6, 3).to_sparse()
    with pytest.raises(ValueError, match="over rows"):
        LazyAdam([param]).step()


def test_amsgrad_is_refused_for_sparse_gradients() -> None:
    param = table()
    optimizer = LazyAdam([param])
    optimizer.param_groups[0]["amsgrad"] = True
    param.grad = sparse([0], torch.ones(1, 3))
    with pytest.raises(ValueError, match="amsgrad"):
        optimizer.step()


def test_state_dict_round_trip_continues_exactly() -> None:
    rows = [[0, 2], [2, 5], [1, 2]]
    straight, resumed = table(), table()
    optimizer = LazyAdam([straight], **SETTINGS)
    for step_rows in rows:
        straight.grad = sparse(step_rows, torch.ones(2, 3))
        optimizer.step()
    first = LazyAdam([resumed], **SETTINGS)
    resumed.grad = sparse(rows[0], torch.ones(2, 3))
    first.step()
    # As a checkpoint does: the state through torch.save and a weights_only load.
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    second = LazyAdam([resumed], **SETTINGS)
    second.load_state_dict(state)
    for step_rows in rows[1:]:
        resumed.grad = sparse(step_rows, torch.ones(2, 3))
        second.step()
    assert torch.equal(straight, resumed)
