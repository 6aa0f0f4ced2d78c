"""Recurrent encoders sized by a parameter budget, for comparisons of cells at equal size."""

import pytest

from rnnrec.models.encoders import RecurrentEncoder, hidden_size_for_budget, recurrent_parameters


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_parameter_count_matches_torch(cell: str, num_layers: int) -> None:
    encoder = RecurrentEncoder(cell, input_size=12, hidden_size=7, num_layers=num_layers)
    counted = sum(p.numel() for p in encoder.parameters())
    assert recurrent_parameters(cell, 12, 7, num_layers) == counted


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_budget_picks_the_largest_hidden_size_that_fits(cell: str) -> None:
    budget = 24_960  # a GRU with E = H = 64
    size = hidden_size_for_budget(cell, 64, 1, budget)
    assert recurrent_parameters(cell, 64, size, 1) <= budget
    assert recurrent_parameters(cell, 64, size + 1, 1) > budget
    encoder = RecurrentEncoder(cell, input_size=64, hidden_size=999, parameter_budget=budget)
    assert encoder.hidden_size == size  # the budget wins over hidden_size


def test_budget_sizes_of_the_cell_study() -> None:
    sizes = {cell: hidden_size_for_budget(cell, 64, 1, 24_960) for cell in ("rnn", "gru", "lstm")}
    assert sizes == {"rnn": 128, "gru": 64, "lstm": 52}


def test_budget_too_small_names_the_setting() -> None:
    with pytest.raises(ValueError, match="encoder.parameter_budget=10"):
        RecurrentEncoder("lstm", input_size=64, parameter_budget=10)
