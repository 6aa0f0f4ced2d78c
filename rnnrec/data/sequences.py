"""Training windows and evaluation examples, assembled into padded batches without loops.

A training example is one window of a user's training sequence: inputs ``[i1 .. i(n-1)]`` and
targets ``[i2 .. in]``, so one forward pass yields a loss at every position. Evaluation
examples are target rows whose input is every earlier interaction of the same user.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from rnnrec.data.interactions import Interactions
from rnnrec.data.split import Split

log = logging.getLogger(__name__)


def training_windows(data: Interactions, split: Split, max_len: int) -> tuple[np.ndarray, ...]:
    """Cut every training sequence into windows of at most ``max_len`` input positions.

    Windows are laid from the end of the sequence backwards, so the most recent interactions
    always form a full window and only the oldest window can be short. Users with fewer than
    two training interactions have no target and produce no window.

    Returns:
        ``(starts, lengths)``: the first input row and the number of input positions of each
        window; its targets are rows ``starts + 1 .. starts + lengths``.
    """
    start = data.user_ptr[1:-1]
    end = split.train_end[1:]
    positions = np.maximum(end - start - 1, 0)  # targets per user
    dropped = int(np.count_nonzero(positions == 0))
    if dropped:
        log.info("%d users have fewer than 2 training interactions: no training example", dropped)

    windows = -(-positions // max_len)  # ceil division
    user = np.repeat(np.arange(len(start)), windows)
    # Index of each window within its user, counted from the most recent one.
    back = np.arange(len(user)) - np.repeat(np.cumsum(windows) - windows, windows)
    input_end = end[user] - 1 - back * max_len
    input_start = np.maximum(start[user], input_end - max_len)
    return input_start.astype(np.int64), (input_end - input_start).astype(np.int64)


def training_target_rows(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Every interaction row that some training window uses as a target."""
    return expand_ranges(starts + 1, lengths)[1]


def expand_ranges(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten ranges ``starts[b] .. starts[b] + lengths[b]``: (owner index, row) per element."""
    owner = np.repeat(np.arange(len(starts)), lengths)
    offset = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, starts[owner] + offset


def padded(values: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Gather ``values[starts[b] : starts[b] + lengths[b]]`` into rows right-padded with 0."""
    width = int(lengths.max()) if len(lengths) else 0
    offsets = torch.arange(width)
    index = starts.unsqueeze(1) + offsets  # (B, T)
    valid = offsets < lengths.unsqueeze(1)  # (B, T)
    return torch.where(valid, values[index.clamp(max=len(values) - 1)], 0)


class TrainingWindows(torch.utils.data.Dataset):
    """Training windows; indexing with a list of window ids returns a whole padded batch."""

    def __init__(
        self,
        items: torch.Tensor,
        users: torch.Tensor,
        starts: np.ndarray,
        lengths: np.ndarray,
        ratings: torch.Tensor | None = None,
    ) -> None:
        self.items = items
        self.ratings = ratings  # (R,) float, or None: batches then carry no ratings
        self.starts = torch.from_numpy(starts)
        self.lengths = torch.from_numpy(lengths)
        self.users = users[self.starts]  # (W,) owner of each window

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: list[int]) -> dict[str, torch.Tensor]:
        index_t = torch.as_tensor(index)
        starts, lengths = self.starts[index_t], self.lengths[index_t]
        batch = {
            "inputs": padded(self.items, starts, lengths),  # (B, T)
            "targets": padded(self.items, starts + 1, lengths),  # (B, T), 0 = no target
            "lengths": lengths,  # (B,)
            "users": self.users[index_t],  # (B,)
        }
        if self.ratings is not None:
            batch["ratings"] = padded(self.ratings, starts + 1, lengths)  # (B, T), 0 = none
        return batch


class EvaluationTargets(torch.utils.data.Dataset):
    """Evaluation targets; indexing with a list of ids returns a whole batch.

    Each example's input is the last ``max_len`` interactions before the target; ``seen``
    lists, for excluding from the ranking, every item before the target.
    """

    def __init__(
        self,
        items: torch.Tensor,
        user: np.ndarray,
        user_ptr: np.ndarray,
        target_rows: np.ndarray,
        max_len: int,
        ratings: torch.Tensor | None = None,
    ) -> None:
        self.items = items
        self.ratings = ratings  # (R,) float, or None: batches then carry no ratings
        self.target_rows = torch.from_numpy(target_rows)
        self.users = torch.from_numpy(user[target_rows])
        self.history_starts = torch.from_numpy(user_ptr[user[target_rows]])
        self.max_len = max_len

    def __len__(self) -> int:
        return len(self.target_rows)

    def __getitem__(self, index: list[int]) -> dict[str, torch.Tensor]:
        index_t = torch.as_tensor(index)
        rows, history = self.target_rows[index_t], self.history_starts[index_t]
        input_starts = torch.maximum(history, rows - self.max_len)
        lengths = rows - input_starts
        seen_example, seen_rows = expand_ranges(history.numpy(), (rows - history).numpy())
        batch = {
            "inputs": padded(self.items, input_starts, lengths),  # (B, T)
            "lengths": lengths,  # (B,)
            "targets": self.items[rows],  # (B,)
            "users": self.users[index_t],  # (B,)
            "seen_example": torch.from_numpy(seen_example),  # (S,) example of each seen item
            "seen_items": self.items[torch.from_numpy(seen_rows)],  # (S,)
        }
        if self.ratings is not None:
            batch["target_ratings"] = self.ratings[rows]  # (B,)
        return batch
