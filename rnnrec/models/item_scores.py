"""Scores of the whole catalogue for a batch, handed out one block of items at a time.

Evaluation with ``eval.item_block_size`` ranks the catalogue block by block, so it never
holds a (batch x catalogue) matrix. Models whose scores are a dot product of a per-example
vector with an item table, plus an item bias, give :class:`DotProductScores`, which computes
only the block asked for. Other models give :class:`FullScores`: the whole matrix, computed
once, sliced into blocks (the fallback, which bounds only the memory of the ranking itself).
"""

from __future__ import annotations

import torch

# Rows of the (rows x rows) products that score each row's own item (see of_items).
_TARGET_CHUNK = 1024


class ItemScores:
    """Interface: scores of items ``0 .. num_columns - 1`` (0 is padding) for B examples.

    Nothing is excluded here: padding and seen items get their raw scores, and the caller
    sets them to minus infinity in each block it asks for.
    """

    num_columns: int  # N + 1

    def block(self, start: int, end: int) -> torch.Tensor:
        """(B, end - start) scores of items ``start .. end - 1``; the caller may modify it."""
        raise NotImplementedError

    def of_items(self, items: torch.Tensor) -> torch.Tensor:
        """(B,) score of item ``items[b]`` for example ``b``, equal to its entry in a block."""
        raise NotImplementedError


class FullScores(ItemScores):
    """The fallback: a (B, N + 1) matrix computed whole, served in blocks (copies)."""

    def __init__(self, scores: torch.Tensor) -> None:
        self.scores = scores  # (B, N + 1)
        self.num_columns = scores.size(1)

    def block(self, start: int, end: int) -> torch.Tensor:
        return self.scores[:, start:end].clone()  # (B, C)

    def of_items(self, items: torch.Tensor) -> torch.Tensor:
        return self.scores.gather(1, items.unsqueeze(1)).squeeze(1)  # (B,)


class DotProductScores(ItemScores):
    """Scores ``queries @ item_vectors.T + bias``, computed for one block of items at a time.

    Args:
        queries: (B, D) one vector per example (a projected sequence summary, a user vector).
        item_vectors: (N + 1, D) one vector per item.
        bias: (N + 1,) item bias, or ``None``.
    """

    def __init__(
        self, queries: torch.Tensor, item_vectors: torch.Tensor, bias: torch.Tensor | None
    ) -> None:
        self.queries = queries  # (B, D)
        self.item_vectors = item_vectors  # (N + 1, D)
        self.bias = bias  # (N + 1,) or None
        self.num_columns = item_vectors.size(0)

    def block(self, start: int, end: int) -> torch.Tensor:
        # Same formula as the whole-catalogue scorers (matrix product, then the bias), so a
        # block holds the same numbers as the matching columns of the whole matrix wherever
        # the matrix library rounds alike for both shapes.
        scores = self.queries @ self.item_vectors[start:end].T  # (B, C)
        if self.bias is not None:
            scores = scores + self.bias[start:end]
        return scores

    def of_items(self, items: torch.Tensor) -> torch.Tensor:
        # The diagonal of a (rows x rows) matrix product, not a row-wise sum of products: a
        # product sums in the order the blocks do, an elementwise sum may round differently,
        # and a one-ulp difference would flip ties between the target and another item.
        parts = []
        for begin in range(0, len(items), _TARGET_CHUNK):
            chunk = items[begin : begin + _TARGET_CHUNK]  # (R,)
            products = self.queries[begin : begin + _TARGET_CHUNK] @ self.item_vectors[chunk].T
            parts.append(products.diagonal())  # (R,)
        scores = torch.cat(parts) if parts else self.queries.new_zeros(0)  # (B,)
        return scores if self.bias is None else scores + self.bias[items]


class SharedScores(ItemScores):
    """One (N + 1,) score vector shared by all B examples (e.g. popularity)."""

    def __init__(self, scores: torch.Tensor, batch_size: int) -> None:
        self.scores = scores  # (N + 1,)
        self.batch_size = batch_size
        self.num_columns = scores.size(0)

    def block(self, start: int, end: int) -> torch.Tensor:
        return self.scores[start:end].expand(self.batch_size, -1).clone()  # (B, C)

    def of_items(self, items: torch.Tensor) -> torch.Tensor:
        return self.scores[items]  # (B,)


class SeenItems:
    """A batch's seen (example, item) pairs, sorted by item to exclude them block by block.

    Args:
        examples: (S,) example of each seen item.
        items: (S,) the seen items.
    """

    def __init__(self, examples: torch.Tensor, items: torch.Tensor) -> None:
        order = torch.argsort(items, stable=True)  # (S,)
        self.examples = examples[order]  # (S,)
        self.items = items[order]  # (S,) ascending

    @classmethod
    def from_batch(cls, batch: dict[str, torch.Tensor]) -> SeenItems:
        """From an evaluation batch's ``seen_example`` and ``seen_items``."""
        return cls(batch["seen_example"], batch["seen_items"])

    def exclude(self, scores: torch.Tensor, start: int) -> None:
        """Set seen items of the block ``start .. start + C - 1`` to -inf in (B, C) ``scores``."""
        bounds = torch.tensor([start, start + scores.size(1)], device=self.items.device)
        low, high = torch.searchsorted(self.items, bounds).tolist()
        scores[self.examples[low:high], self.items[low:high] - start] = float("-inf")

    def contains(self, targets: torch.Tensor) -> torch.Tensor:
        """(B,) True where example ``b``'s target ``targets[b]`` is one of its seen items."""
        hit = self.items == targets[self.examples]  # (S,)
        found = torch.zeros(len(targets), dtype=torch.bool, device=targets.device)  # (B,)
        found[self.examples[hit]] = True
        return found
