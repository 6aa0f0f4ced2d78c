"""Sampled losses against hand computations on Python floats."""

from __future__ import annotations

import math

import pytest
import torch

from rnnrec.losses.sampled import BCE, BPR, GBCE, TOP1, BPRMax, SampledSoftmax, TOP1Max
from rnnrec.losses.samplers import accidental_hits

TARGETS = [1.0, 0.5, -0.5]
NEGATIVES = [[0.5, -1.0, 2.0], [1.0, 0.0, -0.5], [0.0, 1.5, -2.0]]
MASK = [[False, False, True], [False, False, False], [False, False, False]]


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def softmax(xs: list[float]) -> list[float]:
    exps = [math.exp(x) for x in xs]
    return [e / sum(exps) for e in exps]


def valid_rows() -> list[tuple[float, list[float]]]:
    """(t, valid negatives) per row, the masked entry dropped."""
    return [
        (t, [n for n, m in zip(ns, ms, strict=True) if not m])
        for t, ns, ms in zip(TARGETS, NEGATIVES, MASK, strict=True)
    ]


def expected_rows(name: str) -> list[float]:
    rows = []
    for t, ns in valid_rows():
        s = softmax(ns)
        if name == "softmax":
            value = -math.log(math.exp(t) / (math.exp(t) + sum(math.exp(n) for n in ns)))
        elif name == "bpr":
            value = sum(-math.log(sig(t - n)) for n in ns) / len(ns)
        elif name == "top1":
            value = sum(sig(n - t) + sig(n * n) for n in ns) / len(ns)
        elif name == "bpr_max":
            ranking = -math.log(sum(w * sig(t - n) for w, n in zip(s, ns, strict=True)))
            value = ranking + 0.5 * sum(w * n * n for w, n in zip(s, ns, strict=True))
        elif name == "top1_max":
            value = sum(w * (sig(n - t) + sig(n * n)) for w, n in zip(s, ns, strict=True))
        elif name == "bce":
            value = -math.log(sig(t)) - sum(math.log(1 - sig(n)) for n in ns)
        else:  # gbce, t = 0.75 with 3 candidates out of 11 items
            alpha = 3 / 10
            beta = alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha)
            value = -math.log(sig(t) ** beta) - sum(math.log(1 - sig(n)) for n in ns)
        rows.append(value)
    return rows


LOSSES = {
    "softmax": SampledSoftmax(logq_correction=False),
    "bpr": BPR(),
    "top1": TOP1(),
    "bpr_max": BPRMax(bpreg=0.5),
    "top1_max": TOP1Max(),
    "bce": BCE(),
    "gbce": GBCE(t_calibration=0.75, num_items=11),
}


def call(name: str, target, candidates, mask, reduction="mean"):
    return LOSSES[name](target, candidates, mask, reduction=reduction)


@pytest.mark.parametrize("name", list(LOSSES))
def test_by_hand_on_three_rows(name: str) -> None:
    target, candidates, mask = torch.tensor(TARGETS), torch.tensor(NEGATIVES), torch.tensor(MASK)
    expected = expected_rows(name)
    rows = call(name, target, candidates, mask, reduction="none")
    assert rows.tolist() == pytest.approx(expected, rel=1e-5)
    assert call(name, target, candidates, mask).item() == pytest.approx(sum(expected) / 3, 1e-5)
    total = call(name, target, candidates, mask, reduction="sum").item()
    assert total == pytest.approx(sum(expected), rel=1e-5)


def test_masked_scores_are_never_read() -> None:
    candidates = torch.tensor(NEGATIVES)
    candidates[0, 2] = float("nan")
    for name in LOSSES:
        value = call(name, torch.tensor(TARGETS), candidates, torch.tensor(MASK))
        assert value.item() == pytest.approx(sum(expected_rows(name)) / 3, rel=1e-5)


