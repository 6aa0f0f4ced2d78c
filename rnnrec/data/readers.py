"""Read interaction logs in common recommender-data formats into one DataFrame.

Every reader returns columns ``user``, ``item``, ``timestamp`` and, when the source has
ratings, ``rating``, in file order. Ids keep their raw values: int64 when every id is a
plain integer (no leading zeros), otherwise strings.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import os
import re
import warnings
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = (
    "auto",
    "ml100k",
    "ml1m",
    "ml_csv",
    "recbole",
    "sasrec",
    "user_sequence",
    "csv",
    "tsv",
    "parquet",
)

# Ids matching this become int64. Leading zeros ("007") and "-0" would not survive a round
# trip through int, and more than 18 digits may overflow int64, so those stay strings.
_INT_ID = r"0|-?[1-9][0-9]{0,17}"
_PARSER_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
# Column names used when user_col/item_col/time_col/rating_col are left at their defaults.
_DEFAULT_COLS = {
    "recbole": ("user_id", "item_id", "timestamp", "rating"),
    "ml_csv": ("userId", "movieId", "timestamp", "rating"),
}


class DataFormatError(ValueError):
    """An interaction file cannot be parsed; the message names the file, line and column."""


def _error(
    path: Path, msg: str, *, line: int | None = None, column: str | None = None, unit: str = "line"
) -> DataFormatError:
    where = ([f"{unit} {line}"] if line is not None else []) + (
        [f"column {column!r}"] if column is not None else []
    )
    return DataFormatError(f"{path}: {', '.join(where)}: {msg}" if where else f"{path}: {msg}")


def read_interactions(
    path: str | os.PathLike,
    format: str = "auto",
    *,
    user_col: str = "user",
    item_col: str = "item",
    time_col: str | None = "timestamp",
    rating_col: str | None = None,
    sep: str | None = None,
) -> pd.DataFrame:
    """Read an interaction log into a frame with columns user, item, timestamp[, rating].

    ``format`` is one of :data:`FORMATS`; the column options and ``sep`` apply to the
    generic formats (csv, tsv, parquet) and, for the column options, to recbole and ml_csv.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "interaction file not found", str(path))
    fmt = format.lower()
    if fmt == "auto":
        fmt = _guess_format(path)
    if fmt not in FORMATS:
        raise _error(path, f"unknown data.format {format!r}; choose one of {', '.join(FORMATS)}")
    if sep is not None and fmt not in ("csv", "tsv"):
        logger.warning("data.sep=%r is ignored for format %r", sep, fmt)

    cols = (user_col, item_col, time_col, rating_col)
    if fmt == "ml100k":
        df = _read_ml100k(path)
    elif fmt == "ml1m":
        df = _read_ml1m(path)
    elif fmt == "sasrec":
        df = _read_sasrec(path)
    elif fmt == "user_sequence":
        df = _read_user_sequence(path)
    elif fmt == "parquet":
        df = _read_parquet(path, *cols)
    else:
        default_sep = {"csv": ",", "tsv": "\t", "ml_csv": ",", "recbole": "\t"}[fmt]
        if fmt in ("csv", "tsv") and sep is not None:
            default_sep = sep
        df = _read_header_table(path, fmt, default_sep, *cols)
    logger.info("read %d interactions from %s (format %s)", len(df), path, fmt)
    return df


def find_ml100k() -> Path:
    """Return the path of ``ml-100k.inter`` shipped inside the recbole wheel.

    Uses ``find_spec`` so that recbole (and its heavy dependencies) is not imported.
    """
    hint = "run `pip install --no-deps recbole==1.2.1` or set data.path"
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"recbole is not installed, so ml-100k is unavailable: {hint}")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "dataset_example" / "ml-100k" / "ml-100k.inter"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"ml-100k.inter not found in the recbole package: {hint}")


def _guess_format(path: Path) -> str:
    name = path.name.lower()
    by_name = {"u.data": "ml100k", "ratings.dat": "ml1m", "ratings.csv": "ml_csv"}
    by_suffix = {".inter": "recbole", ".parquet": "parquet", ".tsv": "tsv", ".csv": "csv"}
    fmt = by_name.get(name) or by_suffix.get(path.suffix.lower())
    if fmt is None:
        choices = ", ".join(f for f in FORMATS if f != "auto")
        msg = f"cannot tell the format from the file name; set data.format to one of: {choices}"
        raise _error(path, msg)
    return fmt


# --------------------------------------------------------------------------- text readers


