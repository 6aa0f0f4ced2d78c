"""Tests for rnnrec.models.heads and the multitask loss of SequentialRecommender."""

from __future__ import annotations

import functools

import pytest
import torch
from torch.nn import functional as F  # noqa: N812

from rnnrec.losses.cross_entropy import FullSoftmaxCrossEntropy
from rnnrec.models.encoders import RecurrentEncoder
from rnnrec.models.heads import GenreHead, HeadInput, RatingHead, build_heads
from rnnrec.models.sequential import SequentialRecommender

NUM_ITEMS, NUM_GENRES = 20, 4


def genre_matrix() -> torch.Tensor:
    """(N + 1, G): item i has genre i % G; items 0 (padding) and 20 have none."""
    matrix = torch.zeros(NUM_ITEMS + 1, NUM_GENRES)
    items = torch.arange(1, NUM_ITEMS)
    matrix[items, items % NUM_GENRES] = 1.0
    return matrix


def model(task: dict | None) -> SequentialRecommender:
    torch.manual_seed(0)
    return SequentialRecommender(
        num_items=NUM_ITEMS,
        encoder=functools.partial(RecurrentEncoder, cell="gru", hidden_size=12),
        loss=FullSoftmaxCrossEntropy(),
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        embedding_size=8,
        task=task,
        genre_matrix=genre_matrix(),
        rating_mean=3.0,
    )


def batch() -> dict[str, torch.Tensor]:
    inputs = torch.tensor([[1, 2, 3, 4, 5], [7, 8, 9, 0, 0], [12, 18, 19, 15, 0]])
    targets = torch.tensor([[2, 3, 4, 5, 6], [8, 9, 10, 0, 0], [18, 19, 20, 16, 0]])
    ratings = torch.where(targets > 0, 1.0 + targets % 5, 0.0)
    return {
        "inputs": inputs,
        "targets": targets,
        "lengths": torch.tensor([5, 3, 4]),
        "ratings": ratings,
    }


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_total_loss_is_next_item_plus_weighted_heads():
    weights = {"rating": 0.3, "genre": 0.7}
    recommender = model({"heads": {name: {"weight": w} for name, w in weights.items()}}).eval()
    b = batch()
    losses = recommender.training_losses(b)
    assert set(losses) == {"next_item", "rating", "genre", "total"}

    # The parts, computed here from the model's pieces.
    mask = b["inputs"] > 0
    summaries = recommender.attention(recommender.encode(b["inputs"]), mask)[mask]  # (P, H)
    targets = b["targets"][mask]
    next_item = F.cross_entropy(recommender.scorer(summaries), targets)
    rating_head, genre_head = recommender.heads["rating"], recommender.heads["genre"]
    predicted = rating_head.predict(summaries, recommender.item_embedding(targets))
    rating = F.mse_loss(predicted, b["ratings"][mask])
    genres = genre_matrix()[targets]
    known = genres.any(dim=1)  # item 20 has no genre: left out
    assert not known.all()
    genre = F.binary_cross_entropy_with_logits(
        genre_head.classifier(summaries[known]), genres[known]
    )

    torch.testing.assert_close(losses["next_item"], next_item)
    torch.testing.assert_close(losses["rating"], rating)
    torch.testing.assert_close(losses["genre"], genre)
    torch.testing.assert_close(losses["total"], next_item + 0.3 * rating + 0.7 * genre)


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_without_heads_the_total_is_the_next_item_loss():
    recommender = model(None).eval()
    losses = recommender.training_losses(batch())
    assert set(losses) == {"next_item", "total"}
    assert len(recommender.heads) == 0
    torch.testing.assert_close(losses["total"], losses["next_item"])


def test_rating_head_lowers_mse_on_a_toy_batch():
    torch.manual_seed(0)
    summaries, vectors = torch.randn(64, 12), torch.randn(64, 8)
    ratings = (3.0 + summaries[:, 0] - vectors[:, 1]).clamp(1, 5)  # learnable from inputs
    head = RatingHead(hidden_size=12, embedding_size=8, rating_mean=3.0)
    x = HeadInput(summaries, torch.ones(64, dtype=torch.long), vectors, ratings)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.01)
    losses = []
    for _ in range(100):
        optimizer.zero_grad()
        loss = head.loss(x)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_rating_rmse_covers_the_evaluation_targets():
    recommender = model({"heads": {"rating": {"weight": 0.1}}}).eval()
    b = {
        "inputs": torch.tensor([[1, 2], [3, 0]]),
        "lengths": torch.tensor([2, 1]),
        "targets": torch.tensor([3, 4]),
        "target_ratings": torch.tensor([4.0, 2.0]),
    }
    with torch.no_grad():
        scores = recommender.evaluation_scores(b, "val")
        summary = recommender.attention.last(recommender.encode(b["inputs"]), b["lengths"])
        predicted = recommender.heads["rating"].predict(
            summary, recommender.item_embedding(b["targets"])
        )
    assert scores.shape == (2, NUM_ITEMS + 1)
    rmse = recommender.heads["rating"].compute_metrics("val")["rating_rmse"]
    torch.testing.assert_close(rmse, F.mse_loss(predicted, b["target_ratings"]).sqrt())
    assert recommender.heads["rating"].compute_metrics("test") == {}  # no test batch yet


def test_rating_head_starts_at_the_mean_rating():
    head = RatingHead(hidden_size=4, embedding_size=4, rating_mean=3.5)
    with torch.no_grad():
        head.mlp[0].weight.zero_()  # the output bias alone is left
        head.mlp[0].bias.zero_()
    assert torch.allclose(head.predict(torch.randn(3, 4), torch.randn(3, 4)), torch.tensor(3.5))


def test_genre_matrix_is_not_saved_with_the_weights():
    head = GenreHead(hidden_size=4, genre_matrix=genre_matrix())
    assert "genres" not in head.state_dict()


def test_unknown_head_and_missing_genres_are_named():
    with pytest.raises(ValueError, match="task.heads.price"):
        build_heads({"price": {}}, hidden_size=4, embedding_size=4)
    with pytest.raises(ValueError, match="task.genre needs item genres"):
        build_heads({"genre": {"weight": 0.1}}, hidden_size=4, embedding_size=4)
    with pytest.raises(ValueError, match="task.heads.rating.weight"):
        build_heads({"rating": {"weight": -1}}, hidden_size=4, embedding_size=4)
