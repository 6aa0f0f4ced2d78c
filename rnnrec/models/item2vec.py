"""item2vec: skip-gram with negative sampling over item sequences (word2vec for items)."""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

log = logging.getLogger(__name__)


def skipgram_pairs(
    items: np.ndarray, sequence: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """(center, context) pairs of every two items at most ``window`` apart in one sequence.

    Args:
        items: (R,) item ids, each sequence's items contiguous and in order.
        sequence: (R,) the sequence each item belongs to (equal within a sequence).
        window: largest distance between a center and its context.

    Returns:
        ``(centers, contexts)``, (P,) int32 each; both directions of every pair.
    """
    if window < 1:
        raise ValueError(f"item2vec.window must be at least 1, got {window}")
    offsets = np.arange(1, window + 1)
    later = np.arange(len(items))[:, None] + offsets  # (R, W) rows `offset` ahead
    inside = later < len(items)
    later = np.minimum(later, len(items) - 1)
    # A pair must not cross into the next sequence.
    valid = inside & (sequence[later] == sequence[:, None])  # (R, W)
    rows, _ = np.nonzero(valid)
    left, right = items[rows], items[later[valid]]
    centers = np.concatenate([left, right]).astype(np.int32)
    contexts = np.concatenate([right, left]).astype(np.int32)
    return centers, contexts


def train_item2vec(
    items: np.ndarray,
    sequence: np.ndarray,
    num_items: int,
    dim: int,
    window: int = 5,
    negatives: int = 5,
    epochs: int = 5,
    batch_size: int = 4096,
    lr: float = 0.01,
    seed: int = 0,
) -> np.ndarray:
    """Learn (N + 1, dim) item vectors by skip-gram with negative sampling; row 0 is zero.

    Negatives are drawn from the unigram distribution raised to 3/4, as in word2vec, so
    popular items are contrasted often but do not crowd out the rest.

    Args:
        items, sequence: the training sequences, as in :func:`skipgram_pairs`.
        num_items: catalogue size N; item ids run 1..N.
        dim: vector size.
        window: largest distance between a center and its context.
        negatives: noise items per (center, context) pair.
        epochs: passes over all pairs.
        batch_size: pairs per optimisation step.
        lr: Adam learning rate.
        seed: seeds initialisation, shuffling and negative sampling.
    """
    centers_np, contexts_np = skipgram_pairs(items, sequence, window)
    if len(centers_np) == 0:
        raise ValueError("item2vec found no item pairs: every training sequence is one item")
    generator = torch.Generator().manual_seed(seed)
    centers, contexts = torch.from_numpy(centers_np), torch.from_numpy(contexts_np)

    noise = np.bincount(items, minlength=num_items + 1).astype(np.float64) ** 0.75
    noise[0] = 0.0  # never draw padding
    noise_t = torch.from_numpy(noise / noise.sum())

    # word2vec's start: small random input vectors, zero output vectors.
    inputs = torch.nn.Parameter(torch.randn(num_items + 1, dim, generator=generator) * dim**-0.5)
    outputs = torch.nn.Parameter(torch.zeros(num_items + 1, dim))
    optimizer = torch.optim.Adam([inputs, outputs], lr=lr)

    for epoch in range(epochs):
        order = torch.randperm(len(centers), generator=generator)
        total = 0.0
        for batch in order.split(batch_size):
            center = inputs[centers[batch].long()]  # (B, E)
            context = outputs[contexts[batch].long()]  # (B, E)
            drawn = torch.multinomial(
                noise_t, len(batch) * negatives, replacement=True, generator=generator
            )
            noise_vectors = outputs[drawn.view(len(batch), negatives)]  # (B, K, E)
            positive = F.logsigmoid((center * context).sum(-1))  # (B,)
            negative = F.logsigmoid(-(noise_vectors @ center.unsqueeze(-1)).squeeze(-1))  # (B, K)
            loss = -(positive + negative.sum(-1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        log.info("item2vec epoch %d: loss %.4f, %d pairs", epoch, total / len(order), len(order))

    vectors = inputs.detach().numpy().astype(np.float32)
    vectors[0] = 0.0
    return vectors