def test_logq_correction_by_hand() -> None:
    log_q = [[-1.0, -2.0, -0.5], [-3.0, -1.0, -1.0], [-0.5, -0.5, -4.0]]
    target_log_q = [-2.0, -1.5, -0.5]
    loss = SampledSoftmax(logq_correction=True)
    rows = loss(
        torch.tensor(TARGETS),
        torch.tensor(NEGATIVES),
        torch.tensor(MASK),
        reduction="none",
        candidate_log_q=torch.tensor(log_q),
        target_log_q=torch.tensor(target_log_q),
    )
    expected = []
    for i, (t, ns) in enumerate(zip(TARGETS, NEGATIVES, strict=True)):
        logit = t - target_log_q[i]
        others = [n - q for n, q, m in zip(ns, log_q[i], MASK[i], strict=True) if not m]
        expected.append(-logit + math.log(math.exp(logit) + sum(math.exp(o) for o in others)))
    assert rows.tolist() == pytest.approx(expected, rel=1e-5)


def test_logq_arguments_are_checked() -> None:
    args = (torch.tensor(TARGETS), torch.tensor(NEGATIVES), torch.tensor(MASK))
    with pytest.raises(ValueError, match="candidate_log_q"):
        SampledSoftmax(logq_correction=True)(*args)
    with pytest.raises(ValueError, match="ignored"):
        SampledSoftmax(logq_correction=False)(*args, candidate_log_q=torch.zeros(3, 3))


@pytest.mark.parametrize("name", ["bpr_max", "top1_max"])
def test_max_losses_exclude_the_target_from_its_own_negatives(name: str) -> None:
    items = torch.tensor([[5, 7, 9], [4, 2, 8]])
    targets = torch.tensor([7, 8])
    scores = torch.tensor([[0.3, 2.0, -1.0], [1.0, 0.0, 1.5]])  # target scores among them
    target_scores = torch.tensor([2.0, 1.5])
    mask = accidental_hits(items, targets)
    assert mask.tolist() == [[False, True, False], [False, False, True]]
    masked = call(name, target_scores, scores, mask, reduction="none")
    others = torch.tensor([[0.3, -1.0], [1.0, 0.0]])
    without = call(name, target_scores, others, torch.zeros(2, 2, dtype=torch.bool), "none")
    assert masked.tolist() == pytest.approx(without.tolist(), rel=1e-6)
    unmasked = call(name, target_scores, scores, torch.zeros(2, 3, dtype=torch.bool), "none")
    assert not torch.allclose(masked, unmasked)


@pytest.mark.parametrize("name", list(LOSSES))
def test_finite_for_extreme_scores_and_empty_rows(name: str) -> None:
    target = torch.tensor([1e4, -1e4, 0.0, 2.0], requires_grad=True)
    candidates = torch.tensor(
        [[-1e4, 1e4, 0.0], [1e4, 1e4, -1e4], [1e4, -1e4, 3.0], [1.0, float("inf"), 0.0]],
        requires_grad=True,
    )
    mask = torch.zeros(4, 3, dtype=torch.bool)
    mask[3] = True  # every candidate masked, one even infinite
    rows = call(name, target, candidates, mask, reduction="none")
    assert torch.isfinite(rows).all()
    rows.sum().backward()
    assert target.grad is not None and torch.isfinite(target.grad).all()
    assert candidates.grad is not None and torch.isfinite(candidates.grad).all()
    assert (candidates.grad[3] == 0).all()
    # With no negative left, only the positive term of the row remains.
    positive = {"bce": -math.log(sig(2.0)), "gbce": -math.log(sig(2.0) ** LOSSES["gbce"].beta(3))}
    assert rows[3].item() == pytest.approx(positive.get(name, 0.0), abs=1e-6)


def test_gbce_beta_limits() -> None:
    assert GBCE(0.0, 101).beta(10) == pytest.approx(1.0)
    assert GBCE(1.0, 101).beta(10) == pytest.approx(0.1)
    assert GBCE(1.0, 11).beta(50) == pytest.approx(1.0)  # alpha capped at 1
    with pytest.raises(ValueError):
        GBCE(1.5, 11)


def test_unknown_reduction_is_refused() -> None:
    with pytest.raises(ValueError, match="reduction"):
        BPR()(torch.tensor(TARGETS), torch.tensor(NEGATIVES), torch.tensor(MASK), "max")
