import functools

import pytest
import torch

from rnnrec.losses.cross_entropy import FullSoftmaxCrossEntropy
from rnnrec.models.encoders import RecurrentEncoder
from rnnrec.models.sequential import SequentialRecommender
from tests.models.training import losses_over_steps


def model(cell: str = "gru", **options) -> SequentialRecommender:
    torch.manual_seed(0)
    return SequentialRecommender(
        num_items=20,
        encoder=functools.partial(RecurrentEncoder, cell=cell, hidden_size=12),
        loss=FullSoftmaxCrossEntropy(),
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        embedding_size=options.pop("embedding_size", 8),
        **options,
    )


def batch() -> dict[str, torch.Tensor]:
    # Item i is always followed by item i + 1: a pattern any encoder can learn.
    inputs = torch.tensor([[1, 2, 3, 4, 5], [7, 8, 9, 0, 0], [12, 13, 14, 15, 0]])
    targets = torch.where(inputs > 0, inputs + 1, 0)
    return {"inputs": inputs, "targets": targets, "lengths": torch.tensor([5, 3, 4])}


@pytest.mark.filterwarnings("ignore:You are trying to")
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_a_few_steps_lower_the_loss(cell):
    losses = losses_over_steps(model(cell), batch())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("tie_weights", [False, True])
def test_scores_cover_the_catalogue_and_never_padding(tie_weights):
    recommender = model(tie_weights=tie_weights, embedding_size=6)
    scores = recommender.score(batch())
    assert scores.shape == (3, 21)
    assert torch.isneginf(scores[:, 0]).all()
    assert torch.isfinite(scores[:, 1:]).all()


def test_tied_weights_share_the_input_table():
    recommender = model(tie_weights=True)
    assert recommender.scorer.item_embedding is recommender.item_embedding
    assert not hasattr(recommender.scorer, "weight")


def test_last_position_score_ignores_padding_after_it():
    recommender = model().eval()
    short = {"inputs": torch.tensor([[3, 4]]), "lengths": torch.tensor([2])}
    padded = {"inputs": torch.tensor([[3, 4, 0, 0]]), "lengths": torch.tensor([2])}
    assert torch.allclose(recommender.score(short), recommender.score(padded))


def test_unknown_cell_is_named():
    with pytest.raises(ValueError, match="encoder.cell"):
        RecurrentEncoder("transformer", input_size=4)


@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu"])
def test_output_activation_bounds_or_changes_the_summary(activation):
    plain = model(output_activation="none").eval()
    activated = model(output_activation=activation).eval()
    assert not torch.allclose(plain.score(batch()), activated.score(batch()))
    with pytest.raises(ValueError, match="model.output_activation"):
        model(output_activation="softsign")
