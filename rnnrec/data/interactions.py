"""The preprocessed interaction log: contiguous ids, sorted by user and then time."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Interactions:
    """Interactions after preprocessing, in CSR layout.

    Rows are sorted by user and, within a user, by timestamp (ties keep file order). Users are
    numbered ``1..num_users`` and items ``1..num_items``; item 0 is padding and never a real
    item. ``user_ids[u - 1]`` and ``item_ids[i - 1]`` give the raw ids from the input file.
    """

    user: np.ndarray  # (R,) int64, non-decreasing
    item: np.ndarray  # (R,) int64 in 1..num_items
    timestamp: np.ndarray  # (R,) numeric
    rating: np.ndarray | None  # (R,) float64, when the file has ratings
    user_ids: np.ndarray  # (num_users,) raw user ids
    item_ids: np.ndarray  # (num_items,) raw item ids

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.user)

    @cached_property
    def user_ptr(self) -> np.ndarray:
        """(num_users + 2,) offsets: user ``u`` owns rows ``user_ptr[u]:user_ptr[u + 1]``."""
        counts = np.bincount(self.user, minlength=self.num_users + 1)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def item_popularity(self, rows: np.ndarray | None = None) -> np.ndarray:
        """(num_items + 1,) interaction count per item, over ``rows`` or all rows."""
        items = self.item if rows is None else self.item[rows]
        return np.bincount(items, minlength=self.num_items + 1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for caching with ``numpy.savez``."""
        arrays = {
            "user": self.user,
            "item": self.item,
            "timestamp": self.timestamp,
            "user_ids": _storable(self.user_ids),
            "item_ids": _storable(self.item_ids),
        }
        if self.rating is not None:
            arrays["rating"] = self.rating
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Interactions:
        return cls(
            user=arrays["user"],
            item=arrays["item"],
            timestamp=arrays["timestamp"],
            rating=arrays.get("rating"),
            user_ids=arrays["user_ids"],
            item_ids=arrays["item_ids"],
        )


def _storable(ids: np.ndarray) -> np.ndarray:
    # Object arrays would need pickle to be saved; fixed-width unicode does not.
    return ids if ids.dtype.kind in "iu" else ids.astype(str)
