"""Causal transformer encoder: shapes, causality, padding, masks, training and config."""

from __future__ import annotations

import functools

import pytest
import torch
from hydra import compose, initialize_config_dir

from rnnrec.losses.cross_entropy import FullSoftmaxCrossEntropy
from rnnrec.models.sequential import SequentialRecommender
from rnnrec.models.transformer import CausalTransformerEncoder
from rnnrec.train import CONFIG_DIR, build_model_from_facts
from tests.models.training import losses_over_steps

E, H = 6, 8


def encoder(**options) -> CausalTransformerEncoder:
    torch.manual_seed(0)
    options = {"hidden_size": H, "num_heads": 2, "max_len": 10, **options}
    return CausalTransformerEncoder(input_size=E, **options).eval()


@pytest.mark.parametrize("norm_first", [True, False])
def test_shapes(norm_first):
    layer = encoder(norm_first=norm_first)
    assert layer.hidden_size == H
    assert layer(torch.randn(3, 7, E)).shape == (3, 7, H)


@pytest.mark.parametrize("norm_first", [True, False])
def test_a_later_item_does_not_change_earlier_states(norm_first):
    layer = encoder(norm_first=norm_first)
    embedded = torch.randn(2, 6, E)
    changed = embedded.clone()
    changed[:, 4] = torch.randn(2, E)
    before, after = layer(embedded), layer(changed)
    torch.testing.assert_close(before[:, :4], after[:, :4])
    assert not torch.allclose(before[:, 4:], after[:, 4:])


def test_padding_after_the_end_does_not_change_real_positions():
    layer = encoder()
    real = torch.randn(1, 3, E)
    # Zero (padding) embeddings, as from padding_idx, and arbitrary values alike.
    for tail in (torch.zeros(1, 4, E), torch.randn(1, 4, E)):
        padded = torch.cat([real, tail], dim=1)  # (1, 7, E)
        torch.testing.assert_close(layer(padded)[:, :3], layer(real))


def test_a_padding_mask_gives_the_same_real_states_and_no_nan():
    layer = encoder()
    embedded = torch.randn(2, 5, E)
    mask = torch.tensor([[True, True, True, False, False], [False, False, False, False, False]])
    masked = layer(embedded, mask)
    torch.testing.assert_close(masked[0, :3], layer(embedded)[0, :3])
    assert torch.isfinite(masked).all()  # an all-padding row included


def test_longer_than_max_len_is_named():
    with pytest.raises(ValueError, match="encoder.max_len"):
        encoder(max_len=4)(torch.randn(1, 5, E))


def test_heads_must_divide_the_hidden_size():
    with pytest.raises(ValueError, match="encoder.num_heads"):
        CausalTransformerEncoder(input_size=E, hidden_size=6, num_heads=4)


def recommender(tie_weights: bool = True) -> SequentialRecommender:
    torch.manual_seed(0)
    return SequentialRecommender(
        num_items=20,
        encoder=functools.partial(
            CausalTransformerEncoder, hidden_size=16, num_heads=2, dropout=0.0, max_len=8
        ),
        loss=FullSoftmaxCrossEntropy(),
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        embedding_size=16,
        tie_weights=tie_weights,
    )


def batch() -> dict[str, torch.Tensor]:
    # Item i is always followed by item i + 1.
    inputs = torch.tensor([[1, 2, 3, 4, 5], [7, 8, 9, 0, 0], [12, 13, 14, 15, 0]])
    targets = torch.where(inputs > 0, inputs + 1, 0)
    return {"inputs": inputs, "targets": targets, "lengths": torch.tensor([5, 3, 4])}


@pytest.mark.filterwarnings("ignore:You are trying to")
@pytest.mark.parametrize("tie_weights", [False, True])
def test_a_sequential_recommender_with_it_lowers_the_loss(tie_weights):
    model = recommender(tie_weights)
    losses = losses_over_steps(model, batch())
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    short = {"inputs": torch.tensor([[3, 4]]), "lengths": torch.tensor([2])}
    padded = {"inputs": torch.tensor([[3, 4, 0, 0]]), "lengths": torch.tensor([2])}
    torch.testing.assert_close(model.score(short), model.score(padded))


def test_sasrec_config_builds_a_sequential_recommender():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["model=sasrec", "data.max_len=12"])
    model = build_model_from_facts(cfg.model, {"num_items": lambda: 30})
    assert isinstance(model, SequentialRecommender)
    assert isinstance(model.encoder, CausalTransformerEncoder)
    assert model.encoder.max_len == 12
    assert model.scorer.item_embedding is model.item_embedding
