"""GRU4Rec's session-parallel mini-batches: B slots, each following one session at a time.

Slot ``b`` feeds its session event by event (input event ``j``, target event ``j + 1``); when
the session runs out, the next session in order takes the slot and the model resets that slot's
hidden state. A batch is one step of all B slots, so the recurrent state is carried from batch
to batch instead of unrolling whole sessions.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Dataset, SequentialSampler

from rnnrec.data.sequences import expand_ranges

log = logging.getLogger(__name__)


def slot_timeline(lengths: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Which session each slot follows at each step, and how far into it.

    ``lengths[s]`` is the number of prediction steps of session ``s`` (events - 1); sessions
    take free slots in order, lower slots first. Sessions without steps are skipped.

    Returns:
        ``(position, offset)``, both (T, B) int64: the index into ``lengths`` of the session
        in each slot (-1 on an idle slot) and the step within that session (0 when idle).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    lengths = np.asarray(lengths, dtype=np.int64)
    if (lengths < 0).any():
        raise ValueError("session step counts must not be negative")
    queue = np.flatnonzero(lengths > 0)
    if not len(queue):
        empty = np.zeros((0, batch_size), dtype=np.int64)
        return empty, empty.copy()
    # Greedy list scheduling keeps every slot busy until the last session starts, so it ends
    # within total / B + longest steps: allocate that once and trim.
    bound = int(lengths.sum()) // batch_size + int(lengths.max()) + 1
    position = np.full((bound, batch_size), -1, dtype=np.int64)
    offset = np.zeros((bound, batch_size), dtype=np.int64)

    session = np.full(batch_size, -1, dtype=np.int64)
    done = np.zeros(batch_size, dtype=np.int64)  # steps of its session the slot has fed
    left = np.zeros(batch_size, dtype=np.int64)  # steps still to feed
    taken, step = 0, 0
    while True:
        free = np.flatnonzero(left == 0)[: len(queue) - taken]
        session[free] = queue[taken : taken + len(free)]
        done[free], left[free] = 0, lengths[session[free]]
        taken += len(free)
        if not left.any():
            break
        # Nothing changes until the next session ends (or, once the queue is empty, until
        # the last one does), so fill that many steps at once.
        span = int(left.max() if taken == len(queue) else left[left > 0].min())
        ahead = np.arange(span)[:, None]  # (span, 1)
        busy = ahead < left  # (span, B)
        position[step : step + span] = np.where(busy, session, -1)
        offset[step : step + span] = np.where(busy, done + ahead, 0)
        moved = np.minimum(left, span)
        done += moved
        left -= moved
        step += span
    return position[:step], offset[:step]


def parallel_schedule(
    lengths: np.ndarray, batch_size: int, starts: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The session-parallel schedule of sessions with ``lengths`` prediction steps each.

    Slot ``b`` follows one session event by event; when it ends, the next session in order
    takes the slot (free slots take the next sessions in slot order). ``starts[s]`` is the
    global index of session ``s``'s first event; by default sessions lie one after another,
    each with ``lengths[s] + 1`` events.

    Returns:
        ``(inputs, resets)``, both (T, B): the global index of each slot's input event (-1 on
        an idle slot; its target is the next event) and whether the slot starts a new session
        at that step or is idle.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if starts is None:
        starts = np.cumsum(lengths + 1) - (lengths + 1)
    position, offset = slot_timeline(lengths, batch_size)
    idle = position < 0
    inputs = np.where(idle, -1, np.asarray(starts, dtype=np.int64)[position] + offset)
    return inputs, idle | (offset == 0)


class SessionParallelBatches(Dataset):
    """One session-parallel batch per index; use with ``DataLoader(batch_size=None)``.

    Training batches hold ``inputs`` (B, 1) the current item, ``targets`` (B, 1) the next
    item and ``resets`` (B,) bool: the slot starts a new session (or is idle) and its hidden
    state must be zeroed. Idle slots have input and target 0.

    Evaluation batches hold ``inputs`` (B, 1), ``targets`` (B,) (0 on idle slots),
    ``resets`` (B,), ``lengths`` (B,) all ones, and ``seen_example``/``seen_items``: one
    (row, item) pair per item of the row's session up to and including the current input.

    With ``shuffle``, :meth:`set_epoch` deals sessions to new positions at random, but only
    among sessions with the same number of steps: the schedule's shape, and so the number of
    batches per epoch (which Lightning fixes when fitting starts), stays the same.
    """

    def __init__(
        self,
        session_ptr: np.ndarray,
        items: np.ndarray,
        batch_size: int,
        *,
        evaluation: bool = False,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        self.session_ptr = np.asarray(session_ptr, dtype=np.int64)
        self.items = torch.as_tensor(np.asarray(items, dtype=np.int64))
        self.evaluation = evaluation
        self.shuffle = shuffle
        self.seed = seed
        self.steps = np.maximum(np.diff(self.session_ptr) - 1, 0)
        self.position, self.offset = slot_timeline(self.steps, batch_size)
        self.starts = self.session_ptr[:-1]  # first event of the session at each position
        self.epoch = 0
        if shuffle:
            self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle (when ``shuffle``) with a generator seeded by ``(seed, epoch)``."""
        self.epoch = epoch
        if not self.shuffle:
            return
        rng = np.random.default_rng([self.seed, epoch])
        by_length = np.lexsort((np.arange(len(self.steps)), self.steps))
        shuffled = np.lexsort((rng.random(len(self.steps)), self.steps))
        order = np.empty_like(by_length)
        order[by_length] = shuffled  # each position gets a random session of its length
        self.starts = self.session_ptr[:-1][order]

    def __len__(self) -> int:
        return len(self.position)

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        position, offset = self.position[step], self.offset[step]
        active = position >= 0
        start = np.where(active, self.starts[position], 0)
        event = torch.from_numpy(np.where(active, start + offset, -1))
        active_t = torch.from_numpy(active)
        inputs = torch.where(active_t, self.items[event.clamp(min=0)], 0)
        targets = torch.where(active_t, self.items[(event + 1).clamp(min=0)], 0)
        resets = torch.from_numpy(~active | (offset == 0))
        if not self.evaluation:
            return {"inputs": inputs[:, None], "targets": targets[:, None], "resets": resets}

        rows = np.flatnonzero(active)
        owner, seen = expand_ranges(start[rows], offset[rows] + 1)
        return {
            "inputs": inputs[:, None],
            "targets": targets,
            "resets": resets,
            "lengths": torch.ones(len(position), dtype=torch.int64),
            "seen_example": torch.from_numpy(rows[owner]),
            "seen_items": self.items[torch.from_numpy(seen)],
        }


class EpochSequentialSampler(SequentialSampler):
    """Steps in order; Lightning's ``set_epoch`` call reshuffles the dataset's sessions.

    Worker processes hold copies of the dataset, so a loader using this sampler with
    workers must not keep them across epochs (``persistent_workers=False``).
    """

    def __init__(self, dataset: SessionParallelBatches) -> None:
        super().__init__(dataset)
        self.dataset = dataset

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)
