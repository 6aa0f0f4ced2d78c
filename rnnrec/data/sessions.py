"""Session logs for session-based recommendation: reading, GRU4Rec-style filtering, time split.

A session log has one event (a click or an item view) per row, with a session id, an item id and
a time. :func:`read_sessions` reads it, :func:`filter_sessions` applies GRU4Rec's filters, and
:func:`split_by_days` or :func:`split_by_files` cut it into training, validation and test
sessions such that no evaluation session starts before the last session it is evaluated
against has ended. Each part is a :class:`SessionPart`: sessions ordered by start time, stored
as CSR arrays.
"""

from __future__ import annotations

import errno
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from rnnrec.data.readers import DataFormatError
from rnnrec.data.sequences import expand_ranges
from rnnrec.data.split import LeakageError

log = logging.getLogger(__name__)

SESSION_FORMATS: tuple[str, ...] = ("session_tsv", "session_csv")
_DEFAULT_SEP = {"session_tsv": "\t", "session_csv": ","}
DAY = 86_400.0  # seconds


# --------------------------------------------------------------------------- reading


def read_sessions(
    path: str | os.PathLike,
    format: str = "session_tsv",
    session_col: str = "SessionId",
    item_col: str = "ItemId",
    time_col: str = "Time",
    sep: str | None = None,
) -> pd.DataFrame:
    """Read a session log into a frame with columns ``session``, ``item`` (int64) and ``time``.

    ``time`` is float seconds: a numeric time column is taken as it is (e.g. Unix seconds), a
    column of date strings is parsed by pandas into seconds since the epoch (naive dates are
    read as UTC). Rows keep file order. ``format`` is ``session_tsv`` (tab-separated, default
    header ``SessionId, ItemId, Time``) or ``session_csv`` (comma-separated unless ``sep`` says
    otherwise, e.g. ``;`` for Diginetica's ``train-item-views.csv``).

    Raises:
        FileNotFoundError: no file at ``path``.
        DataFormatError: (a ``ValueError``) the message names the file and, where it applies,
            the line and the column at fault.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "session file not found", str(path))
    if format not in SESSION_FORMATS:
        raise _error(path, f"unknown data.format {format!r}; choose one of {SESSION_FORMATS}")
    sep = _DEFAULT_SEP[format] if sep is None else sep
    wanted = {"session_col": session_col, "item_col": item_col, "time_col": time_col}

    try:
        found = [str(c) for c in pd.read_csv(path, sep=sep, nrows=0, engine="c").columns]
    except pd.errors.EmptyDataError:
        raise _error(path, "no events (the file is empty)") from None
    except UnicodeDecodeError as exc:
        raise _error(path, f"not UTF-8 text ({exc})") from None
    for setting, col in wanted.items():
        if col not in found:
            raise _error(
                path,
                f"column {col!r} (data.{setting}) not found; columns in the file: "
                f"{', '.join(found)} (separator {sep!r}, set by data.sep)",
            )

    try:
        with warnings.catch_warnings():
            # Mixed dtypes across chunks are fine: every column is checked below.
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            # A first data line longer than the header only warns (and drops data); fail.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # All columns are read (no usecols), else lines with extra fields pass unnoticed.
            frame = pd.read_csv(
                path,
                sep=sep,
                engine="c",
                index_col=False,
                # Blank lines stay as (all-missing) rows so that row numbers are line numbers.
                skip_blank_lines=False,
            )
    except pd.errors.ParserWarning:
        raise _error(path, "more fields than the header has columns", line=2) from None
    except pd.errors.ParserError as exc:
        raise _error(path, f"cannot parse: {exc}") from None
    except UnicodeDecodeError as exc:
        raise _error(path, f"not UTF-8 text ({exc})") from None

    frame = frame[frame.notna().any(axis=1).to_numpy()]  # drop blank lines
    if frame.empty:
        raise _error(path, "no events (no data rows under the header)")
    lines = frame.index.to_numpy() + 2  # line 1 is the header
    events = pd.DataFrame(
        {
            "session": _integer_ids(path, frame[session_col], session_col, lines),
            "item": _integer_ids(path, frame[item_col], item_col, lines),
            "time": _seconds(path, frame[time_col], time_col, lines),
        }
    )
    log.info("read %d events from %s (format %s)", len(events), path, format)
    return events


def _error(
    path: Path, msg: str, *, line: int | None = None, column: str | None = None
) -> DataFormatError:
    where = ([f"line {line}"] if line is not None else []) + (
        [f"column {column!r}"] if column is not None else []
    )
    return DataFormatError(f"{path}: {', '.join(where)}: {msg}" if where else f"{path}: {msg}")


def _shown(value: Any) -> str:
    return "empty" if pd.isna(value) or value == "" else repr(value)


def _integer_ids(path: Path, column: pd.Series, name: str, lines: np.ndarray) -> np.ndarray:
    if ptypes.is_integer_dtype(column):
        return column.to_numpy(np.int64)
    numbers = column if ptypes.is_float_dtype(column) else pd.to_numeric(column, errors="coerce")
    if ptypes.is_integer_dtype(numbers):
        return numbers.to_numpy(np.int64)
    values = numbers.to_numpy(np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~np.isfinite(values) | (values % 1 != 0))
    if bad.size:
        i = int(bad[0])
        raise _error(
            path,
            f"ids must be integers, found {_shown(column.iloc[i])}",
            line=int(lines[i]),
            column=name,
        )
    return values.astype(np.int64)


def _seconds(path: Path, column: pd.Series, name: str, lines: np.ndarray) -> np.ndarray:
    """Numeric times as they are; date strings as seconds since the epoch."""
    if ptypes.is_bool_dtype(column):
        column = column.astype("str")
    numbers = column if ptypes.is_numeric_dtype(column) else pd.to_numeric(column, errors="coerce")
    values = numbers.to_numpy(np.float64, na_value=np.nan)
    kind = "a number"
    # The first value decides whether the column holds numbers or dates, so that a column mixing
    # the two fails instead of being read half one way and half the other.
    if not np.isfinite(values[0]) and not pd.isna(column.iloc[0]):
        with warnings.catch_warnings():
            # pandas warns when it cannot infer one format and parses value by value.
            warnings.simplefilter("ignore", UserWarning)
            dates = pd.to_datetime(column, errors="coerce", utc=True)
        epoch = pd.Timestamp("1970-01-01", tz="UTC")
        values = ((dates - epoch) / pd.Timedelta(seconds=1)).to_numpy(np.float64, na_value=np.nan)
        kind = "a date"
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = int(bad[0])
        raise _error(
            path,
            f"time is not {kind}: {_shown(column.iloc[i])}",
            line=int(lines[i]),
            column=name,
        )
    return values


# --------------------------------------------------------------------------- filtering


def filter_sessions(
    events: pd.DataFrame,
    collapse_repeats: bool = False,
    min_session_length: int = 2,
    min_item_support: int = 5,
) -> pd.DataFrame:
    """GRU4Rec's filters, in its order, each step logged with counts.

    Events are first ordered by session and, within a session, by time with a stable sort (file
    order breaks ties). Then: optionally collapse consecutive clicks on the same item within a
    session into one (``collapse_repeats``); drop sessions shorter than ``min_session_length``;
    drop items with fewer than ``min_item_support`` events; drop sessions that became shorter
    than ``min_session_length``. Dropping an item can bring two clicks on another item
    together; they are not collapsed again (GRU4Rec filters exactly once in this order).

    A ``source`` column, when present, keeps sessions of different files apart: a session is a
    (``source``, ``session``) pair.
    """
    if min_session_length < 1:
        raise ValueError(
            f"data.preprocessing.min_session_length must be at least 1, got {min_session_length}"
        )
    if min_item_support < 0:
        raise ValueError(
            f"data.preprocessing.min_item_support must not be negative, got {min_item_support}"
        )
    key, item = _session_key(events), pd.factorize(events["item"])[0]
    order = np.argsort(events["time"].to_numpy(), kind="stable")
    order = order[np.argsort(key[order], kind="stable")]
    key, item = key[order], item[order]
    _log_step("read", key, item)

    keep = np.ones(len(order), dtype=bool)
    if collapse_repeats:
        repeat = (key[1:] == key[:-1]) & (item[1:] == item[:-1])
        keep[1:] &= ~repeat
        _log_step("collapse repeated clicks", key[keep], item[keep])
    keep &= _long_sessions(key, keep, min_session_length)
    _log_step(f"sessions with >= {min_session_length} events", key[keep], item[keep])
    keep &= (
        np.bincount(item[keep], minlength=item.max() + 1 if len(item) else 0)[item]
        >= min_item_support
    )
    _log_step(f"items with >= {min_item_support} events", key[keep], item[keep])
    keep &= _long_sessions(key, keep, min_session_length)
    _log_step(f"sessions with >= {min_session_length} events", key[keep], item[keep])
    return events.iloc[order[keep]].reset_index(drop=True)


def _session_key(events: pd.DataFrame) -> np.ndarray:
    """One int64 code per session; (source, session) pairs when a ``source`` column exists."""
    codes = pd.factorize(events["session"], sort=True)[0].astype(np.int64)
    if "source" in events:
        sources = pd.factorize(events["source"], sort=True)[0]
        codes = sources * (codes.max() + 1 if len(codes) else 1) + codes
    return codes


def _long_sessions(key: np.ndarray, keep: np.ndarray, minimum: int) -> np.ndarray:
    """Events whose session has at least ``minimum`` kept events."""
    counts = np.bincount(key[keep], minlength=key.max() + 1 if len(key) else 0)
    return counts[key] >= minimum


def _log_step(step: str, key: np.ndarray, item: np.ndarray) -> None:
    log.info(
        "%-34s %10d events %9d sessions %8d items",
        step,
        len(key),
        np.count_nonzero(np.bincount(key)) if len(key) else 0,
        np.count_nonzero(np.bincount(item)) if len(item) else 0,
    )


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class SessionPart:
    """Sessions in CSR layout, ordered by start time (ties keep session id order).

    Session ``s`` owns events ``session_ptr[s]:session_ptr[s + 1]`` of ``item`` and ``time``,
    in time order. In a :class:`SessionSplit` items are remapped to ``1..N`` (0 is padding).
    """

    session_ptr: np.ndarray  # (S + 1,) int64 offsets
    item: np.ndarray  # (E,) int64
    time: np.ndarray  # (E,) float64 seconds
    session_ids: np.ndarray  # (S,) raw session ids

    @property
    def num_sessions(self) -> int:
        return len(self.session_ptr) - 1

    @property
    def num_events(self) -> int:
        return len(self.item)

    @property
    def lengths(self) -> np.ndarray:
        """(S,) events per session."""
        return np.diff(self.session_ptr)

    @property
    def start_time(self) -> np.ndarray:
        return self.time[self.session_ptr[:-1]]

    @property
    def end_time(self) -> np.ndarray:
        return self.time[self.session_ptr[1:] - 1]

    def select(self, sessions: np.ndarray) -> SessionPart:
        """The sessions picked by a boolean mask, reordered by start time (stable)."""
        chosen = np.flatnonzero(sessions)
        chosen = chosen[np.argsort(self.start_time[chosen], kind="stable")]
        lengths = self.lengths[chosen]
        _, rows = expand_ranges(self.session_ptr[chosen], lengths)
        return SessionPart(
            session_ptr=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            item=self.item[rows],
            time=self.time[rows],
            session_ids=self.session_ids[chosen],
        )

    def keep_events(self, keep: np.ndarray, min_length: int) -> SessionPart:
        """Only the events in the boolean mask ``keep``, then sessions of >= ``min_length``."""
        owner = np.repeat(np.arange(self.num_sessions), self.lengths)
        counts = np.bincount(owner[keep], minlength=self.num_sessions)
        long_enough = counts >= max(min_length, 1)
        keep = keep & long_enough[owner]
        part = SessionPart(
            session_ptr=np.concatenate([[0], np.cumsum(counts[long_enough])]).astype(np.int64),
            item=self.item[keep],
            time=self.time[keep],
            session_ids=self.session_ids[long_enough],
        )
        # Dropping a first event moves a session's start, so restore the start-time order.
        return part.select(np.ones(part.num_sessions, dtype=bool))

    def summary(self) -> str:
        return (
            f"{self.num_sessions} sessions, {self.num_events} events, "
            f"{len(np.unique(self.item))} items"
        )

    @classmethod
    def from_events(cls, events: pd.DataFrame) -> SessionPart:
        """CSR sessions from a frame with ``session``, ``item``, ``time`` (any row order)."""
        key = _session_key(events)
        order = np.argsort(events["time"].to_numpy(), kind="stable")
        order = order[np.argsort(key[order], kind="stable")]
        key = key[order]
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]])) if len(key) else key
        part = cls(
            session_ptr=np.concatenate([starts, [len(key)]]).astype(np.int64),
            item=events["item"].to_numpy(np.int64)[order],
            time=events["time"].to_numpy(np.float64)[order],
            session_ids=events["session"].to_numpy()[order][starts],
        )
        return part.select(np.ones(part.num_sessions, dtype=bool))


@dataclass(frozen=True)
class SessionSplit:
    """Training, validation and test sessions with items remapped to ``1..num_items``.

    ``item_ids[i - 1]`` is the raw id of item ``i``; every item of every part is a training
    item.
    """

    train: SessionPart
    val: SessionPart
    test: SessionPart
    item_ids: np.ndarray  # (N,) raw item ids, sorted

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def parts(self) -> dict[str, SessionPart]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for :func:`rnnrec.data.cache.save_arrays_atomically`."""
        arrays = {"item_ids": self.item_ids}
        for name, part in self.parts().items():
            for field in ("session_ptr", "item", "time", "session_ids"):
                arrays[f"{name}_{field}"] = getattr(part, field)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> SessionSplit:
        parts = {
            name: SessionPart(
                **{
                    field: arrays[f"{name}_{field}"]
                    for field in ("session_ptr", "item", "time", "session_ids")
                }
            )
            for name in ("train", "val", "test")
        }
        return cls(item_ids=arrays["item_ids"], **parts)


