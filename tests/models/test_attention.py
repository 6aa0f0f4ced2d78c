"""Attention variants: shapes, masking, causality, last == forward, and training with each."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn

from rnnrec.losses.cross_entropy import FullSoftmaxCrossEntropy
from rnnrec.models.attention.additive import AdditiveAttention
from rnnrec.models.attention.dot import DotAttention
from rnnrec.models.attention.inspection import histories_before_last, weights_by_distance
from rnnrec.models.attention.last_state import LastState
from rnnrec.models.attention.location import LocationAttention
from rnnrec.models.attention.multiplicative import MultiplicativeAttention
from rnnrec.models.attention.self_attention import SelfAttention
from rnnrec.models.encoders import RecurrentEncoder
from rnnrec.models.sequential import SequentialRecommender
from rnnrec.train import CONFIG_DIR

H = 12
T = 6
VARIANTS: dict[str, Callable[[], nn.Module]] = {
    "none": LastState,
    "dot": lambda: DotAttention(H),
    "multiplicative": lambda: MultiplicativeAttention(H),
    "additive": lambda: AdditiveAttention(H, attention_size=6),
    "additive_narm": lambda: AdditiveAttention(H, concat_last=True),
    # Fewer buckets than T, so the shared last bucket is exercised too.
    "location": lambda: LocationAttention(H, max_positions=4),
    "self": lambda: SelfAttention(H, num_heads=2),
}
# Variants whose output is exactly weights @ states, so `weights` can be checked against it.
PLAIN = ["dot", "multiplicative", "additive", "location"]


def attention(name: str) -> nn.Module:
    torch.manual_seed(0)
    return VARIANTS[name]().eval()


def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, T, H) states, (B, T) right-padded mask and (B,) lengths, lengths T, 3 and 1."""
    torch.manual_seed(1)
    states = torch.randn(3, T, H)
    lengths = torch.tensor([T, 3, 1])
    mask = torch.arange(T) < lengths.unsqueeze(1)  # (B, T)
    return states, mask, lengths


@pytest.fixture(params=list(VARIANTS))
def name(request: pytest.FixtureRequest) -> str:
    return request.param


@torch.no_grad()
def test_shapes(name):
    layer, (states, mask, lengths) = attention(name), inputs()
    assert layer(states, mask).shape == (3, T, H)
    assert layer.last(states, lengths).shape == (3, H)
    assert layer.weights(states, mask).shape == (3, T, T)


@torch.no_grad()
def test_weights_are_causal_masked_and_normalised(name):
    layer, (states, mask, _) = attention(name), inputs()
    weights = layer.weights(states, mask)
    allowed = torch.ones(T, T, dtype=torch.bool).tril() & mask.unsqueeze(1)  # (B, T, T)
    assert (weights[~allowed] == 0).all()
    sums = weights.sum(-1)[mask]  # rows of real positions
    assert torch.allclose(sums, torch.ones_like(sums))


@pytest.mark.parametrize("name", PLAIN)
@torch.no_grad()
def test_weights_are_those_forward_uses(name):
    layer, (states, mask, _) = attention(name), inputs()
    assert torch.allclose(layer(states, mask), layer.weights(states, mask) @ states, atol=1e-6)


@torch.no_grad()
def test_later_states_do_not_change_earlier_outputs(name):
    layer, (states, mask, _) = attention(name), inputs()
    changed = states.clone()
    changed[:, 3:] += torch.randn(3, T - 3, H)
    assert torch.allclose(layer(states, mask)[:, :3], layer(changed, mask)[:, :3], atol=1e-6)


@torch.no_grad()
def test_last_is_forward_at_the_last_real_position(name):
    layer, (states, mask, lengths) = attention(name), inputs()
    gathered = layer(states, mask)[torch.arange(3), lengths - 1]  # (B, H)
    assert torch.allclose(layer.last(states, lengths), gathered, atol=1e-6)


@torch.no_grad()
def test_padding_content_does_not_change_real_outputs(name):
    layer, (states, mask, lengths) = attention(name), inputs()
    noisy = torch.where(mask.unsqueeze(-1), states, 100 * torch.randn_like(states))
    assert torch.allclose(layer(states, mask)[mask], layer(noisy, mask)[mask], atol=1e-6)
    assert torch.allclose(layer.last(states, lengths), layer.last(noisy, lengths), atol=1e-6)


