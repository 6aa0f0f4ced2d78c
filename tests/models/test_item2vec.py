import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnrec.data.datamodule import SequenceDataModule
from rnnrec.losses.cross_entropy import FullSoftmaxCrossEntropy
from rnnrec.models import item2vec, pretraining
from rnnrec.models.encoders import RecurrentEncoder
from rnnrec.models.sequential import SequentialRecommender

SETTINGS = {
    "method": "item2vec",
    "item2vec": {"window": 3, "negatives": 5, "epochs": 5, "batch_size": 512, "lr": 0.05},
}


@pytest.fixture
def planted(tmp_path: Path) -> SequenceDataModule:
    """Raw items 1..10 and 11..20 form two clusters; every user stays inside one."""
    rng = np.random.default_rng(0)
    lines = []
    for user in range(60):
        cluster = 1 if user % 2 else 11
        items = rng.integers(cluster, cluster + 10, size=15)
        lines += [f"{user} {item}" for item in items]
    path = tmp_path / "planted.txt"
    path.write_text("\n".join(lines) + "\n")
    return SequenceDataModule(
        name="planted", path=str(path), format="sasrec", cache_dir=str(tmp_path / "cache")
    )


def test_pairs_stay_within_a_sequence_and_window():
    items = np.array([1, 2, 3, 4, 5])
    sequence = np.array([0, 0, 0, 1, 1])
    centers, contexts = item2vec.skipgram_pairs(items, sequence, window=1)
    pairs = set(zip(centers.tolist(), contexts.tolist(), strict=True))
    assert pairs == {(1, 2), (2, 1), (2, 3), (3, 2), (4, 5), (5, 4)}
    centers, _ = item2vec.skipgram_pairs(items, sequence, window=5)
    assert len(centers) == 2 * (3 + 1)  # every pair within each sequence, both ways


def within_minus_across(planted: SequenceDataModule, vectors: np.ndarray) -> np.ndarray:
    """(N,) each item's mean cosine to its own cluster minus that to the other cluster."""
    assert planted.interactions is not None
    raw = planted.interactions.item_ids.astype(int)  # raw id of items 1..N
    cluster = raw <= 10  # (N,)
    unit = vectors[1:] / np.linalg.norm(vectors[1:], axis=1, keepdims=True)
    cosine = unit @ unit.T  # (N, N)
    same = cluster[:, None] == cluster[None, :]
    different = ~same
    np.fill_diagonal(same, False)  # an item's cosine with itself says nothing
    within = np.where(same, cosine, 0).sum(1) / same.sum(1)  # (N,)
    across = np.where(different, cosine, 0).sum(1) / different.sum(1)  # (N,)
    return within - across


def test_items_of_one_cluster_are_nearer_than_across(planted):
    vectors = pretraining.cached_item_vectors(planted, SETTINGS, dim=8)
    assert vectors.shape == (planted.num_items + 1, 8)
    assert not vectors[0].any()
    assert (within_minus_across(planted, vectors) > 0.3).all()


def test_the_cache_is_hit_the_second_time(planted, monkeypatch):
    calls = []
    train = item2vec.train_item2vec

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return train(*args, **kwargs)

    monkeypatch.setattr(item2vec, "train_item2vec", counting)
    first = pretraining.cached_item_vectors(planted, SETTINGS, dim=4)
    second = pretraining.cached_item_vectors(planted, SETTINGS, dim=4)
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)
    assert len(list(Path(planted.cache_dir).glob("planted-item2vec-*.npz"))) == 1
    # Any setting that shapes the vectors is part of the key.
    pretraining.cached_item_vectors(planted, SETTINGS, dim=6)
    assert len(calls) == 2


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_bprmf_vectors_also_separate_the_clusters(planted):
    settings = {"method": "bprmf", "bprmf": {"epochs": 30, "lr": 0.05, "weight_decay": 0.0}}
    vectors = pretraining.cached_item_vectors(planted, settings, dim=8)
    assert vectors.shape == (planted.num_items + 1, 8)
    assert (within_minus_across(planted, vectors) > 0.1).all()


@pytest.mark.filterwarnings(r"ignore:You are trying to `self.log\(\)`")
@pytest.mark.parametrize("freeze", [True, False])
def test_pretrained_table_is_loaded_and_freeze_keeps_it(freeze):
    torch.manual_seed(0)
    vectors = np.random.default_rng(0).normal(size=(21, 8)).astype(np.float32) * 5
    recommender = SequentialRecommender(
        num_items=20,
        encoder=functools.partial(RecurrentEncoder, cell="gru", hidden_size=8),
        loss=FullSoftmaxCrossEntropy(),
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        embedding_size=8,
        tie_weights=True,
        embedding={"name": "pretrained", "freeze": freeze},
        pretrained_item_vectors=vectors,
    )
    table = recommender.item_embedding.weight.detach().clone()
    # Same directions as the pretrained vectors, rescaled to rows of mean norm 1.
    cosine = torch.nn.functional.cosine_similarity(table[1:], torch.from_numpy(vectors[1:]))
    assert torch.allclose(cosine, torch.ones(20), atol=1e-5)
    assert table[1:].norm(dim=1).mean() == pytest.approx(1.0, rel=1e-4)
    assert not table[0].any()

    encoder_before = recommender.encoder.rnn.weight_ih_l0.detach().clone()
    optimizer = recommender.configure_optimizers()
    inputs = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 0]])
    batch = {"inputs": inputs, "targets": torch.where(inputs > 0, inputs + 1, 0)}
    for _ in range(3):
        optimizer.zero_grad()
        recommender.training_step(batch, 0).backward()
        optimizer.step()
    assert torch.equal(recommender.item_embedding.weight, table) == freeze
    assert not torch.equal(recommender.encoder.rnn.weight_ih_l0, encoder_before)