# --------------------------------------------------------------------------- splitting


def cut_by_time(part: SessionPart, days: float, what: str) -> tuple[SessionPart, SessionPart]:
    """Split at ``last event - days``: sessions ending at or before it, and starting after it.

    Sessions that straddle the cut belong to neither, so every session of the second part
    starts after every session of the first has ended. ``what`` names the setting in logs.
    """
    if not days > 0:
        raise ValueError(f"data.split.{what}_days must be positive, got {days}")
    cut = float(part.time.max()) - days * DAY if part.num_events else 0.0
    before, after = part.end_time <= cut, part.start_time > cut
    straddling = part.num_sessions - int(before.sum()) - int(after.sum())
    log.info(
        "%s cut at %s (last event - %g days): %d sessions before, %d after, "
        "%d straddling the cut dropped",
        what,
        pd.Timestamp(cut, unit="s"),
        days,
        int(before.sum()),
        int(after.sum()),
        straddling,
    )
    return part.select(before), part.select(after)


def split_by_days(
    events: pd.DataFrame, test_days: float = 1.0, val_days: float = 1.0
) -> SessionSplit:
    """One log: the last ``test_days`` are test, the ``val_days`` before them validation.

    See :func:`cut_by_time` for how sessions straddling a cut are handled and
    :func:`finish_split` for what happens to evaluation items unseen in training.
    """
    everything = SessionPart.from_events(events)
    train, test = cut_by_time(everything, test_days, "test")
    if train.num_sessions == 0:
        raise ValueError(
            f"no training sessions end before the test cut; lower data.split.test_days "
            f"(now {test_days}) or use more data"
        )
    train, val = cut_by_time(train, val_days, "val")
    return finish_split(train, val, test)


