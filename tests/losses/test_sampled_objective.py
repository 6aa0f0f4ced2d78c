"""The sampled next-item objective: scores, accidental hits, input masking, logQ."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rnnrec.losses.candidates import BatchNegatives
from rnnrec.losses.sampled import BPR, GBCE, SampledSoftmax
from rnnrec.losses.sampled_objective import Predictions, SampledObjective
from rnnrec.models.output import ItemScorer

COUNTS = torch.tensor([0, 4, 2, 1, 1])


def scorer() -> ItemScorer:
    """Item i has the vector (i, 1) and no bias, so a summary (a, b) scores item i a*i + b."""
    table = nn.Embedding(5, 2)
    with torch.no_grad():
        table.weight.copy_(torch.tensor([[0.0, 0.0], [1, 1], [2, 1], [3, 1], [4, 1]]))
    return ItemScorer(2, 4, table)


def test_bpr_against_in_batch_negatives_by_hand() -> None:
    objective = SampledObjective(BPR(), BatchNegatives("in_batch", COUNTS), num_items=4)
    summaries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss, masked = objective(scorer(), Predictions(summaries, torch.tensor([2, 3])))
    # Candidates are items 2 and 3. Row 0 scores items i -> i: target 2 vs negative 3.
    # Row 1 scores every item 1: target 3 vs negative 2. Each row masks its own target.
    expected = (-math.log(1 / (1 + math.exp(1.0))) - math.log(0.5)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert masked.item() == pytest.approx(0.5)


def test_logq_correction_subtracts_the_log_probabilities() -> None:
    negatives = BatchNegatives("in_batch", COUNTS)
    corrected = SampledObjective(SampledSoftmax(logq_correction=True), negatives, 4)
    summaries = torch.tensor([[1.0, 0.0]])
    targets = torch.tensor([1])
    # A single target means no negative survives: the loss is log(exp(t')) - t' = 0.
    assert corrected(scorer(), Predictions(summaries, targets))[0].item() == pytest.approx(0.0)
    two = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    loss, _ = corrected(scorer(), Predictions(two, torch.tensor([1, 2])))
    # Frequencies: item 1 0.5, item 2 0.25. Row 0: t' = 1 - log .5, n' = 2 - log .25.
    t0, n0 = 1 - math.log(0.5), 2 - math.log(0.25)
    t1, n1 = 2 - math.log(0.25), 1 - math.log(0.5)
    rows = [math.log(math.exp(t) + math.exp(n)) - t for t, n in ((t0, n0), (t1, n1))]
    assert loss.item() == pytest.approx(sum(rows) / 2, rel=1e-6)


def test_input_items_are_masked_only_when_asked() -> None:
    inputs = torch.tensor([[3, 1]])
    rows, positions = torch.tensor([0, 0]), torch.tensor([0, 1])
    summaries = torch.zeros(2, 2)
    predictions = Predictions(summaries, torch.tensor([1, 2]), inputs, rows, positions)
    for mask_inputs, expected in ((False, 0.5), (True, 0.75)):
        negatives = BatchNegatives("in_batch", COUNTS, mask_input_items=mask_inputs)
        _, masked = SampledObjective(BPR(), negatives, 4)(scorer(), predictions)
        # Candidates 1 and 2; own targets mask 2 of 4; with inputs, item 1 at position 1 too.
        assert masked.item() == pytest.approx(expected)
    negatives = BatchNegatives("in_batch", COUNTS, mask_input_items=True)
    with pytest.raises(ValueError, match="mask_input_items"):
        SampledObjective(BPR(), negatives, 4)(scorer(), Predictions(summaries, rows + 1))


def test_gbce_learns_the_catalogue_size_from_the_data() -> None:
    loss = GBCE(t_calibration=1.0)
    SampledObjective(loss, BatchNegatives("uniform", COUNTS, num_negatives=2), num_items=4)
    assert loss.num_items == 4
    assert loss.beta(3) == pytest.approx(1.0)  # three of the three other items: no correction
