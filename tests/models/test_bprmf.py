"""BPR-MF: positive pairs, negatives, scores, recovery of planted clusters, config."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from hydra import compose, initialize_config_dir

from rnnrec.models.bprmf import BPRMFRecommender
from rnnrec.train import CONFIG_DIR, build_model_from_facts


def model(num_items: int = 20, num_users: int = 30, **options) -> BPRMFRecommender:
    torch.manual_seed(0)
    return BPRMFRecommender(
        num_items=num_items,
        num_users=num_users,
        optimizer=functools.partial(torch.optim.Adam, lr=0.05),
        embedding_size=options.pop("embedding_size", 8),
        **options,
    )


def test_positive_pairs_are_the_window_items_once_each():
    inputs = torch.tensor([[4, 5, 6], [7, 8, 0]])
    batch = {
        "inputs": inputs,
        "targets": torch.tensor([[5, 6, 9], [8, 3, 0]]),
        "lengths": torch.tensor([3, 2]),
        "users": torch.tensor([2, 5]),
    }
    users, items = model().positive_pairs(batch)
    assert users.tolist() == [2, 2, 2, 2, 5, 5, 5]
    assert items.tolist() == [4, 5, 6, 9, 7, 8, 3]


def test_negatives_never_include_padding():
    recommender = model(num_items=3)
    negatives = recommender.sample_negatives(10_000)
    assert negatives.min() == 1 and negatives.max() == 3
    assert set(negatives.tolist()) == {1, 2, 3}


def test_scores_are_dot_products_plus_bias_and_never_padding():
    recommender = model()
    with torch.no_grad():
        recommender.item_bias.weight.normal_()
    users = torch.tensor([1, 4])
    scores = recommender.score({"users": users, "targets": torch.ones(2, dtype=torch.long)})
    assert scores.shape == (2, 21)
    assert torch.isneginf(scores[:, 0]).all()
    expected = (
        recommender.user_embedding(users) @ recommender.item_vectors().T
        + recommender.item_bias.weight.T
    )
    torch.testing.assert_close(scores[:, 1:], expected[:, 1:])
    assert recommender.item_vectors().shape == (21, 8)
    assert not recommender.item_vectors()[0].any()


def test_loss_is_the_stable_logistic_loss_of_the_margin():
    recommender = model()
    batch = {
        "inputs": torch.tensor([[1, 2]]),
        "targets": torch.tensor([[2, 3]]),
        "lengths": torch.tensor([2]),
        "users": torch.tensor([1]),
    }
    with torch.no_grad():
        recommender.item_embedding.weight.mul_(1e4)  # margins far beyond float range of exp
    loss = recommender.bpr_loss(batch)
    assert torch.isfinite(loss)
    assert loss >= 0
    assert F.logsigmoid(torch.tensor(-1e6)) == pytest.approx(-1e6)


def planted_batches(steps: int) -> list[dict[str, torch.Tensor]]:
    """Users 1..15 see only items 1..10, users 16..30 only items 11..20."""
    generator = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(steps):
        users = torch.randint(1, 31, (16,), generator=generator)  # (B,)
        offset = torch.where(users <= 15, 0, 10).unsqueeze(1)  # (B, 1)
        items = torch.randint(1, 11, (16, 6), generator=generator) + offset  # (B, T + 1)
        batches.append(
            {
                "inputs": items[:, :-1],
                "targets": items[:, 1:],
                "lengths": torch.full((16,), 5),
                "users": users,
            }
        )
    return batches


def mean_cosine(vectors: torch.Tensor, first: slice, second: slice) -> float:
    normed = F.normalize(vectors, dim=-1)
    similarity = normed[first] @ normed[second].T
    if first == second:  # leave out each item's cosine with itself
        count = similarity.size(0)
        return float((similarity.sum() - similarity.diagonal().sum()) / (count * (count - 1)))
    return float(similarity.mean())


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_training_recovers_planted_item_clusters():
    recommender = model()
    optimizer = recommender.configure_optimizers()
    losses = []
    for batch in planted_batches(300):
        optimizer.zero_grad()
        loss = recommender.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # Half the uniform negatives fall in the user's own cluster, where no margin can be
    # learnt: the loss floor is about log(2) / 2 = 0.35, down from log(2) = 0.69.
    assert sum(losses[-20:]) / 20 < 0.45

    vectors = recommender.item_vectors()
    first, second = slice(1, 11), slice(11, 21)
    within = (mean_cosine(vectors, first, first) + mean_cosine(vectors, second, second)) / 2
    across = mean_cosine(vectors, first, second)
    assert within > across + 0.5
    # Users rank their own cluster first.
    scores = recommender.score({"users": torch.tensor([1, 30]), "targets": torch.ones(2)})
    assert (scores[0, 1:11].min() > scores[0, 11:].max()).item()
    assert (scores[1, 11:].min() > scores[1, 1:11].max()).item()


def test_config_passes_users_items_and_the_optimizer():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["model=bprmf", "model.embedding_size=4"])
    recommender = build_model_from_facts(
        cfg.model, {"num_items": lambda: 20, "num_users": lambda: 7}
    )
    assert isinstance(recommender, BPRMFRecommender)
    assert recommender.user_embedding.weight.shape == (8, 4)
    assert isinstance(recommender.configure_optimizers(), torch.optim.Adam)