def split_by_files(
    train_events: pd.DataFrame,
    test_events: pd.DataFrame,
    val_days: float = 1.0,
    *,
    train_name: str = "the training file",
    test_name: str = "the test file",
) -> SessionSplit:
    """Separate training and test logs; validation is the last ``val_days`` of training.

    Raises:
        LeakageError: a test session starts at or before the end of the last training session.
    """
    train = SessionPart.from_events(train_events)
    test = SessionPart.from_events(test_events)
    if train.num_sessions == 0:
        raise ValueError(f"no training sessions in {train_name}")
    last_end = float(train.end_time.max())
    early = test.start_time <= last_end
    if early.any():
        first = int(np.argmax(early))  # sessions are ordered by start time
        raise LeakageError(
            f"{int(early.sum())} test sessions in {test_name} start at or before the end of "
            f"the last training session in {train_name} ({pd.Timestamp(last_end, unit='s')}); "
            f"the first, session {test.session_ids[first]}, starts at "
            f"{pd.Timestamp(float(test.start_time[first]), unit='s')}"
        )
    train, val = cut_by_time(train, val_days, "val")
    return finish_split(train, val, test)


def finish_split(train: SessionPart, val: SessionPart, test: SessionPart) -> SessionSplit:
    """Drop evaluation items unseen in training (then too short sessions); remap items.

    Items are numbered ``1..N`` in the order of their raw ids.
    """
    item_ids = np.unique(train.item)
    parts = {"val": val, "test": test}
    for name, part in parts.items():
        seen = np.isin(part.item, item_ids)
        kept = part.keep_events(seen, 2)
        log.info(
            "%s: %d events of items unseen in training removed; %d sessions left with fewer "
            "than 2 events dropped",
            name,
            int((~seen).sum()),
            part.num_sessions - kept.num_sessions,
        )
        parts[name] = kept

    def remap(part: SessionPart) -> SessionPart:
        item = np.searchsorted(item_ids, part.item).astype(np.int64) + 1
        return SessionPart(part.session_ptr, item, part.time, part.session_ids)

    return SessionSplit(remap(train), remap(parts["val"]), remap(parts["test"]), item_ids)


