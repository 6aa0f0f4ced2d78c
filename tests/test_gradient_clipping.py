"""Gradient-norm clipping of dense and sparse gradients against torch's clip_grad_norm_."""

from __future__ import annotations

import torch

from rnnrec.optim.clipping import clip_grad_norm


def parameters(sparse: bool) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(0)
    table = torch.nn.Parameter(torch.zeros(5, 2))
    # Row 1 twice: an uncoalesced gradient, as an embedding lookup of a repeated item leaves.
    rows, values = torch.tensor([[1, 3, 1]]), torch.randn(3, 2, generator=generator)
    gradient = torch.sparse_coo_tensor(rows, values, (5, 2), check_invariants=True)
    table.grad = gradient if sparse else gradient.to_dense()
    bias = torch.nn.Parameter(torch.zeros(4))
    bias.grad = torch.randn(4, generator=generator)
    return [table, bias, torch.nn.Parameter(torch.zeros(2))]  # the last has no gradient


def dense(params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    return [p.grad.to_dense() for p in params if p.grad is not None]


def test_sparse_gradients_clip_like_their_dense_form_in_torch() -> None:
    ours, theirs = parameters(sparse=True), parameters(sparse=False)
    norm = clip_grad_norm(ours, 0.5)
    torch_norm = torch.nn.utils.clip_grad_norm_(theirs, 0.5)
    torch.testing.assert_close(norm, torch_norm)
    assert norm > 0.5  # so the gradients were scaled
    for mine, torch_grad in zip(dense(ours), dense(theirs), strict=True):
        torch.testing.assert_close(mine, torch_grad)


def test_gradients_within_the_limit_are_left_alone() -> None:
    params = parameters(sparse=True)
    before = dense(params)
    norm = clip_grad_norm(params, 1e6)
    for after, start in zip(dense(params), before, strict=True):
        torch.testing.assert_close(after, start)
    assert norm > 0
