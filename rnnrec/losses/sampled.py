"""Losses of a target against a set of sampled candidates (negatives).

Every loss shares one call:

    loss(target_scores (P,), candidate_scores (P, C), candidate_mask (P, C), reduction)

``candidate_mask`` is True where a candidate must NOT count (accidental hit, padding). Masked
scores are never read, so they may hold anything (even inf or nan). A row whose candidates are
all masked has a negative part of exactly 0, and finite gradients. ``reduction`` is "mean" (over
the P rows, empty rows included), "sum" or "none" (the (P,) row losses).
Notation below: t = target score, n_j = score of valid candidate j, V = valid candidates.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

Reduction = Literal["mean", "sum", "none"]


def _reduce(row_loss: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "mean":
        return row_loss.mean()
    if reduction == "sum":
        return row_loss.sum()
    if reduction == "none":
        return row_loss
    raise ValueError(f"unknown reduction {reduction!r}")


def _check_shapes(target: torch.Tensor, candidates: torch.Tensor, mask: torch.Tensor) -> None:
    if candidates.dim() != 2 or target.shape != candidates.shape[:1]:
        raise ValueError(f"expected (P,) and (P, C), got {target.shape} and {candidates.shape}")
    if mask.shape != candidates.shape or mask.dtype != torch.bool:
        raise ValueError(f"candidate_mask must be bool {tuple(candidates.shape)}")


def _masked_log_softmax(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """log softmax over the valid entries of each row: -inf elsewhere.

    Rows with no valid entry get a finite uniform softmax instead (all -inf would give nan
    gradients); callers zero those rows' loss.
    """
    empty = ~valid.any(dim=1, keepdim=True)  # (P, 1)
    logits = scores.masked_fill(~valid & ~empty, float("-inf"))  # (P, C)
    return logits.log_softmax(dim=1)


class CandidateLoss(nn.Module):
    """Base: masks the candidates, delegates the per-row loss, reduces."""

    def forward(
        self,
        target_scores: torch.Tensor,
        candidate_scores: torch.Tensor,
        candidate_mask: torch.Tensor,
        reduction: Reduction = "mean",
    ) -> torch.Tensor:
        _check_shapes(target_scores, candidate_scores, candidate_mask)
        valid = ~candidate_mask  # (P, C)
        # Zero the masked scores so that an inf/nan there cannot leak through 0 * inf.
        negatives = candidate_scores.masked_fill(candidate_mask, 0.0)  # (P, C)
        return _reduce(self.row_loss(target_scores, negatives, valid), reduction)

    def row_loss(
        self, target: torch.Tensor, negatives: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """(P,) target, (P, C) negatives (0 where masked), (P, C) valid -> (P,) losses."""
        raise NotImplementedError


class SampledSoftmax(nn.Module):
    """Cross-entropy of the target against [target, valid candidates].

    loss = -t' + log(exp(t') + sum_{j in V} exp(n'_j)), through log-sum-exp, where with logQ
    correction (Yi et al. 2019) t' = t - log q(target), n'_j = n_j - log q(j), and without it
    t' = t, n' = n. The correction makes the sampled softmax an unbiased estimate of the full
    one when candidates are drawn with probability q (e.g. popularity or in-batch sampling).

    Args:
        logq_correction: require ``candidate_log_q`` (and optionally ``target_log_q``).
    """

    def __init__(self, logq_correction: bool = False) -> None:
        super().__init__()
        self.logq_correction = logq_correction

    def forward(
        self,
        target_scores: torch.Tensor,
        candidate_scores: torch.Tensor,
        candidate_mask: torch.Tensor,
        reduction: Reduction = "mean",
        candidate_log_q: torch.Tensor | None = None,
        target_log_q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_shapes(target_scores, candidate_scores, candidate_mask)
        if self.logq_correction:
            if candidate_log_q is None:
                raise ValueError("logq_correction=True needs candidate_log_q (P, C)")
            candidate_scores = candidate_scores - candidate_log_q  # (P, C)
            if target_log_q is not None:
                target_scores = target_scores - target_log_q  # (P,)
        elif candidate_log_q is not None or target_log_q is not None:
            raise ValueError("log q given but logq_correction=False: it would be ignored")
        candidates = candidate_scores.masked_fill(candidate_mask, float("-inf"))  # (P, C)
        # log(exp(t) + sum_j exp(n_j)) without copying [t, n] into one (P, 1 + C) block. On a
        # row with every candidate masked, logsumexp is -inf, the loss t - t = 0, and the
        # masked entries' gradients are zeroed by masked_fill's backward.
        log_normaliser = torch.logaddexp(target_scores, torch.logsumexp(candidates, dim=1))
        return _reduce(log_normaliser - target_scores, reduction)


class BPR(CandidateLoss):
    """Bayesian personalised ranking: loss = mean_{j in V} -log sigmoid(t - n_j)."""

    def row_loss(
        self, target: torch.Tensor, negatives: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        pairwise = -F.logsigmoid(target.unsqueeze(1) - negatives)  # (P, C)
        count = valid.sum(dim=1).clamp(min=1)  # (P,) so that empty rows give 0 / 1
        return (pairwise * valid).sum(dim=1) / count


class TOP1(CandidateLoss):
    """GRU4Rec TOP1: loss = mean_{j in V} sigmoid(n_j - t) + sigmoid(n_j^2)."""

    def row_loss(
        self, target: torch.Tensor, negatives: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        pairwise = torch.sigmoid(negatives - target.unsqueeze(1)) + torch.sigmoid(negatives**2)
        count = valid.sum(dim=1).clamp(min=1)  # (P,)
        return (pairwise * valid).sum(dim=1) / count


class BPRMax(CandidateLoss):
    """BPR-max (Hidasi & Karatzoglou 2018), with s_j = softmax_{k in V}(n)_j:

    loss = -log(sum_{j in V} s_j sigmoid(t - n_j)) + bpreg * sum_{j in V} s_j n_j^2,
    the log computed as -logsumexp_j(log s_j + logsigmoid(t - n_j)), which never underflows.

    Args:
        bpreg: weight of the score regulariser.
    """

    def __init__(self, bpreg: float = 1.0) -> None:
        super().__init__()
        self.bpreg = bpreg

    def row_loss(
        self, target: torch.Tensor, negatives: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        log_weights = _masked_log_softmax(negatives, valid)  # (P, C), -inf where masked
        log_terms = log_weights + F.logsigmoid(target.unsqueeze(1) - negatives)  # (P, C)
        ranking = -torch.logsumexp(log_terms, dim=1)  # (P,)
        # Masked entries hold weight 0 and score 0 (non-empty rows): exact zeros.
        regulariser = (log_weights.exp() * negatives**2).sum(dim=1)  # (P,)
        loss = ranking + self.bpreg * regulariser
        return torch.where(valid.any(dim=1), loss, torch.zeros_like(loss))


class TOP1Max(CandidateLoss):
    """TOP1-max (Hidasi & Karatzoglou 2018), with s_j = softmax_{k in V}(n)_j:

    loss = sum_{j in V} s_j (sigmoid(n_j - t) + sigmoid(n_j^2)).
    """

    def row_loss(
        self, target: torch.Tensor, negatives: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        weights = _masked_log_softmax(negatives, valid).exp()  # (P, C), 0 where masked
        pairwise = torch.sigmoid(negatives - target.unsqueeze(1)) + torch.sigmoid(negatives**2)
        loss = (weights * pairwise).sum(dim=1)  # (P,)
        return torch.where(valid.any(dim=1), loss, torch.zeros_like(loss))


def _negative_bce(negatives: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(P,) sum_{j in V} -log(1 - sigmoid(n_j)) = sum_{j in V} softplus(n_j)."""
    return (F.softplus(negatives) * valid).sum(dim=1)


class BCE(CandidateLoss):
    """Binary cross-entropy, target labelled 1 and candidates 0:

    loss = -log sigmoid(t) + sum_{j in V} softplus(n_j)   (softplus(n) = -log(1 - sigmoid(n)))

    Summed (not averaged) over the negatives of a row, as in SASRec / gSASRec, so that one
    positive and one negative weigh alike; rows are then reduced by ``reduction``.
    """

    def row_loss(
        self, target: torch.Tensor, negatives: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        return -F.logsigmoid(target) + _negative_bce(negatives, valid)


class GBCE(CandidateLoss):
    """Generalised BCE of gSASRec (Petrov & Macdonald 2023):

    loss = -log(sigmoid(t)^beta) + sum_{j in V} softplus(n_j)
         = -beta * logsigmoid(t) + sum_{j in V} softplus(n_j),
    beta = alpha * (t_cal * (1 - 1/alpha) + 1/alpha),  alpha = C / (num_items - 1),

    C being the number of candidate columns (the sampling rate, which masking does not change);
    alpha is capped at 1 (every item sampled: no overconfidence left to correct, beta = 1).
    t_cal = 0 gives plain BCE, t_cal = 1 gives beta = alpha.

    Args:
        t_calibration: t in [0, 1].
        num_items: catalogue size N (items 1..N); ``None`` until the data is known (the
            training objective fills it in), since a config cannot know it in advance.
    """

    def __init__(self, t_calibration: float, num_items: int | None = None) -> None:
        super().__init__()
        if not 0.0 <= t_calibration <= 1.0:
            raise ValueError(f"t_calibration must lie in [0, 1], got {t_calibration}")
        if num_items is not None and num_items < 2:
            raise ValueError(f"num_items must be at least 2, got {num_items}")
        self.t_calibration = t_calibration
        self.num_items = num_items

    def beta(self, num_candidates: int) -> float:
        """Exponent of the positive probability for C = ``num_candidates`` negatives."""
        if self.num_items is None:
            raise ValueError("GBCE needs num_items (the catalogue size) before its first use")
        alpha = min(num_candidates / (self.num_items - 1), 1.0)
        if alpha <= 0.0:
            return 1.0  # no negatives: nothing to calibrate against
        return alpha * (self.t_calibration * (1.0 - 1.0 / alpha) + 1.0 / alpha)

    def row_loss(
        self, target: torch.Tensor, negatives: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        beta = self.beta(negatives.shape[1])
        return -beta * F.logsigmoid(target) + _negative_bce(negatives, valid)
