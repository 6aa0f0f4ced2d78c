"""Gradient-norm clipping that also takes sparse gradients.

``torch.nn.utils.clip_grad_norm_`` cannot take the norm of a sparse tensor, so with
``model.sparse_gradients=true`` the trainer's ``gradient_clip_val`` goes through this
function instead: the same rule (scale every gradient by max_norm / (total norm + 1e-6) when
that is below 1), with a sparse gradient's norm taken over its coalesced rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def clip_grad_norm(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip the gradients of ``parameters`` in place to total 2-norm ``max_norm``.

    Sparse gradients are coalesced in place first (a row repeated in a batch would
    otherwise count twice in the norm). Returns the total norm before clipping.
    """
    grads = []
    for param in parameters:
        if param.grad is None:
            continue
        if param.grad.is_sparse:
            param.grad = param.grad.coalesce()
            grads.append(param.grad.values())
        else:
            grads.append(param.grad)
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(scale)
    return total
