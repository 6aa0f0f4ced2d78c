"""Item-based k-nearest-neighbour baseline: cosine item-item similarity on training users."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from rnnrec.data.interactions import Interactions
from rnnrec.models.ranking_module import RankingModule

log = logging.getLogger(__name__)

# The similarity is stored as plain COO buffers (a sparse buffer would not survive every
# state-dict round trip); their sizes depend on the data.
SIMILARITY_BUFFERS = ("similarity_index", "similarity_values")


def training_matrix(interactions: Interactions, train_end: np.ndarray) -> sp.csr_matrix:
    """Binary (U + 1, N + 1) user x item matrix of the training interactions.

    User ``u`` trains on rows ``user_ptr[u]:train_end[u]``; rows are sorted by user, so row
    ``r`` is a training row exactly when ``r < train_end[user[r]]``. Row and column 0 stay
    empty (no user 0, item 0 is padding).
    """
    user, item = interactions.user, interactions.item
    train = np.arange(len(user)) < train_end[user]  # (R,)
    shape = (interactions.num_users + 1, interactions.num_items + 1)
    values = np.ones(int(train.sum()), dtype=np.float32)
    matrix = sp.csr_matrix((values, (user[train], item[train])), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # repeated (user, item) pairs count once
    return matrix


def item_similarity(matrix: sp.spmatrix, neighbours: int, shrink: float = 0.0) -> sp.csr_matrix:
    """Cosine similarity between the columns of a binary user x item matrix, top-k pruned.

    ``sim(i, j) = c_ij / (sqrt(c_i) sqrt(c_j) + shrink)`` with ``c_ij`` the users of both
    items and ``c_i`` the users of item ``i``; ``shrink`` pulls similarities resting on few
    common users towards 0. The diagonal is dropped, then row ``i`` keeps its ``neighbours``
    largest entries (ties: the lower item id).

    Returns:
        (N + 1, N + 1) CSR matrix, row ``i`` holding the neighbours of item ``i``.
    """
    binary = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    binary.data[:] = 1.0
    counts = np.asarray(binary.sum(axis=0)).ravel()  # (N + 1,) users per item
    common = (binary.T @ binary).tocoo()  # (N + 1, N + 1) users per item pair
    off_diagonal = common.row != common.col
    row, col = common.row[off_diagonal], common.col[off_diagonal]
    norms = np.sqrt(counts)
    values = common.data[off_diagonal] / (norms[row] * norms[col] + shrink)

    # Sort by row, then by similarity descending; lexsort is stable, so ties keep the
    # ascending column order that coo from csr already has.
    order = np.lexsort((col, -values, row))
    row, col, values = row[order], col[order], values[order]
    rank = np.arange(len(row)) - np.searchsorted(row, row, side="left")  # place within row
    keep = rank < neighbours
    size = matrix.shape[1]
    similarity = sp.csr_matrix((values[keep], (row[keep], col[keep])), shape=(size, size))
    similarity.sort_indices()
    return similarity


class ItemKNNRecommender(RankingModule):
    """Scores item ``j`` by ``sum over history items i of sim(i, j)``; nothing to train.

    The history is the evaluation batch's ``seen_example``/``seen_items`` (every item before
    the target), taken as a set, so the model also scores a bare list of items (no user).

    Args:
        train_matrix: (U + 1, N + 1) user x item training matrix (see :func:`training_matrix`);
            nonzero entries count as 1. ``None`` leaves the similarity empty, to be restored
            from a state dict.
        num_items: catalogue size N; needed only without ``train_matrix``.
        neighbours: similarities kept per item (its k nearest neighbours).
        shrink: added to the cosine denominator; 0 gives the plain cosine.
        item_block_size: see :class:`rnnrec.models.ranking_module.RankingModule`. Scores are
            sums of similarities over a (B, N + 1) history matrix, not a dot product with an
            item table, so they are computed whole: the block size bounds only the ranking.
    """

    trainable = False
    similarity_index: torch.Tensor
    similarity_values: torch.Tensor

    def __init__(
        self,
        train_matrix: sp.spmatrix | None = None,
        num_items: int | None = None,
        neighbours: int = 100,
        shrink: float = 0.0,
        ks: Sequence[int] = (5, 10, 20),
        exclude_seen: bool = True,
        item_block_size: int | None = None,
    ) -> None:
        super().__init__(ks=ks, exclude_seen=exclude_seen, item_block_size=item_block_size)
        if neighbours < 1:
            raise ValueError(f"model.neighbours must be at least 1, got {neighbours}")
        if train_matrix is None and num_items is None:
            raise ValueError("ItemKNNRecommender needs train_matrix or num_items")
        size = train_matrix.shape[1] if train_matrix is not None else int(num_items or 0) + 1
        if num_items is not None and size != num_items + 1:
            raise ValueError(f"train_matrix has {size} columns, expected num_items + 1")
        self.num_items = size - 1
        if train_matrix is None:
            similarity = sp.csr_matrix((size, size), dtype=np.float32)
        else:
            similarity = item_similarity(train_matrix, neighbours, shrink)
            log.info(
                "item-kNN: %d similarities kept (at most %d per item)", similarity.nnz, neighbours
            )
        # Scores are history @ similarity; store the transpose, whose rows are target items,
        # so that scoring is one sparse (N + 1, N + 1) @ dense (N + 1, B) product. CSR rows
        # with sorted columns give coalesced COO indices, which need no sort at scoring time.
        transposed = similarity.T.tocsr()
        transposed.sort_indices()
        rows = np.repeat(np.arange(size), np.diff(transposed.indptr))
        index = np.stack([rows, transposed.indices]).astype(np.int64)  # (2, nnz)
        self.register_buffer("similarity_index", torch.from_numpy(index))
        self.register_buffer(
            "similarity_values", torch.from_numpy(transposed.data.astype(np.float32))
        )

    def similarity(self) -> torch.Tensor:
        """(N + 1, N + 1) sparse matrix; entry (j, i) is sim(i, j)."""
        size = self.num_items + 1
        return torch.sparse_coo_tensor(
            self.similarity_index,
            self.similarity_values,
            size=(size, size),
            is_coalesced=True,
            check_invariants=False,  # built from a checked scipy matrix or a state dict
        )

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        batch_size = len(batch["targets"])
        history = torch.zeros(
            batch_size, self.num_items + 1, device=self.similarity_values.device
        )  # (B, N + 1)
        history[batch["seen_example"], batch["seen_items"]] = 1.0  # a set: repeats count once
        scores = (self.similarity() @ history.T).T  # (B, N + 1)
        scores[:, 0] = float("-inf")
        return scores

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # How many similarities survive pruning depends on the data: take the stored sizes.
        for name in SIMILARITY_BUFFERS:
            stored = state_dict.get(prefix + name)
            if stored is not None:
                current = getattr(self, name)
                setattr(self, name, current.new_empty(stored.shape))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
