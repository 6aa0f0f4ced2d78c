"""LightningDataModule: file -> cached preprocessed interactions -> split -> batches."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler

from rnnrec.data import cache, readers, split
from rnnrec.data.interactions import Interactions
from rnnrec.data.item_features import align_genres, read_item_genres
from rnnrec.data.loaders import evaluation_sampler, pin_memory
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
        item_features: item file with genres, read only when a genre head asks for it;
            ``None`` with ``path=None`` means the ``ml-100k.item`` shipped beside the data.
        item_features_format: its format (see :data:`rnnrec.data.item_features.ITEM_FORMATS`).
        pin_memory: pin batches in host memory; ``None`` pins when training on a CUDA device.

    Batches carry ratings (``ratings`` in training, ``target_ratings`` in evaluation) only
    when the data has them.
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
        item_features: str | None = None,
        item_features_format: str = "auto",
        pin_memory: bool | None = None,
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
        self.item_features = Path(item_features).expanduser() if item_features else None
        self.item_features_format = item_features_format
        self.pin_memory = pin_memory
        # The training shuffle's generator, kept in checkpoints (see state_dict).
        self._shuffle: torch.Generator | None = None
        self._restored_shuffle: torch.Tensor | None = None
        self.interactions: Interactions | None = None
        self._genre_matrix: np.ndarray | None = None
        self.genre_names: list[str] = []

    # ----------------------------------------------------------------- loading
    def load(self) -> None:
        """Read (or fetch from cache), preprocess and split; safe to call more than once."""
        if self.interactions is not None:
            return
        self.fingerprint = self.data_fingerprint()
        self.interactions = self._cached_interactions()
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

    def _source(self) -> Path:
        return self.path if self.path is not None else readers.find_ml100k()

    def data_fingerprint(self) -> str:
        """What determines the preprocessed data: the file's bytes and the settings applied."""
        read_settings = {"format": self.format, **self.read_options}
        return cache.fingerprint(self._source(), {**read_settings, **self.preprocessing})

    def build_interactions(self) -> Interactions:
        """Read and preprocess the file (what the cache stores)."""
        frame = readers.read_interactions(self._source(), self.format, **self.read_options)
        return preprocess(frame, **self.preprocessing)

    def _cached_interactions(self) -> Interactions:
        cached = self.cache_dir / f"{self.name}-{self.fingerprint}.npz" if self.cache_dir else None
        if cached is not None and cached.exists():
            log.info("preprocessed data from cache %s", cached)
            return Interactions.from_arrays(cache.load_arrays(cached))

        data = self.build_interactions()
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

    def require_ratings(self, needed_by: str) -> None:
        """Fail, naming ``needed_by`` (e.g. ``task.rating``), when the data has no ratings."""
        self.load()
        assert self.interactions is not None
        if self.interactions.rating is None:
            raise ValueError(
                f"{needed_by} needs ratings, but data {self.name} has no rating column "
                "(data.rating_col)"
            )

    def train_rating_mean(self, needed_by: str = "the rating head") -> float:
        """Mean rating over training targets (a good start for a rating regressor)."""
        self.require_ratings(needed_by)
        assert self.interactions is not None and self.interactions.rating is not None
        rows = training_target_rows(self.train_starts, self.train_lengths)
        ratings = self.interactions.rating[rows] if len(rows) else self.interactions.rating
        return float(ratings.mean())

    def genre_matrix(self, needed_by: str = "the genre head") -> np.ndarray:
        """(N + 1, G) float32 multi-hot genres of items 1..N; row 0 (padding) is zeros.

        Read from ``item_features`` on first use. Items missing from the file get all zeros.
        """
        if self._genre_matrix is not None:
            return self._genre_matrix
        self.load()
        assert self.interactions is not None
        path = self._item_feature_path(needed_by)
        genres = read_item_genres(path, self.item_features_format)
        matrix, missing = align_genres(self.interactions.item_ids, genres)
        # Items the file lacks still train the next-item loss, but teach the genre head nothing.
        log.log(
            logging.WARNING if missing else logging.INFO,
            "%s: %d of %d items are not in %s and get no genre; %d genres",
            self.name,
            missing,
            self.num_items,
            path,
            matrix.shape[1],
        )
        self._genre_matrix, self.genre_names = matrix, genres.names
        return matrix

    def _item_feature_path(self, needed_by: str) -> Path:
        if self.item_features is not None:
            path = self.item_features
        elif self.path is None:
            # The recbole wheel ships the item file beside ml-100k.inter.
            path = readers.find_ml100k().with_name("ml-100k.item")
        else:
            raise ValueError(
                f"{needed_by} needs item features, but data {self.name} has no item feature "
                "file (data.item_features)"
            )
        if not path.is_file():
            raise FileNotFoundError(
                f"{needed_by} needs item features, but {path} (data.item_features) is not a file"
            )
        return path

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
        dataset = TrainingWindows(
            self._items(), users, self.train_starts, self.train_lengths, self._ratings()
        )
        generator = torch.Generator().manual_seed(self.seed)
        if self._restored_shuffle is not None:
            generator.set_state(self._restored_shuffle)
            self._restored_shuffle = None
        self._shuffle = generator
        sampler = BatchSampler(RandomSampler(dataset, generator=generator), self.batch_size, False)
        return self._loader(dataset, sampler)

    def state_dict(self) -> dict[str, Any]:
        """The training shuffle's generator state: a resumed run shuffles its next epochs as
        an uninterrupted run would (Lightning stores this in checkpoints)."""
        return {} if self._shuffle is None else {"shuffle": self._shuffle.get_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the shuffle of :meth:`state_dict` when resuming training.

        Lightning restores this before it asks for the training loader, which starts from it.
        Validating or testing a checkpoint leaves the shuffle alone.
        """
        if self.trainer is not None and self.trainer.state.fn != TrainerFn.FITTING:
            return
        self._restored_shuffle = state_dict.get("shuffle")

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
            self._ratings(),
        )
        # Under several processes each gets its own users, none twice (see loaders.py).
        sampler = evaluation_sampler(len(rows), self.eval_batch_size, self.trainer)
        return self._loader(dataset, sampler)

    def _items(self) -> torch.Tensor:
        assert self.interactions is not None
        return torch.from_numpy(self.interactions.item)

    def _ratings(self) -> torch.Tensor | None:
        assert self.interactions is not None
        if self.interactions.rating is None:
            return None
        return torch.from_numpy(self.interactions.rating.astype(np.float32))

    def _loader(self, dataset: torch.utils.data.Dataset, sampler: Sampler) -> DataLoader:
        # batch_size=None: the sampler yields whole index lists and the dataset builds the
        # padded batch in one vectorised step, instead of collating examples one by one.
        return DataLoader(
            dataset,
            sampler=sampler,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=pin_memory(self.pin_memory, self.trainer),
        )
