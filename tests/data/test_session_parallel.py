"""Tests for the session-parallel schedule, its batches and the SessionDataModule."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from rnnrec.data import session_datamodule
from rnnrec.data.session_datamodule import SessionDataModule
from rnnrec.data.session_parallel import (
    EpochSequentialSampler,
    SessionParallelBatches,
    parallel_schedule,
)

T, F = True, False
TRAIN_KEYS = {"inputs", "targets", "resets"}
EVAL_KEYS = {"inputs", "targets", "resets", "lengths", "seen_example", "seen_items"}


# --------------------------------------------------------------------------- schedule


def test_hand_checked_three_slot_schedule() -> None:
    # Steps per session 2, 1, 3, 1, 2: events 0-2, 3-4, 5-8, 9-10, 11-13.
    inputs, resets = parallel_schedule(np.array([2, 1, 3, 1, 2]), 3)
    assert inputs.tolist() == [
        [0, 3, 5],  # sessions 0, 1, 2 start
        [1, 9, 6],  # session 1 is over: session 3 takes slot 1
        [11, -1, 7],  # session 0 is over: session 4 takes slot 0; slot 1 has none left
        [12, -1, -1],
    ]
    assert resets.tolist() == [[T, T, T], [F, T, F], [T, T, F], [F, T, T]]


def test_free_slots_take_sessions_in_slot_order() -> None:
    inputs, resets = parallel_schedule(np.array([1, 1, 1, 1, 1]), 2)
    assert inputs.tolist() == [[0, 2], [4, 6], [8, -1]]
    assert resets.all()


def check_schedule(lengths: np.ndarray, batch_size: int) -> None:
    """Every step exactly once, in order, each session on one slot; resets where they belong."""
    inputs, resets = parallel_schedule(lengths, batch_size)
    assert inputs.shape == resets.shape and inputs.shape[1:] == (batch_size,)
    starts = np.cumsum(lengths + 1) - (lengths + 1)
    session = np.repeat(np.arange(len(lengths)), lengths)
    # Input events: every event of a session but its last.
    expected = np.setdiff1d(np.arange(int((lengths + 1).sum())), starts + lengths)
    step, slot = np.nonzero(inputs >= 0)
    events = inputs[step, slot]
    assert np.array_equal(np.sort(events), expected)  # each input event exactly once
    by_event = np.argsort(events)
    step, slot, events = step[by_event], slot[by_event], events[by_event]
    same_session = np.diff(session) == 0
    assert np.array_equal(np.diff(step)[same_session], np.ones(same_session.sum()))
    assert np.array_equal(np.diff(slot)[same_session], np.zeros(same_session.sum()))
    first = np.ones(len(events), dtype=bool)
    first[1:] = ~same_session
    assert np.array_equal(resets[step, slot], first)  # resets exactly at session starts ...
    assert resets[inputs < 0].all()  # ... and on idle slots
    # No slot idles while sessions wait, and sessions start in order.
    if len(events):
        last_start = step[first].max()
        assert (inputs[:last_start] >= 0).all()
        # Sessions start in order: by step, and by slot within a step.
        assert np.all(np.diff(step[first] * batch_size + slot[first]) > 0)
        assert (inputs[-1] >= 0).any()  # no trailing idle step


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 64])
def test_schedule_covers_every_step_once_in_order(batch_size: int) -> None:
    rng = np.random.default_rng(batch_size)
    lengths = rng.integers(0, 9, size=60)  # zero steps: one-event sessions, skipped
    check_schedule(lengths, batch_size)


def test_schedule_of_nothing_is_empty() -> None:
    inputs, resets = parallel_schedule(np.array([0, 0]), 4)
    assert inputs.shape == resets.shape == (0, 4)


# --------------------------------------------------------------------------- batches

# Sessions (raw items): [5, 6, 7], [8, 9], [1, 2, 3]; two slots.
PTR = np.array([0, 3, 5, 8])
ITEMS = np.array([5, 6, 7, 8, 9, 1, 2, 3])


def test_training_batches() -> None:
    dataset = SessionParallelBatches(PTR, ITEMS, 2)
    batches = [dataset[step] for step in range(len(dataset))]
    assert all(set(b) == TRAIN_KEYS for b in batches)
    assert [b["inputs"].tolist() for b in batches] == [[[5], [8]], [[6], [1]], [[0], [2]]]
    assert [b["targets"].tolist() for b in batches] == [[[6], [9]], [[7], [2]], [[0], [3]]]
    assert [b["resets"].tolist() for b in batches] == [[T, T], [F, T], [T, F]]
    assert all(b["inputs"].dtype == b["targets"].dtype == torch.int64 for b in batches)


def test_evaluation_batches_list_the_seen_items() -> None:
    dataset = SessionParallelBatches(PTR, ITEMS, 2, evaluation=True)
    batches = [dataset[step] for step in range(len(dataset))]
    assert all(set(b) == EVAL_KEYS for b in batches)
    assert [b["targets"].tolist() for b in batches] == [[6, 9], [7, 2], [0, 3]]
    assert [b["lengths"].tolist() for b in batches] == [[1, 1]] * 3
    seen = [
        list(zip(b["seen_example"].tolist(), b["seen_items"].tolist(), strict=True))
        for b in batches
    ]
    assert seen == [
        [(0, 5), (1, 8)],
        [(0, 5), (0, 6), (1, 1)],  # row 1 started session [1, 2, 3]: 8 is not its history
        [(1, 1), (1, 2)],  # row 0 is idle
    ]


def test_shuffle_is_seeded_differs_per_epoch_and_keeps_the_schedule() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 6, size=200)
    ptr = np.concatenate([[0], np.cumsum(lengths)])
    items = np.arange(1, ptr[-1] + 1)  # item = event index + 1: targets must follow inputs
    plain = SessionParallelBatches(ptr, items, 8)

    def epoch(dataset: SessionParallelBatches, number: int) -> np.ndarray:
        loader = DataLoader(dataset, sampler=EpochSequentialSampler(dataset), batch_size=None)
        loader.sampler.set_epoch(number)  # type: ignore[attr-defined]
        batches = list(loader)
        inputs = torch.cat([b["inputs"] for b in batches], 1).numpy()
        targets = torch.cat([b["targets"] for b in batches], 1).numpy()
        resets = torch.stack([b["resets"] for b in batches], 1).numpy()
        active = inputs > 0
        assert np.array_equal(targets[active], inputs[active] + 1)
        assert np.array_equal(np.sort(inputs[active]), np.sort(np.setdiff1d(items, ptr[1:])))
        assert np.array_equal(resets, plain_resets)  # same shape of schedule every epoch
        return inputs

    plain_resets = torch.stack([plain[step]["resets"] for step in range(len(plain))], 1).numpy()
    one = SessionParallelBatches(ptr, items, 8, shuffle=True, seed=1)
    same = SessionParallelBatches(ptr, items, 8, shuffle=True, seed=1)
    other = SessionParallelBatches(ptr, items, 8, shuffle=True, seed=2)
    assert len(one) == len(plain)
    first = epoch(one, 0)
    assert np.array_equal(first, epoch(same, 0))
    assert not np.array_equal(first, epoch(one, 1))
    assert not np.array_equal(first, epoch(other, 0))
    assert not np.array_equal(first, epoch(plain, 0))  # unshuffled: start-time order


# --------------------------------------------------------------------------- data module

DAY = 86_400


def write_log(path: Path, sessions: int = 40, days: int = 4) -> Path:
    """Sessions of 2-4 clicks on items 1-6, spread over ``days`` days."""
    rng = np.random.default_rng(0)
    rows = []
    for session, start in enumerate(np.linspace(0, days * DAY, sessions)):
        for click in range(2 + session % 3):
            rows.append(f"{session}\t{rng.integers(1, 7)}\t{start + 60 * click}")
    path.write_text("SessionId\tItemId\tTime\n" + "\n".join(rows) + "\n")
    return path


def module(path: Path, tmp_path: Path, **options: object) -> SessionDataModule:
    settings: dict = {"preprocessing": {"min_item_support": 1}, "batch_size": 4}
    settings |= options
    return SessionDataModule("tiny", str(path), cache_dir=str(tmp_path / "cache"), **settings)


def test_datamodule_end_to_end(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dm = module(write_log(tmp_path / "clicks.tsv"), tmp_path, eval_batch_size=3)
    assert dm.session_parallel is True
    with caplog.at_level(logging.INFO, logger="rnnrec.data.session_datamodule"):
        dm.setup("fit")
    assert "tiny: 6 items; train " in caplog.text
    assert dm.num_items == 6 and dm.fingerprint
    train = dm.sessions.train  # type: ignore[union-attr]

    batches = list(dm.train_dataloader())
    for batch in batches:
        assert set(batch) == TRAIN_KEYS
        assert batch["inputs"].shape == batch["targets"].shape == (4, 1)
        assert batch["resets"].shape == (4,) and batch["resets"].dtype == torch.bool
    targets = torch.cat([b["targets"] for b in batches]).flatten()
    counts = dm.train_item_counts()
    assert counts.shape == (7,) and counts[0] == 0
    assert np.array_equal(counts[1:], np.bincount(targets[targets > 0], minlength=7)[1:])
    assert counts.sum() == train.num_events - train.num_sessions

    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        batches = list(loader)
        assert batches
        for batch in batches:
            assert set(batch) == EVAL_KEYS
            assert batch["inputs"].shape == (3, 1)
            assert batch["targets"].shape == batch["resets"].shape == batch["lengths"].shape
            assert batch["seen_example"].shape == batch["seen_items"].shape
            assert batch["targets"].shape == (3,)

    written = dm.save_id_maps(tmp_path)
    assert [p.name for p in written] == ["item_ids.csv"]
    ids = pd.read_csv(written[0])
    assert ids.columns.tolist() == ["index", "raw_id"] and ids["raw_id"].tolist() == list(
        range(1, 7)
    )
    dm.save_histories(tmp_path / "histories.npz")
    with np.load(tmp_path / "histories.npz") as saved:
        assert np.array_equal(saved["session_ptr"], train.session_ptr)
        assert np.array_equal(saved["item"], train.item)


def test_datamodule_cache_and_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_log(tmp_path / "clicks.tsv")
    first = module(path, tmp_path)
    first.load()
    first.load()  # idempotent
    assert len(list((tmp_path / "cache").glob("tiny-sessions-*.npz"))) == 1

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was read again")

    with monkeypatch.context() as patch:
        patch.setattr(session_datamodule, "load_sessions", no_reading)
        again = module(path, tmp_path)
        again.load()
    assert again.fingerprint == first.fingerprint
    for name, part in first.sessions.parts().items():  # type: ignore[union-attr]
        cached = again.sessions.parts()[name]  # type: ignore[union-attr]
        assert np.array_equal(cached.item, part.item)
        assert np.array_equal(cached.session_ids, part.session_ids)

    other = module(path, tmp_path, split={"val_days": 2})
    other.load()
    assert other.fingerprint != first.fingerprint
    # A test file takes part in the fingerprint: changing it changes the key.
    test = tmp_path / "test.tsv"
    late = "SessionId\tItemId\tTime\n1\t1\t900000\n1\t2\t900060\n"
    test.write_text(late)
    with_test = module(path, tmp_path, test_path=str(test))
    with_test.load()
    test.write_text(late + "2\t3\t900100\n2\t1\t900200\n")
    changed = module(path, tmp_path, test_path=str(test))
    changed.load()
    assert len({first.fingerprint, with_test.fingerprint, changed.fingerprint}) == 3
    assert changed.sessions.test.num_sessions == 2  # type: ignore[union-attr]


def test_empty_validation_names_val_days(tmp_path: Path) -> None:
    # val_days shorter than any gap between sessions: the last one straddles or stands alone.
    path = tmp_path / "clicks.tsv"
    path.write_text(
        "SessionId\tItemId\tTime\n"
        "1\t1\t0\n1\t2\t100\n2\t2\t1000\n2\t1\t5000\n3\t1\t200000\n3\t2\t200100\n"
    )
    dm = module(path, tmp_path, split={"test_days": 0.5, "val_days": 0.01})
    with pytest.raises(ValueError, match="data.split.val_days"):
        dm.load()


class _Recorder(pl.LightningModule):
    """Records the first input of every epoch; trains one weight so Lightning runs steps."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[list[int]] = []

    def on_train_epoch_start(self) -> None:
        self.seen.append([])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.seen[-1] += batch["inputs"].flatten().tolist()
        return self.weight * batch["targets"].float().mean()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        pass

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.filterwarnings("ignore:.*LeafSpec")
def test_lightning_reshuffles_every_epoch(tmp_path: Path) -> None:
    dm = module(write_log(tmp_path / "clicks.tsv", sessions=80), tmp_path, shuffle_sessions=True)
    recorder = _Recorder()
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(recorder, datamodule=dm)
    first, second = recorder.seen
    assert len(first) == len(second) == 4 * trainer.num_training_batches
    assert sorted(first) == sorted(second) and first != second
