"""Adagrad with momentum against hand-computed steps, and against torch's Adagrad."""

from __future__ import annotations

import math

import pytest
import torch

from rnnrec.optim.adagrad_momentum import AdagradMomentum


def run(optimizer_factory, gradients: list[float]) -> list[float]:
    param = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = optimizer_factory([param])
    values = []
    for gradient in gradients:
        param.grad = torch.tensor([gradient])
        optimizer.step()
        values.append(param.item())
    return values


def test_two_steps_by_hand() -> None:
    values = run(lambda p: AdagradMomentum(p, lr=0.1, momentum=0.5, eps=1e-6), [2.0, 1.0])
    first = -0.1 * 2.0 / math.sqrt(4.0 + 1e-6)
    second = 0.5 * first - 0.1 * 1.0 / math.sqrt(5.0 + 1e-6)
    assert values == pytest.approx([1.0 + first, 1.0 + first + second], rel=1e-6)


def test_without_momentum_it_is_adagrad() -> None:
    gradients = [0.5, -1.0, 2.0, 0.1]
    ours = run(lambda p: AdagradMomentum(p, lr=0.1, momentum=0.0, eps=1e-12), gradients)
    # torch adds eps after the square root; with a tiny eps the two agree.
    theirs = run(lambda p: torch.optim.Adagrad(p, lr=0.1, eps=1e-12), gradients)
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_bad_settings_name_the_setting() -> None:
    param = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ValueError, match="optimizer.momentum"):
        AdagradMomentum(param, momentum=1.0)
    with pytest.raises(ValueError, match="optimizer.lr"):
        AdagradMomentum(param, lr=0.0)
