"""Item genres from MovieLens and RecBole item files, as a multi-hot matrix.

Supported files: ML-100K ``u.item`` (``|``-separated, 19 genre flags), ML-1M ``movies.dat``
(``::``-separated, genres split by ``|``, latin-1), ml-latest ``movies.csv`` (header
``movieId,title,genres``) and RecBole ``.item`` (tab-separated, ``class:token_seq``).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from rnnrec.data.readers import _PARSER_ERROR, DataFormatError, _error

log = logging.getLogger(__name__)

ITEM_FORMATS: tuple[str, ...] = ("auto", "ml100k", "ml1m", "ml_csv", "recbole")
# The 19 flag columns of ML-100K's u.item, in file order (from the data set's README).
ML100K_GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
# ml-latest writes this instead of an empty genre list.
_NO_GENRES = "(no genres listed)"


class ItemGenres(NamedTuple):
    """Genres of the items in one file; unpacks as ``(item_ids, multi_hot, names)``."""

    item_ids: np.ndarray  # (M,) raw item ids as strings, in file order
    multi_hot: np.ndarray  # (M, G) bool, True where the item has the genre
    names: list[str]  # (G,) genre of each column


def read_item_genres(path: str | os.PathLike, format: str = "auto") -> ItemGenres:
    """Read the genres of every item in ``path``; ``format`` is one of :data:`ITEM_FORMATS`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "item feature file not found", str(path))
    fmt = format.lower()
    if fmt == "auto":
        fmt = _guess_format(path)
    if fmt == "ml100k":
        genres = _read_ml100k(path)
    elif fmt == "ml1m":
        genres = _read_ml1m(path)
    elif fmt == "ml_csv":
        genres = _read_ml_csv(path)
    elif fmt == "recbole":
        genres = _read_recbole(path)
    else:
        choices = ", ".join(ITEM_FORMATS)
        raise _error(path, f"unknown data.item_features_format {format!r}; choose one of {choices}")
    log.info(
        "read %d genres of %d items from %s (format %s)",
        len(genres.names),
        len(genres.item_ids),
        path,
        fmt,
    )
    return genres


def align_genres(item_ids: np.ndarray, genres: ItemGenres) -> tuple[np.ndarray, int]:
    """(N + 1, G) float32 multi-hot for items 1..N with raw ids ``item_ids``; row 0 is padding.

    Raw ids are matched as strings, so int ids in the interactions meet text ids in the
    feature file. Items the file lacks get all zeros; their count is returned too.
    """
    rows = pd.Index(genres.item_ids).get_indexer(np.asarray(item_ids).astype(str))  # (N,)
    found = rows >= 0
    matrix = np.zeros((len(rows) + 1, len(genres.names)), dtype=np.float32)
    matrix[1:][found] = genres.multi_hot[rows[found]]
    return matrix, int(np.count_nonzero(~found))


def _guess_format(path: Path) -> str:
    by_name = {"u.item": "ml100k", "movies.dat": "ml1m", "movies.csv": "ml_csv"}
    fmt = by_name.get(path.name.lower())
    if fmt is None and path.suffix.lower() == ".item":
        fmt = "recbole"
    if fmt is None:
        choices = ", ".join(f for f in ITEM_FORMATS if f != "auto")
        msg = "cannot tell the item file's format from its name; set "
        raise _error(path, f"{msg}data.item_features_format to one of: {choices}")
    return fmt


# --------------------------------------------------------------------------- readers


def _read_ml100k(path: Path) -> ItemGenres:
    lines, numbers = _lines(path, "latin-1")
    fields = _split(path, lines, numbers, "|", 5 + len(ML100K_GENRES))
    ids = _ids(path, fields[0], numbers, "movie id (field 1)")
    flags = fields.iloc[:, 5:]
    ok = flags.isin(["0", "1"]).to_numpy()
    if not ok.all():
        row, col = np.argwhere(~ok)[0]
        raise _error(
            path,
            f"a genre flag must be 0 or 1, found {flags.iat[row, col]!r}",
            line=int(numbers[row]),
            column=f"{ML100K_GENRES[col]} (field {6 + col})",
        )
    return ItemGenres(ids, flags.to_numpy() == "1", list(ML100K_GENRES))


def _read_ml1m(path: Path) -> ItemGenres:
    # Titles hold single colons ("Star Wars: ..."), so split on the whole "::".
    lines, numbers = _lines(path, "latin-1")
    fields = _split(path, lines, numbers, "::", 3)
    ids = _ids(path, fields[0], numbers, "MovieID (field 1)")
    return _from_token_lists(ids, fields[2], "|")