def _read_table(
    path: Path, *, sep: str, header: bool, n_fields: int | None, ids: list[int | str]
) -> pd.DataFrame:
    """Read a delimited file with the C parser; ids as strings, blank lines dropped.

    The returned index is the 0-based data-row number counting blank lines, so
    ``index + 1 + header`` is the line number in the file.
    """
    try:
        with warnings.catch_warnings():
            # A first data line longer than the header only warns (and drops data); fail.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # Mixed chunk dtypes are fine: numeric columns are re-checked afterwards.
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            df = pd.read_csv(
                path,
                sep=sep,
                header=0 if header else None,
                dtype=dict.fromkeys(ids, str),
                engine="c",
                index_col=False,
                # Keep "" and "NA" as text so that empty ids and bad numbers can be reported.
                keep_default_na=False,
                # Keep blank lines as rows so that row numbers map to line numbers.
                skip_blank_lines=False,
            )
    except pd.errors.EmptyDataError:
        raise _error(path, "no interactions (the file is empty)") from None
    except pd.errors.ParserWarning:
        raise _error(path, "more fields than the header has columns", line=2) from None
    except pd.errors.ParserError as exc:
        m = _PARSER_ERROR.search(str(exc))
        if m is None:
            raise _error(path, f"cannot parse: {exc}") from exc
        expected, line, saw = map(int, m.groups())
        # ml1m is split on ":", so pandas' counts are not the user's fields.
        msg = f"expected {expected} fields, found {saw}"
        if sep == ":":
            msg = "wrong number of '::'-separated fields"
        raise _error(path, msg, line=line) from None
    except UnicodeDecodeError as exc:
        raise _error(path, f"not UTF-8 text ({exc})") from None

    if n_fields is not None and df.shape[1] != n_fields:
        # Without a header the first line fixes the field count; later lines are checked by
        # pandas, so a wrong count here is on line 1.
        raise _error(path, f"expected {n_fields} fields, found {df.shape[1]}", line=1)
    blank = pd.Series(True, index=df.index)
    for col in df.columns:
        if ptypes.is_numeric_dtype(df[col]):
            blank[:] = False  # a numeric column has no empty cells, so no blank lines
            break
        blank &= df[col].eq("")
    return df[~blank.to_numpy()]


def _read_ml100k(path: Path) -> pd.DataFrame:
    df = _read_table(path, sep="\t", header=False, n_fields=4, ids=[0, 1])
    labels = ["user (field 1)", "item (field 2)", "timestamp (field 4)", "rating (field 3)"]
    return _assemble(path, df[0], df[1], df[3], df[2], df.index + 1, labels)


def _read_ml1m(path: Path) -> pd.DataFrame:
    # "::" would force the slow python engine; split on ":" and check that every other field
    # (between the two colons) is empty.
    df = _read_table(path, sep=":", header=False, n_fields=None, ids=[0, 2, 1, 3, 5])
    lines = df.index + 1
    if df.shape[1] != 7:
        raise _error(path, "expected 4 fields separated by '::'", line=1)
    for col in (1, 3, 5):
        bad = np.flatnonzero(df[col].ne("").to_numpy())
        if bad.size:
            raise _error(path, "expected fields separated by '::'", line=int(lines[bad[0]]))
    labels = ["user (field 1)", "item (field 2)", "timestamp (field 4)", "rating (field 3)"]
    return _assemble(path, df[0], df[2], df[6], df[4], lines, labels)


def _read_sasrec(path: Path) -> pd.DataFrame:
    df = _read_table(path, sep=r"\s+", header=False, n_fields=2, ids=[0, 1])
    return _assemble(path, df[0], df[1], None, None, df.index + 1, ["user", "item"])


def _read_user_sequence(path: Path) -> pd.DataFrame:
    # Lines differ in length, so pandas cannot parse them; split per line (not per token)
    # and expand users with numpy.
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _error(path, f"not UTF-8 text ({exc})") from None
    rows = [line.split() for line in text.split("\n")]
    counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    lone = np.flatnonzero(counts == 1)
    if lone.size:
        raise _error(path, "a user with no items", line=int(lone[0]) + 1)
    used = np.flatnonzero(counts > 0)  # blank lines are skipped
    tokens = pd.Series(list(chain.from_iterable(rows)), dtype="str")
    starts = (np.cumsum(counts) - counts)[used]
    n_items = counts[used] - 1
    is_item = np.ones(len(tokens), dtype=bool)
    is_item[starts] = False
    users = tokens.iloc[np.repeat(starts, n_items)]
    items = tokens[is_item]
    lines = np.repeat(used + 1, n_items)
    return _assemble(path, users, items, None, None, lines, ["user", "item"])


def _read_header_table(
    path: Path,
    fmt: str,
    sep: str,
    user_col: str,
    item_col: str,
    time_col: str | None,
    rating_col: str | None,
) -> pd.DataFrame:
    try:
        raw_names = list(pd.read_csv(path, sep=sep, nrows=0, engine="c").columns)
    except pd.errors.EmptyDataError:
        raise _error(path, "no interactions (the file is empty)") from None
    # RecBole headers carry types ("user_id:token"); settings name the part before ":".
    names = [n.split(":")[0] for n in raw_names] if fmt == "recbole" else raw_names
    to_raw = dict(zip(names, raw_names, strict=True))
    user, item, time, rating = _resolve_cols(
        path, fmt, names, user_col, item_col, time_col, rating_col
    )
    df = _read_table(path, sep=sep, header=True, n_fields=None, ids=[to_raw[user], to_raw[item]])
    df.columns = names
    return _assemble(
        path,
        df[user],
        df[item],
        df[time] if time else None,
        df[rating] if rating else None,
        df.index + 2,
        [user, item, str(time), str(rating)],
    )