# --------------------------------------------------------------------------- all steps

PREPROCESSING_KEYS = ("collapse_repeats", "min_session_length", "min_item_support")
SPLIT_KEYS = ("test_days", "val_days")


def load_sessions(
    path: str | os.PathLike,
    format: str = "session_tsv",
    *,
    test_path: str | os.PathLike | None = None,
    session_col: str = "SessionId",
    item_col: str = "ItemId",
    time_col: str = "Time",
    sep: str | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    split: Mapping[str, Any] | None = None,
) -> SessionSplit:
    """Read, filter and split: the whole pipeline behind :class:`SessionDataModule`.

    With ``test_path`` the file at ``path`` is the training data and ``test_path`` the test
    data; both are filtered together (item support counts events of both files, as GRU4Rec
    counts them over the whole log before its time split) and ``split.test_days`` is unused.
    """
    preprocessing = dict(preprocessing or {})
    split = dict(split or {})
    _check_keys(preprocessing, PREPROCESSING_KEYS, "data.preprocessing")
    _check_keys(split, SPLIT_KEYS, "data.split")
    columns = {"session_col": session_col, "item_col": item_col, "time_col": time_col}
    events = read_sessions(path, format, sep=sep, **columns)
    if test_path is None:
        return split_by_days(filter_sessions(events, **preprocessing), **split)

    test_events = read_sessions(test_path, format, sep=sep, **columns)
    both = pd.concat([events.assign(source=0), test_events.assign(source=1)], ignore_index=True)
    both = filter_sessions(both, **preprocessing)
    from_test = both["source"].to_numpy() == 1
    return split_by_files(
        both[~from_test],
        both[from_test],
        split.get("val_days", 1.0),
        train_name=str(path),
        test_name=str(test_path),
    )


def _check_keys(settings: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {where} settings {unknown}; expected some of {allowed}")
