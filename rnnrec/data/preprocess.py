"""Preprocessing of a raw interaction log: filtering, de-duplication, sorting, id remapping."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pandas as pd

from rnnrec.data.interactions import Interactions

log = logging.getLogger(__name__)

DuplicatePolicy = Literal["keep_all", "first", "last"]


def preprocess(
    frame: pd.DataFrame,
    rating_threshold: float | None = None,
    duplicates: DuplicatePolicy = "keep_all",
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
) -> Interactions:
    """Turn a raw frame (``user``, ``item``, ``timestamp`` and maybe ``rating``) into ids.

    Steps, each logged with counts before and after: keep ratings ``>= rating_threshold``;
    sort by user and timestamp (stable, so ties keep file order); drop repeated (user, item)
    pairs by ``duplicates`` policy; iterative k-core filtering until every user and item has
    the minimum number of interactions; remap raw ids to ``1..N`` (0 is padding).
    """
    user_codes, user_ids = pd.factorize(frame["user"], sort=True)
    item_codes, item_ids = pd.factorize(frame["item"], sort=True)
    timestamp = frame["timestamp"].to_numpy()
    rating = frame["rating"].to_numpy(np.float64) if "rating" in frame else None
    _log_counts("read", user_codes, item_codes)

    keep = np.ones(len(frame), dtype=bool)
    if rating_threshold is not None:
        if rating is None:
            raise ValueError(
                "data.preprocessing.rating_threshold is set but the data has no rating column; "
                "set data.rating_col or data.preprocessing.rating_threshold=null"
            )
        keep &= rating >= rating_threshold
        _log_counts(f"rating >= {rating_threshold}", user_codes[keep], item_codes[keep])

    # Stable sorts: first by time, then by user, so equal timestamps keep file order.
    order = np.flatnonzero(keep)
    order = order[np.argsort(timestamp[order], kind="stable")]
    order = order[np.argsort(user_codes[order], kind="stable")]

    if duplicates != "keep_all":
        if duplicates not in ("first", "last"):
            raise ValueError(
                f"data.preprocessing.duplicates must be keep_all, first or last, got {duplicates!r}"
            )
        pair = user_codes[order].astype(np.int64) * len(item_ids) + item_codes[order]
        order = order[~pd.Series(pair).duplicated(keep=duplicates).to_numpy()]
        _log_counts(f"duplicates={duplicates}", user_codes[order], item_codes[order])

    order = _k_core(order, user_codes, item_codes, min_user_interactions, min_item_interactions)
    if len(order) == 0:
        raise ValueError(
            "no interactions left after preprocessing; lower "
            "data.preprocessing.min_user_interactions, "
            "data.preprocessing.min_item_interactions or data.preprocessing.rating_threshold"
        )

    # np.unique keeps the sorted order of the codes, so rows stay sorted by user.
    kept_users, user = np.unique(user_codes[order], return_inverse=True)
    kept_items, item = np.unique(item_codes[order], return_inverse=True)
    return Interactions(
        user=user.astype(np.int64) + 1,
        item=item.astype(np.int64) + 1,
        timestamp=timestamp[order],
        rating=None if rating is None else rating[order],
        user_ids=np.asarray(user_ids)[kept_users],
        item_ids=np.asarray(item_ids)[kept_items],
    )


def _k_core(
    order: np.ndarray,
    user_codes: np.ndarray,
    item_codes: np.ndarray,
    min_user: int,
    min_item: int,
) -> np.ndarray:
    """Drop users and items below their minimum count, repeatedly, until none is left."""
    if min_user <= 1 and min_item <= 1:
        return order
    rounds = 0
    while True:
        users, items = user_codes[order], item_codes[order]
        user_ok = np.bincount(users)[users] >= min_user
        item_ok = np.bincount(items)[items] >= min_item
        keep = user_ok & item_ok
        if keep.all():
            break
        order = order[keep]
        rounds += 1
    _log_counts(
        f"{min_user}-core users, {min_item}-core items ({rounds} rounds)",
        user_codes[order],
        item_codes[order],
    )
    return order


def _log_counts(step: str, users: np.ndarray, items: np.ndarray) -> None:
    log.info(
        "%-40s %10d interactions %8d users %8d items",
        step,
        len(users),
        np.count_nonzero(np.bincount(users)) if len(users) else 0,
        np.count_nonzero(np.bincount(items)) if len(items) else 0,
    )
