"""LightningDataModule: file -> cached preprocessed interactions -> split -> batches."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from rnnrec.data import cache, readers, split
from rnnrec.data.interactions import Interactions
from rnnrec.data.preprocess import preprocess
from rnnrec.data.sequences import (
    EvaluationTargets,
    TrainingWindows,
    training_target_rows,
    training_windows,
)

log = logging.getLogger(__name__)


class SequenceDataModule(pl.LightningDataModule):
    """Serves padded training windows and evaluation targets for one data set.

    Args:
        name: data set name, for logs and MLflow.
        path: interaction file; ``None`` means the MovieLens-100K copy in the recbole wheel.
        format: reader format (see :data:`rnnrec.data.readers.FORMATS`) or ``auto``.
        user_col, item_col, time_col, rating_col, sep: column names and separator for
            formats with named columns (see :func:`rnnrec.data.readers.read_interactions`).
        preprocessing: keyword arguments of :func:`rnnrec.data.preprocess.preprocess`.
        split: ``{"name": "leave_one_out"}`` or ``{"name": "temporal", ...cut-offs}``.
        max_len: input positions per training window and per evaluation input.
        cache_dir: where preprocessed data is cached; ``None`` disables the cache.
    """

    def __init__(
        self,
        name: str,
        path: str | None,
        format: str = "auto",
        user_col: str = "user",
        item_col: str = "item",
        time_col: str | None = "timestamp",
        rating_col: str | None = None,
        sep: str | None = None,
        preprocessing: dict[str, Any] | None = None,
        split: dict[str, Any] | None = None,
        max_len: int = 50,
        batch_size: int = 128,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        cache_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if max_len < 1:
            raise ValueError(f"data.max_len must be at least 1, got {max_len}")
        self.name = name
        self.path = Path(path).expanduser() if path else None
        self.format = format
        self.read_options: dict[str, Any] = {
            "user_col": user_col,
            "item_col": item_col,
            "time_col": time_col,
            "rating_col": rating_col,
            "sep": sep,
        }
        self.preprocessing = dict(preprocessing or {})
        self.split_settings = dict(split or {"name": "leave_one_out"})
        self.max_len = max_len
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.seed = seed
        self.interactions: Interactions | None = None

    # ----------------------------------------------------------------- loading
    def load(self) -> None:
        """Read (or fetch from cache), preprocess and split; safe to call more than once."""
        if self.interactions is not None:
            return
        source = self.path if self.path is not None else readers.find_ml100k()
        read_settings = {"format": self.format, **self.read_options}
        self.fingerprint = cache.fingerprint(source, {**read_settings, **self.preprocessing})
        self.interactions = self._cached_interactions(source, read_settings)
        data = self.interactions

        self.split = self._split(data)
        self.train_starts, self.train_lengths = training_windows(data, self.split, self.max_len)
        split.check_no_leakage(
            training_target_rows(self.train_starts, self.train_lengths), self.split
        )
        log.info(
            "%s: %d users, %d items, %d training windows of at most %d positions",
            self.name,
            data.num_users,
            data.num_items,
            len(self.train_starts),
            self.max_len,
        )

    def _cached_interactions(self, source: Path, read_settings: dict[str, Any]) -> Interactions:
        cached = self.cache_dir / f"{self.name}-{self.fingerprint}.npz" if self.cache_dir else None
        if cached is not None and cached.exists():
            log.info("preprocessed data from cache %s", cached)
            return Interactions.from_arrays(cache.load_arrays(cached))

        frame = readers.read_interactions(source, self.format, **self.read_options)
        data = preprocess(frame, **self.preprocessing)
        if cached is not None:
            cache.save_arrays_atomically(cached, data.to_arrays())
            log.info("cached preprocessed data at %s", cached)
        return data

    def _split(self, data: Interactions) -> split.Split:
        settings = dict(self.split_settings)
        name = settings.pop("name", "leave_one_out")
        if name == "leave_one_out":
            return split.leave_one_out(data)
        if name == "temporal":
            return split.temporal(data, **settings)
        raise ValueError(f"data.split.name must be leave_one_out or temporal, got {name!r}")

    # --------------------------------------------------------------- accessors
    @property
    def num_items(self) -> int:
        self.load()
        assert self.interactions is not None
        return self.interactions.num_items

    def train_item_counts(self) -> np.ndarray:
        """(num_items + 1,) how often each item is a training target."""
        self.load()
        assert self.interactions is not None
        rows = training_target_rows(self.train_starts, self.train_lengths)
        return self.interactions.item_popularity(rows)

    def save_id_maps(self, directory: Path) -> list[Path]:
        """Write ``user_ids.csv`` and ``item_ids.csv`` (``index,raw_id``) into ``directory``."""
        self.load()
        assert self.interactions is not None
        paths = []
        for kind, ids in (
            ("user", self.interactions.user_ids),
            ("item", self.interactions.item_ids),
        ):
            path = directory / f"{kind}_ids.csv"
            pd.DataFrame({"index": np.arange(1, len(ids) + 1), "raw_id": ids}).to_csv(
                path, index=False
            )
            paths.append(path)
        return paths

    def save_histories(self, path: Path) -> None:
        """Every user's full item sequence, as CSR arrays ``user_ptr`` and ``item``."""
        self.load()
        assert self.interactions is not None
        np.savez_compressed(
            path, user_ptr=self.interactions.user_ptr, item=self.interactions.item.astype(np.int32)
        )

    # -------------------------------------------------------------- lightning
    def setup(self, stage: str | None = None) -> None:
        self.load()

    def train_dataloader(self) -> DataLoader:
        assert self.interactions is not None
        users = torch.from_numpy(self.interactions.user)
        dataset = TrainingWindows(self._items(), users, self.train_starts, self.train_lengths)
        generator = torch.Generator().manual_seed(self.seed)
        sampler = BatchSampler(RandomSampler(dataset, generator=generator), self.batch_size, False)
        return self._loader(dataset, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.split.val_rows)

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.split.test_rows)

    def _evaluation_loader(self, rows: np.ndarray) -> DataLoader:
        assert self.interactions is not None
        dataset = EvaluationTargets(
            self._items(),
            self.interactions.user,
            self.interactions.user_ptr,
            rows,
            self.max_len,
        )
        sampler = BatchSampler(SequentialSampler(dataset), self.eval_batch_size, False)
        return self._loader(dataset, sampler)

    def _items(self) -> torch.Tensor:
        assert self.interactions is not None
        return torch.from_numpy(self.interactions.item)

    def _loader(self, dataset: torch.utils.data.Dataset, sampler: BatchSampler) -> DataLoader:
        # batch_size=None: the sampler yields whole index lists and the dataset builds the
        # padded batch in one vectorised step, instead of collating examples one by one.
        return DataLoader(
            dataset,
            sampler=sampler,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
