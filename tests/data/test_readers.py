"""Tests for rnnrec.data.readers: one small real file per format, plus the error messages."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnrec.data.readers import FORMATS, DataFormatError, find_ml100k, read_interactions


def _write(tmp_path: Path, name: str, text: str) -> Path:
    # write_bytes: the text's own line endings ("\r\n" included) reach the file unchanged.
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def _fails(path: Path, fragment: str, exc: type[Exception] = DataFormatError, **kwargs) -> str:
    """Read ``path`` expecting an error whose message names the file and ``fragment``."""
    with pytest.raises(exc) as info:
        read_interactions(path, **kwargs)
    msg = str(info.value)
    assert str(path) in msg
    assert fragment in msg
    return msg


def _shared_data() -> Path:
    # RNNREC_SHARED_DIR points at the "shared" folder (the one holding data/).
    env = os.environ.get("RNNREC_SHARED_DIR")
    shared = Path(env) if env else Path(__file__).resolve().parents[3] / "shared"
    return shared / "data"


# --------------------------------------------------------------------------- round trips


def test_ml100k(tmp_path: Path) -> None:
    text = (
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n"
        "22\t377\t1\t878887116\n244\t51\t2\t880606923\n"
    )
    path = _write(tmp_path, "u.data", text)
    df = read_interactions(path, "ml100k")
    assert list(df.columns) == ["user", "item", "timestamp", "rating"]
    assert df["user"].tolist() == [196, 186, 22, 244]  # file order, not sorted
    assert df["item"].tolist() == [242, 302, 377, 51]
    assert df["timestamp"].tolist() == [881250949, 891717742, 878887116, 880606923]
    assert df["rating"].tolist() == [3.0, 3.0, 1.0, 2.0]
    assert df.dtypes.to_dict() == {
        "user": np.int64,
        "item": np.int64,
        "timestamp": np.int64,
        "rating": np.float64,
    }
    assert isinstance(df.index, pd.RangeIndex)


def test_ml1m(tmp_path: Path) -> None:
    text = "1::1193::5::978300760\n1::661::3::978302109\n2::1357::4.5::978298709\n"
    df = read_interactions(_write(tmp_path, "ratings.dat", text), "ml1m")
    assert df["user"].tolist() == [1, 1, 2]
    assert df["item"].tolist() == [1193, 661, 1357]
    assert df["rating"].tolist() == [5.0, 3.0, 4.5]
    assert df["timestamp"].tolist() == [978300760, 978302109, 978298709]
    assert df["timestamp"].dtype == np.int64


def test_ml_csv_crlf(tmp_path: Path) -> None:
    text = "userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,3,3.5,964981247\r\n"
    df = read_interactions(_write(tmp_path, "ratings.csv", text), "ml_csv")
    assert df.to_dict("list") == {
        "user": [1, 1],
        "item": [1, 3],
        "timestamp": [964982703, 964981247],
        "rating": [4.0, 3.5],
    }
    assert df["timestamp"].dtype == np.int64


def test_recbole_defaults(tmp_path: Path) -> None:
    text = (
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "196\t242\t3\t881250949\n186\t302\t3\t891717742.5\n22\t377\t1\t878887116\n"
    )
    df = read_interactions(_write(tmp_path, "ml.inter", text), "recbole")
    assert df["user"].tolist() == [196, 186, 22]
    assert df["rating"].tolist() == [3.0, 3.0, 1.0]
    assert df["timestamp"].dtype == np.float64
    assert df["timestamp"].tolist() == [881250949, 891717742.5, 878887116]


def test_recbole_named_fields_without_rating(tmp_path: Path) -> None:
    text = "session:token\tproduct:token\tts:float\tqty:float\ns1\tA\t10\t2\ns1\tB\t11\t1\n"
    path = _write(tmp_path, "x.inter", text)
    df = read_interactions(path, "recbole", user_col="session", item_col="product", time_col="ts")
    assert list(df.columns) == ["user", "item", "timestamp"]
    assert df["user"].tolist() == ["s1", "s1"]
    assert df["item"].tolist() == ["A", "B"]
    df = read_interactions(
        path, "recbole", user_col="session", item_col="product", time_col=None, rating_col="qty"
    )
    assert df["timestamp"].tolist() == [0, 1]
    assert df["rating"].tolist() == [2.0, 1.0]


def test_sasrec(tmp_path: Path) -> None:
    path = _write(tmp_path, "seq.txt", "1 1\n1 2\n2 3\n1 4\n2 1\n")
    df = read_interactions(path, "sasrec")
    assert list(df.columns) == ["user", "item", "timestamp"]
    assert df["user"].tolist() == [1, 1, 2, 1, 2]
    assert df["item"].tolist() == [1, 2, 3, 4, 1]
    assert df["timestamp"].tolist() == [0, 1, 2, 3, 4]
    assert df["timestamp"].dtype == np.int64
    # A stable sort by (user, timestamp) keeps each user's file order.
    ordered = df.sort_values(["user", "timestamp"], kind="stable")
    assert ordered["item"].tolist() == [1, 2, 4, 3, 1]


def test_user_sequence(tmp_path: Path) -> None:
    path = _write(tmp_path, "Beauty.txt", "1 5 6 7\n2 8\n\n3 9 10\n")  # a blank line is skipped
    df = read_interactions(path, "user_sequence")
    assert df["user"].tolist() == [1, 1, 1, 2, 3, 3]
    assert df["item"].tolist() == [5, 6, 7, 8, 9, 10]
    assert df["timestamp"].tolist() == list(range(6))
    assert df.dtypes.to_dict() == {"user": np.int64, "item": np.int64, "timestamp": np.int64}


def test_user_sequence_string_ids_crlf(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.txt", "u1 a b\r\nu2 c\r\n")
    df = read_interactions(path, "user_sequence")
    assert df["user"].tolist() == ["u1", "u1", "u2"]
    assert df["item"].tolist() == ["a", "b", "c"]


def test_generic_csv_columns_and_sep(tmp_path: Path) -> None:
    text = "uid;iid;when;stars;extra\n3;10;5;1.5;x\n1;11;4;2;y\n2;12;6;3;z\n"
    path = _write(tmp_path, "log.csv", text)
    df = read_interactions(
        path, "csv", user_col="uid", item_col="iid", time_col="when", rating_col="stars", sep=";"
    )
    assert df.to_dict("list") == {
        "user": [3, 1, 2],
        "item": [10, 11, 12],
        "timestamp": [5, 4, 6],
        "rating": [1.5, 2.0, 3.0],
    }
    # No rating_col: no rating column; time_col None: timestamp is the row index.
    df = read_interactions(path, "csv", user_col="uid", item_col="iid", time_col=None, sep=";")
    assert list(df.columns) == ["user", "item", "timestamp"]
    assert df["timestamp"].tolist() == [0, 1, 2]


def test_generic_tsv(tmp_path: Path) -> None:
    text = "SessionId\tItemId\tTime\n1\t214536502\t1396839069.277\n1\t214536500\t1396839249.868\n"
    path = _write(tmp_path, "rsc15_test.tsv", text)
    df = read_interactions(path, "tsv", user_col="SessionId", item_col="ItemId", time_col="Time")
    assert df["item"].tolist() == [214536502, 214536500]
    assert df["timestamp"].dtype == np.float64
    assert df["timestamp"].tolist() == [1396839069.277, 1396839249.868]


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    times = pd.to_datetime(["1970-01-01 00:00:10", "1970-01-01 00:01:00", "1970-01-01 00:00:00"])
    src = pd.DataFrame({"user": ["007", "8", "9"], "item": [5, 0, 7], "timestamp": times})
    src["score"] = [1.0, 2.0, 3.0]
    src.to_parquet(path)
    df = read_interactions(path, rating_col="score")
    assert df["user"].tolist() == ["007", "8", "9"]  # a leading zero keeps ids as strings
    assert df["item"].tolist() == [5, 0, 7]
    assert df["item"].dtype == np.int64
    assert df["timestamp"].tolist() == [10, 60, 0]  # datetimes become epoch seconds
    assert df["timestamp"].dtype == np.int64
    assert df["rating"].tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (["0", "1", "-3"], [0, 1, -3]),  # 0 is a valid id, negatives are integers
        (["007", "1", "2"], ["007", "1", "2"]),  # leading zero: keep all as strings
        (["a1", "0", "b"], ["a1", "0", "b"]),
        (["-0", "1", "2"], ["-0", "1", "2"]),
        (["12345678901234567890", "1", "2"], ["12345678901234567890", "1", "2"]),  # > int64
    ],
)
def test_id_types(tmp_path: Path, ids: list[str], expected: list) -> None:
    lines = "".join(f"{u}\t{i}\t1\t{t}\n" for t, (u, i) in enumerate(zip(ids, ids, strict=True)))
    df = read_interactions(_write(tmp_path, "u.data", lines))
    assert df["user"].tolist() == expected
    assert df["item"].tolist() == expected
    if isinstance(expected[0], int):
        assert df["user"].dtype == np.int64
    else:
        assert pd.api.types.is_string_dtype(df["user"])


@pytest.mark.parametrize(
    ("name", "text", "fmt_columns"),
    [
        ("u.data", "1\t2\t3\t4\n", ["user", "item", "timestamp", "rating"]),
        ("ratings.dat", "1::2::3::4\n", ["user", "item", "timestamp", "rating"]),
        ("ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n", None),
        ("ml-100k.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n", None),
        ("Log.TSV", "user\titem\ttimestamp\n1\t2\t3\n", None),
        ("log.csv", "user,item,timestamp\n1,2,3\n", None),
    ],
)
def test_auto_detection(tmp_path: Path, name: str, text: str, fmt_columns: list | None) -> None:
    df = read_interactions(_write(tmp_path, name, text))
    assert df[["user", "item"]].iloc[0].tolist() == [1, 2]
    if fmt_columns:
        assert list(df.columns) == fmt_columns


def test_auto_unknown_name(tmp_path: Path) -> None:
    msg = _fails(_write(tmp_path, "LastFM.txt", "1 2 3\n"), "data.format")
    assert all(f in msg for f in FORMATS if f != "auto")


def test_unknown_format(tmp_path: Path) -> None:
    _fails(_write(tmp_path, "u.data", "1\t2\t3\t4\n"), "'movielens'", format="movielens")


def test_logs_file_format_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path, "u.data", "1\t2\t3\t4\n5\t6\t7\t8\n")
    with caplog.at_level(logging.INFO, logger="rnnrec.data.readers"):
        read_interactions(path)
    messages = [r.getMessage() for r in caplog.records]
    assert any(str(path) in m and "ml100k" in m and " 2 " in m for m in messages)


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    _fails(tmp_path / "nope" / "u.data", "not found", exc=FileNotFoundError)


@pytest.mark.parametrize(
    ("name", "text", "fmt"),
    [
        ("u.data", "", "ml100k"),
        ("u.data", "\n\n", "ml100k"),
        ("ratings.dat", "", "ml1m"),
        ("ratings.csv", "userId,movieId,rating,timestamp\r\n", "ml_csv"),
        ("x.inter", "", "recbole"),
        ("x.inter", "user_id:token\titem_id:token\ttimestamp:float\n", "recbole"),
        ("x.txt", "", "sasrec"),
        ("x.txt", "\n", "user_sequence"),
        ("x.csv", "user,item,timestamp\n", "csv"),
    ],
)
def test_no_interactions(tmp_path: Path, name: str, text: str, fmt: str) -> None:
    _fails(_write(tmp_path, name, text), "no interactions", format=fmt)


def test_empty_parquet(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    pd.DataFrame({"user": pd.Series([], dtype="int64"), "item": [], "timestamp": []}).to_parquet(
        path
    )
    _fails(path, "no interactions")


def test_missing_column_generic(tmp_path: Path) -> None:
    path = _write(tmp_path, "log.csv", "uid,item,timestamp\n1,2,3\n")
    msg = _fails(path, "'user'", user_col="user")
    assert "data.user_col" in msg
    assert "uid, item, timestamp" in msg


def test_missing_rating_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "log.tsv", "user\titem\ttimestamp\n1\t2\t3\n")
    assert "data.rating_col" in _fails(path, "'stars'", rating_col="stars")


def test_missing_column_recbole(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.inter", "user_id:token\titem_id:token\n1\t2\n")
    msg = _fails(path, "'timestamp'")
    assert "data.time_col" in msg
    assert "user_id, item_id" in msg
    # time_col=None falls back to file order.
    assert read_interactions(path, time_col=None)["timestamp"].tolist() == [0]


def test_missing_column_ml_csv(tmp_path: Path) -> None:
    path = _write(tmp_path, "ratings.csv", "userId,itemId,rating,timestamp\n1,2,3,4\n")
    msg = _fails(path, "'movieId'")
    assert "data.item_col" in msg
    assert "userId, itemId, rating, timestamp" in msg


def test_wrong_field_count(tmp_path: Path) -> None:
    path = _write(tmp_path, "u.data", "1\t2\t3\t4\n1\t2\t3\t4\n1\t2\t3\t4\t5\n")
    _fails(path, "line 3: expected 4 fields, found 5")
    path = _write(tmp_path, "u.data", "1\t2\t3\n1\t2\t3\n")
    _fails(path, "line 1: expected 4 fields, found 3")


def test_wrong_field_count_csv(tmp_path: Path) -> None:
    # Counting the header: the bad row is line 4.
    path = _write(tmp_path, "log.csv", "user,item,timestamp\n1,2,3\n4,5,6\n7,8,9,10\n")
    _fails(path, "line 4: expected 3 fields, found 4")
    # pandas would silently turn an extra first field into the index; it must fail instead.
    path = _write(tmp_path, "log.csv", "user,item,timestamp\n1,2,3,4\n5,6,7\n")
    _fails(path, "line 2")


def test_wrong_field_count_sasrec_and_ml1m(tmp_path: Path) -> None:
    _fails(_write(tmp_path, "a.txt", "1 2\n1 3\n1 4 5\n"), "line 3", format="sasrec")
    _fails(_write(tmp_path, "ratings.dat", "1::2::3::4\n1::2:9::3::4\n"), "line 2")
    _fails(_write(tmp_path, "ratings.dat", "1:2:3:4\n"), "line 1")


def test_user_sequence_lone_user(tmp_path: Path) -> None:
    _fails(_write(tmp_path, "s.txt", "1 2 3\n2\n"), "line 2", format="user_sequence")


def test_bad_timestamp(tmp_path: Path) -> None:
    text = "userId,movieId,rating,timestamp\r\n1,2,3,4\r\n1,3,3,soon\r\n1,4,3,5\r\n"
    path = _write(tmp_path, "ratings.csv", text)
    with pytest.raises(DataFormatError, match=r"line 3, column 'timestamp'.*'soon'"):
        read_interactions(path)


def test_bad_rating_after_blank_line(tmp_path: Path) -> None:
    # The blank line still counts, so the bad value is reported on line 4.
    path = _write(tmp_path, "u.data", "1\t2\t3\t4\n\n1\t2\t3\t4\n1\t2\tgood\t4\n")
    msg = _fails(path, "line 4, column 'rating (field 3)'")
    assert "'good'" in msg


def test_missing_trailing_field_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "log.csv", "user,item,timestamp\n1,2,3\n1,2\n")
    _fails(path, "line 3, column 'timestamp': empty or missing value")


@pytest.mark.parametrize("line", ["\t5\t1\t100", "5\t\t1\t100"])
def test_empty_id(tmp_path: Path, line: str) -> None:
    path = _write(tmp_path, "u.data", f"1\t2\t3\t4\n{line}\n")
    column = "user (field 1)" if line.startswith("\t") else "item (field 2)"
    with pytest.raises(DataFormatError, match=r"line 2, column") as info:
        read_interactions(path)
    assert column in str(info.value)
    assert str(path) in str(info.value)


def test_empty_id_csv(tmp_path: Path) -> None:
    path = _write(tmp_path, "log.csv", "user,item,timestamp\n1,2,3\n,5,6\n")
    _fails(path, "line 3, column 'user': empty")


# --------------------------------------------------------------------------- real data


@pytest.mark.skipif(importlib.util.find_spec("recbole") is None, reason="recbole not installed")
def test_real_ml100k() -> None:
    already_imported = "recbole" in sys.modules
    path = find_ml100k()
    assert path.name == "ml-100k.inter"
    assert already_imported or "recbole" not in sys.modules  # found without importing it
    df = read_interactions(path)
    assert len(df) == 100_000
    assert df["user"].nunique() == 943
    assert df["item"].nunique() == 1682
    assert df.dtypes.to_dict() == {
        "user": np.int64,
        "item": np.int64,
        "timestamp": np.int64,
        "rating": np.float64,
    }
    assert df.iloc[0].tolist() == [196, 242, 881250949, 3.0]


def test_find_ml100k_without_recbole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps recbole==1\.2\.1"):
        find_ml100k()


def test_real_lastfm() -> None:
    path = _shared_data() / "s3rec-lastfm" / "LastFM.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found (set RNNREC_SHARED_DIR to the folder holding data/)")
    df = read_interactions(path, "user_sequence")
    assert len(df) == 52_551
    assert df["user"].nunique() == 1_090
    assert df["user"].is_monotonic_increasing
    assert df["timestamp"].tolist() == list(range(len(df)))
