"""Tests for rnnrec.data.item_features: each item-file format, its errors, and alignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnrec.data.datamodule import SequenceDataModule
from rnnrec.data.item_features import (
    ML100K_GENRES,
    ItemGenres,
    align_genres,
    read_item_genres,
)
from rnnrec.data.readers import DataFormatError, find_ml100k


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def _genres_of(genres: ItemGenres, item: str) -> set[str]:
    row = genres.multi_hot[list(genres.item_ids).index(item)]
    return {name for name, flag in zip(genres.names, row, strict=True) if flag}


def _fails(path: Path, *fragments: str) -> None:
    with pytest.raises(DataFormatError) as info:
        read_item_genres(path)
    msg = str(info.value)
    for fragment in (str(path), *fragments):
        assert fragment in msg


# --------------------------------------------------------------------------- ml100k u.item


def _u_item_line(item: int, title: str, flags: list[int]) -> str:
    return f"{item}|{title}|01-Jan-1995||http://x|" + "|".join(map(str, flags))


def test_ml100k_u_item(tmp_path: Path) -> None:
    action_comedy = [0] * 19
    action_comedy[1] = action_comedy[5] = 1
    text = "\n".join(
        [
            _u_item_line(1, "Toy Story (1995)", [0, 0, 0, 1] + [0] * 15),
            _u_item_line(2, "Caf\xe9 (1995)", action_comedy),  # latin-1 title
            "",
        ]
    )
    genres = read_item_genres(_write(tmp_path, "u.item", text, "latin-1"))
    assert genres.names == list(ML100K_GENRES)
    assert genres.item_ids.tolist() == ["1", "2"]
    assert _genres_of(genres, "1") == {"Animation"}
    assert _genres_of(genres, "2") == {"Action", "Comedy"}


def test_ml100k_errors_name_line_and_column(tmp_path: Path) -> None:
    flags = [0] * 19
    flags[2] = 7
    path = _write(
        tmp_path, "u.item", _u_item_line(1, "A", [0] * 19) + "\n" + _u_item_line(2, "B", flags)
    )
    _fails(path, "line 2", "column 'Adventure (field 8)'", "'7'")
    short = _write(tmp_path / "other", "u.item", "1|A|x\n")
    _fails(short, "line 1", "expected 24")


# --------------------------------------------------------------------------- ml1m movies.dat


def test_ml1m_movies_dat(tmp_path: Path) -> None:
    text = (
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "2::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n"  # ":" in the title
        "3::Am\xe9lie (2001)::Comedy\n"
    )
    genres = read_item_genres(_write(tmp_path, "movies.dat", text, "latin-1"))
    assert genres.names == ["Action", "Animation", "Children's", "Comedy", "Sci-Fi"]
    assert _genres_of(genres, "2") == {"Action", "Sci-Fi"}
    assert _genres_of(genres, "3") == {"Comedy"}


def test_ml1m_error_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "movies.dat", "1::A (1995)::Comedy\n2::B (1996)|Drama\n")
    _fails(path, "line 2", "expected 3 '::'-separated fields, found 2")


# --------------------------------------------------------------------------- ml-latest csv


def test_ml_latest_movies_csv(tmp_path: Path) -> None:
    text = (
        "movieId,title,genres\r\n"
        '1,"American President, The (1995)",Comedy|Drama|Romance\r\n'
        "2,Nothing (2000),(no genres listed)\r\n"
    )
    genres = read_item_genres(_write(tmp_path, "movies.csv", text))
    assert genres.names == ["Comedy", "Drama", "Romance"]
    assert _genres_of(genres, "1") == {"Comedy", "Drama", "Romance"}
    assert _genres_of(genres, "2") == set()


def test_ml_latest_errors_name_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "movies.csv", "movieId,title,genres\n1,A,Drama\n,B,Comedy\n")
    _fails(path, "line 3", "column 'movieId'", "empty item id")
    text = "movieId,title,genres\n1,A,Drama\n2,B, The,Drama\n"
    _fails(_write(tmp_path / "other", "movies.csv", text), "line 3", "expected 3 fields, found 4")


# --------------------------------------------------------------------------- recbole .item


def test_recbole_item(tmp_path: Path) -> None:
    text = (
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tHeat\t1995\tAction Crime Thriller\n"
        "11\tNothing\t1995\t\n"
    )
    genres = read_item_genres(_write(tmp_path, "x.item", text))
    assert genres.names == ["Action", "Crime", "Thriller"]
    assert _genres_of(genres, "10") == {"Action", "Crime", "Thriller"}
    assert _genres_of(genres, "11") == set()


def test_recbole_errors_name_line_and_column(tmp_path: Path) -> None:
    header = "item_id:token\tclass:token_seq\n"
    path = _write(tmp_path, "x.item", header + "1\tDrama\n1\tComedy\n")
    _fails(path, "line 3", "column 'item_id:token'", "repeated (first on line 2)")
    no_class = _write(tmp_path, "y.item", "item_id:token\ttitle:token_seq\n1\tA\n")
    _fails(no_class, "column 'class' not found")


def test_unknown_name_asks_for_the_format(tmp_path: Path) -> None:
    _fails(_write(tmp_path, "genres.txt", "1|A\n"), "data.item_features_format")


# --------------------------------------------------------------------------- shipped data


def test_shipped_ml100k_item_and_alignment() -> None:
    genres = read_item_genres(find_ml100k().with_name("ml-100k.item"))
    assert len(genres.item_ids) == 1682
    assert 18 <= len(genres.names) <= 19
    assert genres.multi_hot.any(axis=1).all()  # every movie has at least one genre
    # Interactions may hold int ids, in any order, and items the file lacks.
    matrix, missing = align_genres(np.array([2, 1, 99999]), genres)
    assert matrix.shape == (4, len(genres.names))
    assert missing == 1
    assert not matrix[0].any() and not matrix[3].any()  # padding, and the unknown item
    assert np.array_equal(matrix[2], genres.multi_hot[0])  # item 2 has raw id 1 (Toy Story)
    assert matrix[2, genres.names.index("Animation")] == 1.0


def test_datamodule_aligns_genres_with_remapped_items(tmp_path: Path) -> None:
    log = _write(tmp_path, "log.txt", "".join(f"1 {i}\n2 {i}\n" for i in ("30", "10", "20")))
    items = _write(tmp_path, "movies.csv", "movieId,title,genres\n10,A,Drama\n30,C,Comedy|War\n")
    data = SequenceDataModule("tiny", str(log), "sasrec", item_features=str(items), cache_dir=None)
    matrix = data.genre_matrix("task.genre")
    assert data.genre_names == ["Comedy", "Drama", "War"]
    assert data.interactions is not None
    raw = data.interactions.item_ids.astype(str).tolist()
    by_raw = dict(zip(raw, matrix[1:].tolist(), strict=True))
    assert by_raw == {"10": [0, 1, 0], "20": [0, 0, 0], "30": [1, 0, 1]}  # 20: not in file
    assert not matrix[0].any()
