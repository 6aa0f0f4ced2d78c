import functools

import numpy as np
import pytest
import torch

from rnnrec.losses.cross_entropy import FullSoftmaxCrossEntropy
from rnnrec.models.encoders import RecurrentEncoder
from rnnrec.models.sequential import SequentialRecommender
from rnnrec.models.user_fusion import (
    ConcatFusion,
    GateFusion,
    InitialStateFusion,
    UserFusion,
    users_with_training_windows,
)
from tests.models.training import losses_over_steps

MODES = {"init": InitialStateFusion, "concat": ConcatFusion, "gate": GateFusion}
NUM_USERS = 4
# Users 1..3 have training windows; user 4 does not.
KNOWN = np.array([False, True, True, True, False])


def model(mode: str | None, cell: str = "gru", num_layers: int = 1) -> SequentialRecommender:
    torch.manual_seed(0)
    fusion = None if mode is None else functools.partial(MODES[mode], user_size=6)
    return SequentialRecommender(
        num_items=20,
        encoder=functools.partial(
            RecurrentEncoder, cell=cell, hidden_size=12, num_layers=num_layers
        ),
        loss=FullSoftmaxCrossEntropy(),
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        embedding_size=8,
        cf=fusion,
        num_users=NUM_USERS,
        known_users=KNOWN,
    )


def batch(users: list[int] | None = None) -> dict[str, torch.Tensor]:
    # Item i is followed by i + 1 for users 1 and 3, by i + 2 for user 2.
    inputs = torch.tensor([[1, 2, 3, 4, 5], [7, 9, 11, 0, 0], [12, 13, 14, 15, 0]])
    step = torch.tensor([[1], [2], [1]])
    targets = torch.where(inputs > 0, inputs + step, 0)
    return {
        "inputs": inputs,
        "targets": targets,
        "lengths": torch.tensor([5, 3, 4]),
        "users": torch.tensor(users or [1, 2, 3]),
    }


@pytest.mark.parametrize("mode", ["init", "concat", "gate"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_shapes_and_finite_scores(mode, cell):
    recommender = model(mode, cell=cell, num_layers=2).eval()
    scores = recommender.score(batch())
    assert scores.shape == (3, 21)
    assert torch.isfinite(scores[:, 1:]).all()
    fusion = recommender.user_fusion
    assert isinstance(fusion, UserFusion)
    users = fusion.user_vectors(batch()["users"], 3)
    assert users.shape == (3, 6)
    summary = torch.randn(3, 5, 12)
    assert fusion.fuse(summary, users).shape == (3, 5, 12)


@pytest.mark.parametrize("cell, expected", [("gru", torch.Tensor), ("lstm", tuple)])
def test_init_sets_every_layer_and_both_lstm_states(cell, expected):
    fusion = model("init", cell=cell, num_layers=3).user_fusion
    assert fusion is not None
    state = fusion.initial_state(torch.randn(2, 6))
    assert isinstance(state, expected)
    for part in state if isinstance(state, tuple) else (state,):
        assert part.shape == (3, 2, 12)  # (L, B, H)


def first_position_scores(recommender: SequentialRecommender, user: int) -> torch.Tensor:
    """(3, N + 1) scores from the first position of every example, all as ``user``."""
    return recommender.score(
        {
            "inputs": batch()["inputs"],
            "lengths": torch.ones(3, dtype=torch.long),
            "users": torch.full((3,), user),
        }
    )


def test_init_changes_the_first_position_with_the_user():
    recommender = model("init").eval()
    assert not torch.allclose(
        first_position_scores(recommender, 1), first_position_scores(recommender, 2)
    )


def test_none_mode_has_no_user_parameters_and_ignores_users():
    plain, with_users = model(None).eval(), model("gate").eval()
    assert plain.user_fusion is None
    assert sum(p.numel() for p in plain.parameters()) < sum(
        p.numel() for p in with_users.parameters()
    )
    assert torch.equal(first_position_scores(plain, 1), first_position_scores(plain, 2))
    assert torch.equal(plain.score(batch([1, 2, 3])), plain.score(batch([3, 1, 2])))


@pytest.mark.parametrize("mode", ["init", "concat", "gate"])
def test_unknown_users_share_the_default_vector(mode):
    recommender = model(mode).eval()
    fusion = recommender.user_fusion
    assert fusion is not None
    same_input = {"inputs": torch.tensor([[3, 4, 5]] * 3), "lengths": torch.tensor([3] * 3)}
    # Users 0 and 4 have no training window; user 1 has.
    scores = recommender.score({**same_input, "users": torch.tensor([4, 0, 1])})
    assert torch.allclose(scores[0], scores[1])
    assert not torch.allclose(scores[0], scores[2])
    # A batch without users (a history typed in by hand) gets the default too.
    anonymous = recommender.score({**same_input})
    assert torch.allclose(anonymous[0], scores[0])
    assert fusion.users.pop_fallback_count() == 2  # users 0 and 4, counted once each
    assert fusion.users.pop_fallback_count() == 0


def test_known_users_are_those_with_windows():
    known = users_with_training_windows(np.array([1, 1, 3]), num_users=4)
    assert known.tolist() == [False, True, False, True, False]


def test_init_needs_a_recurrent_encoder():
    with pytest.raises(ValueError, match="recurrent encoder"):
        InitialStateFusion(num_users=3, hidden_size=4, state_shape=None)


@pytest.mark.filterwarnings(r"ignore:You are trying to `self.log\(\)`")
@pytest.mark.parametrize("mode", ["init", "concat", "gate"])
def test_a_few_steps_lower_the_loss(mode):
    losses = losses_over_steps(model(mode), batch())
    assert losses[-1] < 0.5 * losses[0]
