"""LightningDataModule for session logs: files -> cached filtered time split -> batches."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from rnnrec.data import cache
from rnnrec.data.loaders import pin_memory
from rnnrec.data.session_parallel import EpochSequentialSampler, SessionParallelBatches
from rnnrec.data.sessions import SessionPart, SessionSplit, load_sessions

log = logging.getLogger(__name__)


class SessionDataModule(pl.LightningDataModule):
    """Serves GRU4Rec-style session-parallel batches of one session data set.

    Args:
        name: data set name, for logs and MLflow.
        path: session log (``test_path`` given: the training log).
        format: ``session_tsv`` or ``session_csv`` (see :func:`rnnrec.data.sessions.read_sessions`).
        test_path: a separate test log in the same format, or ``None`` to split ``path`` by
            time (the last ``split.test_days`` are test).
        session_col, item_col, time_col, sep: column names and separator.
        preprocessing: ``collapse_repeats``, ``min_session_length``, ``min_item_support`` (see
            :func:`rnnrec.data.sessions.filter_sessions`).
        split: ``test_days`` and ``val_days`` (see :func:`rnnrec.data.sessions.split_by_days`).
        batch_size: parallel sessions (slots) per training batch.
        eval_batch_size: parallel sessions per evaluation batch.
        shuffle_sessions: deal training sessions to slots in a new random order each epoch
            (among sessions of equal length; see :class:`SessionParallelBatches`) instead of
            by start time.
        cache_dir: where the split is cached; ``None`` disables the cache.
        seed: seed of the session shuffle.
        pin_memory: pin batches in host memory; ``None`` pins when training on a CUDA device.
    """

    # Read by the model: batches carry one step of B sessions and hidden states persist.
    session_parallel = True

    def __init__(
        self,
        name: str,
        path: str,
        format: str = "session_tsv",
        test_path: str | None = None,
        session_col: str = "SessionId",
        item_col: str = "ItemId",
        time_col: str = "Time",
        sep: str | None = None,
        preprocessing: dict[str, Any] | None = None,
        split: dict[str, Any] | None = None,
        batch_size: int = 32,
        eval_batch_size: int = 512,
        shuffle_sessions: bool = False,
        num_workers: int = 0,
        cache_dir: str | None = None,
        seed: int = 0,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__()
        for setting, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise ValueError(f"data.{setting} must be at least 1, got {value}")
        self.name = name
        self.path = Path(path).expanduser()
        self.test_path = Path(test_path).expanduser() if test_path else None
        self.format = format
        self.read_options: dict[str, Any] = {
            "session_col": session_col,
            "item_col": item_col,
            "time_col": time_col,
            "sep": sep,
        }
        self.preprocessing = dict(preprocessing or {})
        self.split_settings = dict(split or {})
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.shuffle_sessions = shuffle_sessions
        self.num_workers = num_workers
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.seed = seed
        self.pin_memory = pin_memory
        self.fingerprint = ""
        self.sessions: SessionSplit | None = None

    # ----------------------------------------------------------------- loading
    def load(self) -> None:
        """Read (or fetch from cache), filter and split; safe to call more than once."""
        if self.sessions is not None:
            return
        settings: dict[str, Any] = {
            "format": self.format,
            **self.read_options,
            "preprocessing": self.preprocessing,
            # test_days does not matter with a test file; val_days always does.
            "split": self.split_settings,
        }
        if self.test_path is not None:
            settings["test_file"] = cache.fingerprint(self.test_path, {})
        self.fingerprint = cache.fingerprint(self.path, settings)
        sessions = self._cached_sessions()
        self._check(sessions)
        self.sessions = sessions
        log.info(
            "%s: %d items; %s",
            self.name,
            sessions.num_items,
            "; ".join(f"{name} {part.summary()}" for name, part in sessions.parts().items()),
        )

    def _cached_sessions(self) -> SessionSplit:
        cached = (
            self.cache_dir / f"{self.name}-sessions-{self.fingerprint}.npz"
            if self.cache_dir
            else None
        )
        if cached is not None and cached.exists():
            log.info("preprocessed sessions from cache %s", cached)
            return SessionSplit.from_arrays(cache.load_arrays(cached))
        sessions = load_sessions(
            self.path,
            self.format,
            test_path=self.test_path,
            preprocessing=self.preprocessing,
            split=self.split_settings,
            **self.read_options,
        )
        if cached is not None:
            cache.save_arrays_atomically(cached, _storable(sessions.to_arrays()))
            log.info("cached preprocessed sessions at %s", cached)
        return sessions

    def _check(self, sessions: SessionSplit) -> None:
        if _steps(sessions.train) == 0:
            raise ValueError(f"{self.name}: no training session has two events")
        if sessions.val.num_sessions == 0:
            # Early stopping validates every epoch, so an empty validation set cannot work.
            raise ValueError(
                f"{self.name}: no validation sessions; every session of the last "
                f"data.split.val_days={self.split_settings.get('val_days', 1.0)} days of the "
                "training data straddles the cut or only has items unseen in training: "
                "raise data.split.val_days"
            )
        if sessions.test.num_sessions == 0:
            where = (
                f"data.test_path={self.test_path}"
                if self.test_path is not None
                else f"data.split.test_days={self.split_settings.get('test_days', 1.0)}"
            )
            raise ValueError(f"{self.name}: no test sessions with two known items ({where})")

    # --------------------------------------------------------------- accessors
    @property
    def num_items(self) -> int:
        self.load()
        assert self.sessions is not None
        return self.sessions.num_items

    def train_item_counts(self) -> np.ndarray:
        """(num_items + 1,) how often each item is a training target."""
        self.load()
        assert self.sessions is not None
        train = self.sessions.train
        is_target = np.ones(train.num_events, dtype=bool)
        is_target[train.session_ptr[:-1]] = False  # a session's first event is never a target
        return np.bincount(train.item[is_target], minlength=self.num_items + 1)

    def save_id_maps(self, directory: Path) -> list[Path]:
        """Write ``item_ids.csv`` (``index,raw_id``) into ``directory``."""
        self.load()
        assert self.sessions is not None
        ids = self.sessions.item_ids
        path = Path(directory) / "item_ids.csv"
        pd.DataFrame({"index": np.arange(1, len(ids) + 1), "raw_id": ids}).to_csv(path, index=False)
        return [path]

    def save_histories(self, path: Path) -> None:
        """The training sessions as CSR arrays ``session_ptr`` and ``item``."""
        self.load()
        assert self.sessions is not None
        train = self.sessions.train
        np.savez_compressed(path, session_ptr=train.session_ptr, item=train.item.astype(np.int32))

    # -------------------------------------------------------------- lightning
    def setup(self, stage: str | None = None) -> None:
        self.load()

    def train_dataloader(self) -> DataLoader:
        assert self.sessions is not None
        train = self.sessions.train
        dataset = SessionParallelBatches(
            train.session_ptr,
            train.item,
            self.batch_size,
            shuffle=self.shuffle_sessions,
            seed=self.seed,
        )
        # Workers kept across epochs would keep their first shuffle.
        return self._loader(dataset, persistent=not self.shuffle_sessions)

    def val_dataloader(self) -> DataLoader:
        assert self.sessions is not None
        return self._evaluation_loader(self.sessions.val)

    def test_dataloader(self) -> DataLoader:
        assert self.sessions is not None
        return self._evaluation_loader(self.sessions.test)

    def _evaluation_loader(self, part: SessionPart) -> DataLoader:
        dataset = SessionParallelBatches(
            part.session_ptr, part.item, self.eval_batch_size, evaluation=True
        )
        return self._loader(dataset, persistent=True)

    def _loader(self, dataset: SessionParallelBatches, persistent: bool) -> DataLoader:
        # batch_size=None: each index is a whole batch, built vectorised by the dataset. The
        # order of steps must be kept, since hidden states flow from one batch to the next.
        return DataLoader(
            dataset,
            sampler=EpochSequentialSampler(dataset),
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=persistent and self.num_workers > 0,
            pin_memory=pin_memory(self.pin_memory, self.trainer),
        )


def _steps(part: SessionPart) -> int:
    return int(np.maximum(part.lengths - 1, 0).sum())


def _storable(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # Object arrays would need pickle to be saved; fixed-width unicode does not.
    return {k: v if v.dtype.kind in "iuf" else v.astype(str) for k, v in arrays.items()}