@torch.no_grad()
def test_all_padding_sequence_gives_no_nan(name):
    layer, (states, mask, _) = attention(name), inputs()
    mask[2] = False
    assert torch.isfinite(layer(states, mask)).all()


def test_location_distances_beyond_the_buckets_share_the_last():
    layer = attention("location")
    with torch.no_grad():
        layer.distance_logits.weight.zero_()
        layer.distance_logits.bias.zero_()
        layer.recency_bias.copy_(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    states, mask, _ = inputs()
    row = layer.weights(states, mask)[0, T - 1]  # query at 5: distances 5, 4, 3, 2, 1, 0
    expected = torch.softmax(torch.tensor([3.0, 3.0, 3.0, 2.0, 1.0, 0.0]), dim=0)
    assert torch.allclose(row, expected)


def test_self_attention_rejects_heads_that_do_not_divide_h():
    with pytest.raises(ValueError, match="num_heads"):
        SelfAttention(10, num_heads=3)


def recommender(name: str, cell: str = "gru") -> SequentialRecommender:
    torch.manual_seed(0)
    return SequentialRecommender(
        num_items=20,
        encoder=functools.partial(RecurrentEncoder, cell=cell, hidden_size=H),
        attention=VARIANTS[name](),
        loss=FullSoftmaxCrossEntropy(),
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        embedding_size=8,
    )


def toy_batch() -> dict[str, torch.Tensor]:
    # Item i is always followed by item i + 1: a pattern any encoder can learn.
    inputs = torch.tensor([[1, 2, 3, 4, 5], [7, 8, 9, 0, 0], [12, 13, 14, 15, 0]])
    targets = torch.where(inputs > 0, inputs + 1, 0)
    return {"inputs": inputs, "targets": targets, "lengths": torch.tensor([5, 3, 4])}


def train_losses(model: SequentialRecommender, steps: int) -> list[float]:
    optimizer = model.configure_optimizers()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model.training_step(toy_batch(), 0)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_training_with_gru_halves_the_loss(name):
    losses = train_losses(recommender(name), 40)
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.filterwarnings("ignore:You are trying to")
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_training_lowers_the_loss_with_every_cell(name, cell):
    losses = train_losses(recommender(name, cell), 10)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("config", sorted(p.stem for p in Path(CONFIG_DIR, "attention").glob("*")))
def test_config_builds_a_model_that_scores(config):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train", overrides=[f"attention={config}", "encoder.hidden_size=8", "data.max_len=6"]
        )
    model = SequentialRecommender(
        num_items=20,
        encoder=instantiate(cfg.encoder),
        attention=instantiate(cfg.attention),
        loss=FullSoftmaxCrossEntropy(),
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        embedding_size=8,
    ).eval()
    assert model.score(toy_batch()).shape == (3, 21)


def test_histories_before_last_keep_the_newest_items_before_each_final_one():
    # Users 1..3 own rows 0:4, 4:8 and 8:10 (index 0 is the padding user).
    user_ptr = np.array([0, 0, 4, 8, 10])
    inputs, lengths = histories_before_last(user_ptr, np.arange(1, 11), max_len=2)
    assert inputs.tolist() == [[2, 3], [6, 7], [9, 0]]
    assert lengths.tolist() == [2, 2, 1]


@pytest.mark.parametrize("variant", ["none", "dot", "location", "self"])
def test_weights_by_distance_are_the_last_query_row_reversed(variant):
    model = recommender(variant).eval()
    inputs, lengths = histories_before_last(
        np.array([0, 0, 6, 10, 12]), np.arange(1, 13), max_len=5
    )
    found = weights_by_distance(model, inputs, lengths, batch_size=2)
    assert found.shape == (3, 5)
    np.testing.assert_allclose(np.nansum(found, axis=1), 1.0, atol=1e-6)
    assert np.isnan(found).tolist() == [[d >= n for d in range(5)] for n in lengths.tolist()]
    with torch.no_grad():
        weights = model.attention.weights(model.encode(inputs), inputs > 0)  # (B, T, T)
    for row, n in enumerate(lengths.tolist()):
        expected = weights[row, n - 1, :n].flip(0).double().numpy()
        np.testing.assert_allclose(found[row, :n], expected, atol=1e-7)
    if variant == "none":
        assert (found[:, 0] == 1).all()