def _resolve_cols(
    path: Path,
    fmt: str,
    found: list[str],
    user_col: str,
    item_col: str,
    time_col: str | None,
    rating_col: str | None,
) -> tuple[str, str, str | None, str | None]:
    """Pick the source columns and check they exist."""
    if fmt in _DEFAULT_COLS:
        d_user, d_item, d_time, d_rating = _DEFAULT_COLS[fmt]
        user_col = d_user if user_col == "user" else user_col
        item_col = d_item if item_col == "item" else item_col
        time_col = d_time if time_col == "timestamp" else time_col
        if rating_col is None and d_rating in found:
            rating_col = d_rating
    wanted = {"user_col": user_col, "item_col": item_col, "time_col": time_col}
    wanted["rating_col"] = rating_col
    for setting, col in wanted.items():
        if col is not None and col not in found:
            hint = "; set data.time_col=null to use file order" if setting == "time_col" else ""
            raise _error(
                path,
                f"column {col!r} (data.{setting}) not found; columns in the file: "
                f"{', '.join(map(str, found))}{hint}",
            )
    return user_col, item_col, time_col, rating_col


def _read_parquet(
    path: Path,
    user_col: str,
    item_col: str,
    time_col: str | None,
    rating_col: str | None,
) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        found = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as exc:
        raise _error(path, f"not a readable parquet file ({exc})") from None
    user, item, time, rating = _resolve_cols(
        path, "parquet", found, user_col, item_col, time_col, rating_col
    )
    wanted = [c for c in dict.fromkeys([user, item, time, rating]) if c is not None]
    df = pd.read_parquet(path, columns=wanted)
    ts = df[time] if time else None
    if ts is not None and ptypes.is_datetime64_any_dtype(ts):
        # Parquet often stores real timestamps; use seconds since the epoch.
        ts = (ts - pd.Timestamp(0, tz=ts.dt.tz)) // pd.Timedelta(seconds=1)
    lines = np.arange(1, len(df) + 1)
    labels = [user, item, str(time), str(rating)]
    return _assemble(
        path, df[user], df[item], ts, df[rating] if rating else None, lines, labels, unit="row"
    )


# --------------------------------------------------------------------------- conversion


def _assemble(
    path: Path,
    user: pd.Series,
    item: pd.Series,
    time: pd.Series | None,
    rating: pd.Series | None,
    lines: np.ndarray | pd.Index,
    labels: list[str],
    unit: str = "line",
) -> pd.DataFrame:
    """Validate and convert raw columns; ``lines`` gives each row's line number for errors."""
    if len(user) == 0:
        raise _error(path, "no interactions (no data rows)")
    lines = np.asarray(lines)
    # Callers pass slices of a parsed frame; a fresh RangeIndex keeps the columns aligned.
    user, item = user.reset_index(drop=True), item.reset_index(drop=True)
    time = None if time is None else time.reset_index(drop=True)
    rating = None if rating is None else rating.reset_index(drop=True)
    out = {
        "user": _ids(path, user, labels[0], lines, unit),
        "item": _ids(path, item, labels[1], lines, unit),
    }
    if time is None:
        out["timestamp"] = np.arange(len(user), dtype=np.int64)
    else:
        out["timestamp"] = _numeric(path, time, labels[2], lines, unit)
    if rating is not None:
        out["rating"] = _numeric(path, rating, labels[3], lines, unit).astype(np.float64)
    return pd.DataFrame(out)


def _ids(path: Path, s: pd.Series, label: str, lines: np.ndarray, unit: str) -> pd.Series:
    if ptypes.is_integer_dtype(s):
        return s.astype(np.int64)
    if ptypes.is_float_dtype(s) and s.notna().all() and (s % 1 == 0).all():
        return s.astype(np.int64)  # only from parquet: whole-number floats are integer ids
    s = s.astype("str")
    bad = np.flatnonzero((s.isna() | s.eq("")).to_numpy())
    if bad.size:
        raise _error(path, "empty or missing id", line=int(lines[bad[0]]), column=label, unit=unit)
    if s.str.fullmatch(_INT_ID).all():
        # Via arrow: numpy's astype goes through Python objects and is ~10x slower.
        return s.astype("int64[pyarrow]").astype(np.int64)
    return s


def _numeric(path: Path, s: pd.Series, label: str, lines: np.ndarray, unit: str) -> pd.Series:
    if ptypes.is_bool_dtype(s):
        s = s.astype("str")  # "True"/"False" are not numbers
    num = s if ptypes.is_numeric_dtype(s) else pd.to_numeric(s, errors="coerce")
    if ptypes.is_integer_dtype(num):
        return num.astype(np.int64)
    num = num.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(num.to_numpy()))
    if bad.size:
        i = bad[0]
        value = s.iloc[i]
        shown = repr(value) if isinstance(value, str) else str(value)  # not "np.float64(nan)"
        msg = "empty or missing value" if value == "" else f"not a finite number: {shown}"
        raise _error(
            path,
            msg,
            line=int(lines[i]),
            column=label,
            unit=unit,
        )
    return num
