"""Synthetic interaction logs (``data=synthetic``): Zipf item popularity plus a planted rule.

Each item gets a few likely successors, drawn once from the popularity law. A user's first
item is a popularity draw; every next item is, with probability ``follow_probability``, one
of the current item's successors (each equally likely), and otherwise a fresh popularity
draw. A sequential model can learn the successors; a popularity ranking cannot, so the gap
between the two shows whether a model learns order at all.

Generation is vectorised over users: one step per sequence position, each step drawing the
next item of every user still active. Arrays are int32 until the final
:class:`~rnnrec.data.interactions.Interactions`, which holds int64 ids like every reader's
output; 10 million interactions over a million items need well under 1 GB.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnrec.data import cache
from rnnrec.data.datamodule import SequenceDataModule
from rnnrec.data.interactions import Interactions

log = logging.getLogger(__name__)

# Part of the fingerprint: bump when the same settings would generate other data.
GENERATOR_VERSION = 1
_INT32_MAX = int(np.iinfo(np.int32).max)


@dataclass(frozen=True)
class SyntheticLog:
    """Generated sequences in CSR layout, with the rule that planted them."""

    user_ptr: np.ndarray  # (U + 1,) int64: 0-based user u owns items[user_ptr[u]:user_ptr[u + 1]]
    items: np.ndarray  # (R,) int32 item ids 1..N, each user's sequence oldest first
    successors: np.ndarray  # (N + 1, S) int32 likely next items of each item; row 0 unused
    popularity: np.ndarray  # (N + 1,) float64 probability of a popularity draw; 0 for padding

    @property
    def num_users(self) -> int:
        return len(self.user_ptr) - 1

    @property
    def num_items(self) -> int:
        return len(self.popularity) - 1


def generate(
    num_users: int = 1000,
    num_items: int = 500,
    min_length: int = 5,
    max_length: int = 50,
    zipf_exponent: float = 1.0,
    num_successors: int = 3,
    follow_probability: float = 0.7,
    seed: int = 0,
) -> SyntheticLog:
    """Generate a log; the same settings always give the same log.

    Args:
        num_users: U, users 1..U.
        num_items: N, items 1..N; an item never drawn stays in the catalogue.
        min_length, max_length: each user's sequence length, uniform in this range.
        zipf_exponent: popularity of the item of popularity rank r is proportional to
            r ** -zipf_exponent (0: uniform). Ranks are given to items in a random order.
        num_successors: S, likely next items per item, drawn once from the popularity law
            (with replacement, so a list may repeat an item or hold the item itself).
        follow_probability: chance that the next item is one of the current item's successors.
        seed: seed of the generator's random numbers (apart from the training seed).
    """
    _check(num_users, num_items, min_length, max_length, zipf_exponent, num_successors)
    if not 0.0 <= follow_probability <= 1.0:
        raise ValueError(
            f"data.generator.follow_probability must be in [0, 1], got {follow_probability}"
        )
    rng = np.random.default_rng(seed)
    popularity = zipf_popularity(num_items, zipf_exponent, rng)  # (N + 1,)
    cdf = np.cumsum(popularity[1:])  # (N,)
    cdf /= cdf[-1]
    cdf[-1] = 1.0  # uniform draws lie in [0, 1): every draw lands on an item

    def draw(count: int) -> np.ndarray:
        """(count,) int32 items from the popularity law."""
        return (np.searchsorted(cdf, rng.random(count), side="right") + 1).astype(np.int32)

    successors = draw((num_items + 1) * num_successors).reshape(num_items + 1, num_successors)
    lengths = rng.integers(min_length, max_length + 1, size=num_users)  # (U,)
    user_ptr = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=user_ptr[1:])
    total = int(user_ptr[-1])
    log.info(
        "generating %d interactions of %d users over %d items (%.0f MB of item ids)",
        total,
        num_users,
        num_items,
        total * 4 / 2**20,
    )

    items = np.empty(total, dtype=np.int32)  # (R,)
    items[user_ptr[:-1]] = draw(num_users)
    # Users longest first: those still active at position t are a prefix of this order.
    by_length = np.argsort(-lengths, kind="stable")  # (U,)
    sorted_starts = user_ptr[:-1][by_length]  # (U,)
    active = np.searchsorted(-lengths[by_length], -np.arange(max_length), side="left")  # (T,)
    for position in range(1, max_length):
        count = int(active[position])  # users with more than `position` items
        rows = sorted_starts[:count] + position  # (n,)
        following = successors[items[rows - 1], rng.integers(0, num_successors, size=count)]
        stray = np.flatnonzero(rng.random(count) >= follow_probability)  # popularity draws
        following[stray] = draw(len(stray))
        items[rows] = following
    return SyntheticLog(user_ptr, items, successors, popularity)


def zipf_popularity(num_items: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """(N + 1,) probabilities: rank r gets r ** -exponent (normalised), ranks in random order."""
    weights = np.arange(1, num_items + 1, dtype=np.float64) ** -float(exponent)  # by rank
    popularity = np.zeros(num_items + 1)
    popularity[1 + rng.permutation(num_items)] = weights / weights.sum()
    return popularity


def to_interactions(data: SyntheticLog) -> Interactions:
    """The log as :class:`Interactions`: users 1..U, items 1..N, raw ids equal to the ids.

    A user's timestamps count positions (0, 1, 2, ...), so a temporal split cuts sequences
    at the same position for everyone.
    """
    lengths = np.diff(data.user_ptr)  # (U,)
    user = np.repeat(np.arange(1, data.num_users + 1, dtype=np.int64), lengths)  # (R,)
    offsets = np.repeat(data.user_ptr[:-1], lengths)  # (R,)
    timestamp = (np.arange(len(data.items), dtype=np.int64) - offsets).astype(np.int32)  # (R,)
    return Interactions(
        user=user,
        item=data.items.astype(np.int64),  # losses and embeddings take int64 ids
        timestamp=timestamp,
        rating=None,
        user_ids=np.arange(1, data.num_users + 1, dtype=np.int64),
        item_ids=np.arange(1, data.num_items + 1, dtype=np.int64),
    )


# The generator's settings and their defaults.
_GENERATOR_PARAMETERS = inspect.signature(generate).parameters


def generator_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every argument of :func:`generate`, defaults filled in; unknown keys are refused."""
    parameters = _GENERATOR_PARAMETERS
    given = dict(settings or {})
    unknown = sorted(set(given) - set(parameters))
    if unknown:
        raise ValueError(
            f"unknown data.generator settings {unknown}; known: {', '.join(parameters)}"
        )
    return {name: given.get(name, parameter.default) for name, parameter in parameters.items()}


