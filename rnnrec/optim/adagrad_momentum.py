"""Adagrad with a momentum term, the optimizer of the GRU4Rec recipe.

``torch.optim.Adagrad`` has no momentum. GRU4Rec's update is Adagrad's per-coordinate step,
lr * g / sqrt(sum of g^2 + eps), fed into a velocity with momentum:

    a <- a + g^2
    v <- momentum * v - lr * g / sqrt(a + eps)
    p <- p + v

With momentum 0 this is plain Adagrad (eps inside the square root).

Unlike GRU4Rec, which updates only the embedding rows a batch touches, this optimizer works on
dense gradients: a row without gradient keeps its accumulator but still moves by its decaying
velocity. It does not take the sparse gradients of ``model.sparse_gradients=true``; a
row-wise version would keep a velocity per row and decay it only when the row is touched,
which changes the update, so it was left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


class AdagradMomentum(torch.optim.Optimizer):
    """Adagrad step with momentum (see the module docstring).

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        momentum: velocity decay in [0, 1); 0 is plain Adagrad.
        eps: added to the accumulated squares before the square root.
        weight_decay: L2 penalty added to the gradient.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.05,
        momentum: float = 0.0,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"optimizer.lr must be positive, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"optimizer.momentum must lie in [0, 1), got {momentum}")
        if eps <= 0:
            raise ValueError(f"optimizer.eps must be positive, got {eps}")
        defaults = {"lr": lr, "momentum": momentum, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(  # type: ignore[override]
        self, closure: Callable[[], float] | None = None
    ) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if group["weight_decay"]:
                    grad = grad.add(param, alpha=group["weight_decay"])
                state = self.state[param]
                if not state:
                    state["sum"] = torch.zeros_like(param)
                    state["velocity"] = torch.zeros_like(param)
                state["sum"].addcmul_(grad, grad)
                update = grad / state["sum"].add(group["eps"]).sqrt_()  # Adagrad's direction
                if group["momentum"]:
                    velocity = state["velocity"]
                    velocity.mul_(group["momentum"]).add_(update, alpha=-group["lr"])
                    param.add_(velocity)
                else:
                    param.add_(update, alpha=-group["lr"])
        return loss
