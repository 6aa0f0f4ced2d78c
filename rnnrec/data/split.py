"""Train/validation/test splits decided on interactions, before any example is built."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from rnnrec.data.interactions import Interactions

log = logging.getLogger(__name__)


class LeakageError(RuntimeError):
    """A validation or test target is also a training target."""


@dataclass(frozen=True)
class Split:
    """Which rows of an :class:`Interactions` each part may use.

    User ``u`` trains on rows ``user_ptr[u]:train_end[u]``. An evaluation target at row ``r``
    sees as input every earlier row of its user, ``user_ptr[user[r]]:r``, which never reaches
    past the target: no information from the future.
    """

    train_end: np.ndarray  # (num_users + 1,) exclusive end row of each user's training part
    val_rows: np.ndarray  # (V,) rows of validation targets
    test_rows: np.ndarray  # (S,) rows of test targets


def leave_one_out(data: Interactions) -> Split:
    """Last interaction is the test target, second-to-last the validation target.

    A user with two interactions gets a test target and no validation target; a user with one
    gets neither.
    """
    ptr = data.user_ptr
    start, end = ptr[1:-1], ptr[2:]  # per user 1..U
    count = end - start
    test_rows = (end - 1)[count >= 2]
    val_rows = (end - 2)[count >= 3]
    train_end = np.where(count >= 3, end - 2, np.where(count == 2, end - 1, end))
    split = Split(np.concatenate([[0], train_end]), val_rows, test_rows)
    _log_split("leave-one-out", data, split)
    return split


def temporal(
    data: Interactions,
    val_cutoff: float | None = None,
    test_cutoff: float | None = None,
    val_quantile: float = 0.8,
    test_quantile: float = 0.9,
) -> Split:
    """Global temporal split at two cut-off timestamps.

    Training uses interactions before ``val_cutoff``. A user's validation target is their
    first interaction in ``[val_cutoff, test_cutoff)`` and their test target the first at or
    after ``test_cutoff``; only users with an earlier interaction to use as input get one.
    Cut-offs left unset come from quantiles of all timestamps.
    """
    if val_cutoff is None:
        val_cutoff = float(np.quantile(data.timestamp, val_quantile))
    if test_cutoff is None:
        test_cutoff = float(np.quantile(data.timestamp, test_quantile))
    if not val_cutoff <= test_cutoff:
        raise ValueError(
            f"data.split.val_cutoff ({val_cutoff}) must not be after "
            f"data.split.test_cutoff ({test_cutoff})"
        )

    ptr = data.user_ptr
    start, end = ptr[1:-1], ptr[2:]
    n_users = data.num_users
    # Rows are time-sorted within a user, so "before the cut-off" is a prefix of each user.
    before_val = np.bincount(data.user[data.timestamp < val_cutoff], minlength=n_users + 1)[1:]
    before_test = np.bincount(data.user[data.timestamp < test_cutoff], minlength=n_users + 1)[1:]

    val_candidate = start + before_val
    has_val = (before_val >= 1) & (val_candidate < end)
    has_val[has_val] &= data.timestamp[val_candidate[has_val]] < test_cutoff
    test_candidate = start + before_test
    has_test = (before_test >= 1) & (test_candidate < end)

    split = Split(
        train_end=np.concatenate([[0], start + before_val]),
        val_rows=val_candidate[has_val],
        test_rows=test_candidate[has_test],
    )
    log.info("temporal cut-offs: validation %s, test %s", val_cutoff, test_cutoff)
    _log_split("temporal", data, split)
    return split


def check_no_leakage(train_target_rows: np.ndarray, split: Split) -> None:
    """Raise :class:`LeakageError` if any evaluation target is also a training target."""
    for part, rows in (("validation", split.val_rows), ("test", split.test_rows)):
        leaked = np.isin(rows, train_target_rows)
        if leaked.any():
            raise LeakageError(
                f"{int(leaked.sum())} {part} targets are also training targets "
                f"(first at interaction row {int(rows[leaked][0])})"
            )


def _log_split(name: str, data: Interactions, split: Split) -> None:
    train = int((split.train_end[1:] - data.user_ptr[1:-1]).sum())
    log.info(
        "%s split: %d training interactions, %d validation targets, %d test targets",
        name,
        train,
        len(split.val_rows),
        len(split.test_rows),
    )
