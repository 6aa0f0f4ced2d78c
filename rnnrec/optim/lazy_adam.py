"""Adam that moves only the embedding rows a batch touched ("lazy" Adam).

With ``model.sparse_gradients=true`` the item tables get sparse gradients: only the rows
of the items in a batch (its inputs, targets and sampled negatives). ``torch.optim.Adam``
refuses those, and a dense update of a million-row table costs more than the rest of the
step. This optimizer runs Adam unchanged on every dense gradient and, for a sparse one,
updates the moments and weights of the touched rows only, as ``torch.optim.SparseAdam`` does:

    m[r] <- beta1 * m[r] + (1 - beta1) * g[r]
    v[r] <- beta2 * v[r] + (1 - beta2) * g[r]^2
    p[r] <- p[r] - lr / (1 - beta1^t) * m[r] / (sqrt(v[r] / (1 - beta2^t)) + eps)

for the rows r of the gradient, with t the table's step count. Rows the batch did not touch
keep their weights and moments (dense Adam would decay the moments and keep moving those rows
by their momentum), so results differ from Adam's by an amount that depends on the data:
compare both on yours. When every row has a gradient the update is Adam's. The weight decay is
Adam's L2 term, added to the touched rows' gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


class LazyAdam(torch.optim.Adam):
    """Adam for dense gradients, row-wise lazy Adam for sparse ones (see the module docstring).

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        betas: decay rates of the first and second moments.
        eps: added to the root of the second moment.
        weight_decay: L2 penalty added to the gradient (to the touched rows' only, if sparse).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            # The closure computes the gradients (Lightning clips them inside it too), so it
            # must run before the sparse ones are set aside below.
            with torch.enable_grad():
                loss = closure()
        sparse = [
            (group, param, param.grad)
            for group in self.param_groups
            for param in group["params"]
            if param.grad is not None and param.grad.is_sparse
        ]
        # Adam skips parameters without a gradient: hide the sparse ones from it.
        for _, param, _ in sparse:
            param.grad = None
        try:
            super().step()
        finally:
            for _, param, grad in sparse:
                param.grad = grad
        for group, param, grad in sparse:
            self._sparse_step(group, param, grad)
        return loss

    def _sparse_step(self, group: dict[str, Any], param: torch.Tensor, grad: torch.Tensor) -> None:
        """Adam's update on the rows of ``grad`` only; ``grad`` is a sparse (rows, ...) tensor."""
        if group["amsgrad"] or group["maximize"]:
            raise ValueError("LazyAdam supports neither amsgrad nor maximize for sparse gradients")
        if grad.sparse_dim() != 1:
            raise ValueError(
                "LazyAdam takes sparse gradients over rows (as nn.Embedding(sparse=True) gives), "
                f"not over {grad.sparse_dim()} dimensions"
            )
        grad = grad.coalesce()  # one entry per row: repeated items' gradients summed
        rows = grad.indices()[0]  # (R,)
        values = grad.values()  # (R, ...)
        if group["weight_decay"]:
            values = values.add(param[rows], alpha=group["weight_decay"])
        state = self.state[param]
        if not state:
            # The same keys as Adam's, so a table may get dense and sparse gradients in turn.
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        state["step"] += 1
        step = float(state["step"])
        beta1, beta2 = group["betas"]
        first = state["exp_avg"][rows].lerp_(values, 1 - beta1)  # (R, ...)
        second = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(values, values, value=1 - beta2)
        state["exp_avg"][rows] = first
        state["exp_avg_sq"][rows] = second
        denominator = (second.sqrt() / math.sqrt(1 - beta2**step)).add_(group["eps"])
        step_size = group["lr"] / (1 - beta1**step)
        param.index_add_(0, rows, first / denominator, alpha=-step_size)