def _read_ml_csv(path: Path) -> ItemGenres:
    # Titles are quoted when they hold commas: this needs a real CSV parser.
    try:
        with warnings.catch_warnings():
            # A first data line longer than the header only warns (and drops data); fail.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                skip_blank_lines=False,
                engine="c",
                index_col=False,
            )
    except pd.errors.EmptyDataError:
        raise _error(path, "no items (the file is empty)") from None
    except pd.errors.ParserWarning:
        msg = "more fields than the header has columns (quote titles that hold commas)"
        raise _error(path, msg, line=2) from None
    except pd.errors.ParserError as exc:
        m = _PARSER_ERROR.search(str(exc))
        if m is None:
            raise _error(path, f"cannot parse: {exc}") from exc
        expected, line, saw = map(int, m.groups())
        msg = f"expected {expected} fields, found {saw} (quote titles that hold commas)"
        raise _error(path, msg, line=line) from None
    except UnicodeDecodeError as exc:
        raise _error(path, f"not UTF-8 text ({exc})") from None
    for col in ("movieId", "genres"):
        if col not in df.columns:
            found = ", ".join(map(str, df.columns))
            raise _error(path, f"column {col!r} not found; columns in the file: {found}")
    numbers = df.index.to_numpy() + 2  # 1-based, after the header
    blank = df.eq("").all(axis=1).to_numpy()
    df, numbers = df[~blank], numbers[~blank]
    _require_rows(path, len(df))
    ids = _ids(path, df["movieId"], numbers, "movieId")
    return _from_token_lists(ids, df["genres"], "|")


def _read_recbole(path: Path) -> ItemGenres:
    lines, numbers = _lines(path, "utf-8")
    header = lines.iloc[0].split("\t") if len(lines) else []
    # Columns are typed ("class:token_seq"); look them up by the part before ":".
    names = [h.split(":")[0] for h in header]
    for col in ("item_id", "class"):
        if col not in names:
            found = ", ".join(header)
            raise _error(path, f"column {col!r} not found in the header; columns: {found}")
    fields = _split(path, lines.iloc[1:], numbers[1:], "\t", len(header))
    ids = _ids(path, fields[names.index("item_id")], numbers[1:], header[names.index("item_id")])
    return _from_token_lists(ids, fields[names.index("class")], None)


# --------------------------------------------------------------------------- helpers


def _lines(path: Path, encoding: str) -> tuple[pd.Series, np.ndarray]:
    """Non-blank lines of the file and their 1-based line numbers."""
    try:
        # Text mode turns "\r\n" into "\n"; str.splitlines would also split at U+0085,
        # which latin-1 text may hold.
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise _error(path, f"not {encoding} text ({exc})") from None
    lines = pd.Series(text.split("\n"), dtype=str)
    keep = lines.str.strip().ne("").to_numpy()
    numbers = np.flatnonzero(keep) + 1
    _require_rows(path, len(numbers))
    return lines[keep].reset_index(drop=True), numbers


def _split(
    path: Path, lines: pd.Series, numbers: np.ndarray, sep: str, n_fields: int
) -> pd.DataFrame:
    """Split every line at ``sep`` into exactly ``n_fields`` fields, positional columns."""
    _require_rows(path, len(lines))
    counts = lines.str.count(re.escape(sep)).to_numpy() + 1
    bad = np.flatnonzero(counts != n_fields)
    if bad.size:
        i = bad[0]
        msg = f"expected {n_fields} {sep!r}-separated fields, found {counts[i]}"
        raise _error(path, msg, line=int(numbers[i]))
    fields = lines.str.split(sep, regex=False, expand=True)
    return fields.reset_index(drop=True)


def _ids(path: Path, ids: pd.Series, numbers: np.ndarray, column: str) -> np.ndarray:
    """Stripped id strings; empty and repeated ids are errors."""
    ids = ids.astype(str).str.strip().reset_index(drop=True)
    empty = np.flatnonzero(ids.eq("").to_numpy())
    if empty.size:
        raise _error(path, "empty item id", line=int(numbers[empty[0]]), column=column)
    repeated = np.flatnonzero(ids.duplicated().to_numpy())
    if repeated.size:
        i = repeated[0]
        first = int(numbers[np.flatnonzero(ids.eq(ids.iloc[i]).to_numpy())[0]])
        msg = f"item id {ids.iloc[i]!r} repeated (first on line {first})"
        raise _error(path, msg, line=int(numbers[i]), column=column)
    return ids.to_numpy(dtype=str)


def _from_token_lists(ids: np.ndarray, genres: pd.Series, sep: str | None) -> ItemGenres:
    """Multi-hot from one genre string per item, split at ``sep`` (``None``: whitespace)."""
    tokens = genres.reset_index(drop=True).str.split(sep).explode().str.strip()
    tokens = tokens[tokens.notna() & tokens.ne("") & tokens.ne(_NO_GENRES)]
    codes, names = pd.factorize(tokens, sort=True)
    multi_hot = np.zeros((len(ids), len(names)), dtype=bool)
    # explode keeps each token's row label: the item's position.
    multi_hot[tokens.index.to_numpy(dtype=np.int64), codes] = True
    return ItemGenres(ids, multi_hot, [str(name) for name in names])


def _require_rows(path: Path, count: int) -> None:
    if count == 0:
        raise DataFormatError(f"{path}: no items (no data rows)")