def _check(
    num_users: int,
    num_items: int,
    min_length: int,
    max_length: int,
    zipf_exponent: float,
    num_successors: int,
) -> None:
    """Refuse settings the generator cannot honour, naming the setting."""
    limits = {
        "num_users": (num_users, 1),
        "num_items": (num_items, 1),
        # Leave-one-out holds out each user's last two items (test, validation): a third is
        # needed for one training pair.
        "min_length": (min_length, 3),
        "num_successors": (num_successors, 1),
    }
    for name, (value, low) in limits.items():
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise ValueError(f"data.generator.{name} must be an integer >= {low}, got {value!r}")
    if not isinstance(max_length, int | np.integer) or max_length < min_length:
        raise ValueError(
            f"data.generator.max_length must be an integer >= data.generator.min_length "
            f"({min_length}), got {max_length!r}"
        )
    if num_items >= _INT32_MAX:
        raise ValueError(f"data.generator.num_items must be below {_INT32_MAX}, got {num_items}")
    if zipf_exponent < 0:
        raise ValueError(f"data.generator.zipf_exponent must be >= 0, got {zipf_exponent}")


class SyntheticDataModule(SequenceDataModule):
    """A generated log served like a file's: same split, windows, batches and cache.

    The generator settings alone determine the data, so they (with the generator's version)
    are its fingerprint: the training ``seed`` does not change the data, ``generator.seed``
    does. Nothing is preprocessed (no k-core, no id remapping): ids are the generated ones.

    Args:
        name: data set name, for logs, MLflow and the cache file.
        generator: keyword arguments of :func:`generate`.
        split, max_len, batch_size, eval_batch_size, num_workers, cache_dir, seed,
            pin_memory: as for :class:`~rnnrec.data.datamodule.SequenceDataModule`.
    """

    def __init__(
        self,
        name: str = "synthetic",
        generator: Mapping[str, Any] | None = None,
        split: dict[str, Any] | None = None,
        max_len: int = 50,
        batch_size: int = 128,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        cache_dir: str | None = None,
        seed: int = 0,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__(
            name=name,
            path=None,
            split=split,
            max_len=max_len,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            cache_dir=cache_dir,
            seed=seed,
            pin_memory=pin_memory,
        )
        self.generator_settings = generator_settings(generator)

    def data_fingerprint(self) -> str:
        return cache.settings_fingerprint(
            {"synthetic_generator": GENERATOR_VERSION, **self.generator_settings}
        )

    def build_interactions(self) -> Interactions:
        return to_interactions(generate(**self.generator_settings))

    def _item_feature_path(self, needed_by: str) -> Path:
        raise ValueError(f"{needed_by} needs item features, but synthetic data has none")
