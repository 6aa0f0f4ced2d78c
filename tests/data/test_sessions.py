"""Tests for rnnrec.data.sessions: session readers, GRU4Rec filtering and the time split."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from rnnrec.data.readers import DataFormatError
from rnnrec.data.session_datamodule import SessionDataModule
from rnnrec.data.sessions import (
    DAY,
    SessionPart,
    filter_sessions,
    load_sessions,
    read_sessions,
    split_by_days,
)
from rnnrec.data.split import LeakageError

CONF = Path(__file__).resolve().parents[2] / "conf" / "data"


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def write_tsv(path: Path, rows: list[tuple[int, int, float]]) -> Path:
    lines = ["SessionId\tItemId\tTime", *(f"{s}\t{i}\t{t}" for s, i, t in rows)]
    return _write(path, "\n".join(lines) + "\n")


def frame(rows: Sequence[tuple[float, ...]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["session", "item", "time"]).astype(
        {"session": np.int64, "item": np.int64, "time": np.float64}
    )


def sessions_of(part: SessionPart) -> list[list[int]]:
    return [
        part.item[a:b].tolist()
        for a, b in zip(part.session_ptr[:-1], part.session_ptr[1:], strict=True)
    ]


# --------------------------------------------------------------------------- readers


def test_session_tsv_reads_columns_in_file_order(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "clicks.txt", [(3, 214716935, 1396437466.94), (1, 7, 12.0)])
    events = read_sessions(path, "session_tsv")
    assert list(events.columns) == ["session", "item", "time"]
    assert events.dtypes.to_dict() == {"session": np.int64, "item": np.int64, "time": np.float64}
    assert events["session"].tolist() == [3, 1]
    assert events["item"].tolist() == [214716935, 7]
    assert events["time"].tolist() == [1396437466.94, 12.0]


def test_session_csv_diginetica_dates_become_epoch_seconds(tmp_path: Path) -> None:
    text = (
        "sessionId;userId;itemId;timeframe;eventdate\n"
        "1;NA;81766;526309;2016-05-09\n"
        "1;NA;31331;1031018;2016-05-09\n"
        "\n"  # a blank line is skipped
        "2;5;32118;243569;2016-05-10\n"
    )
    path = _write(tmp_path / "train-item-views.csv", text)
    events = read_sessions(
        path, "session_csv", session_col="sessionId", item_col="itemId", time_col="eventdate",
        sep=";",
    )  # fmt: skip
    assert events["session"].tolist() == [1, 1, 2]
    assert events["item"].tolist() == [81766, 31331, 32118]
    may_9 = pd.Timestamp("2016-05-09", tz="UTC").timestamp()
    assert events["time"].tolist() == [may_9, may_9, may_9 + DAY]


def test_iso_times_with_zone_are_utc_seconds(tmp_path: Path) -> None:
    text = "SessionId,ItemId,Time\n1,214536502,2014-04-07T10:51:09.277Z\n"
    events = read_sessions(_write(tmp_path / "raw.csv", text), "session_csv")
    assert events["time"].tolist() == [pytest.approx(1396867869.277)]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("", ["empty"]),
        ("SessionId\tItemId\tTime\n", ["no events"]),
        ("SessionId\tItem\tTime\n1\t2\t3\n", ["'ItemId'", "data.item_col", "Item"]),
        ("SessionId\tItemId\tTime\n1\t2\t3\nx1\t2\t4\n", ["line 3", "'SessionId'", "'x1'"]),
        ("SessionId\tItemId\tTime\n1\t2.5\t3\n", ["line 2", "'ItemId'", "integers"]),
        ("SessionId\tItemId\tTime\n1\t\t3\n", ["line 2", "'ItemId'", "empty"]),
        ("SessionId\tItemId\tTime\n1\t2\t3\n1\t2\tlater\n", ["line 3", "'Time'", "'later'"]),
        (
            "SessionId\tItemId\tTime\n1\t2\t2016-05-09\n1\t2\tsoon\n",
            ["line 3", "'Time'", "not a date", "'soon'"],
        ),
        ("SessionId\tItemId\tTime\n1\t2\t3\n1\t2\t3\t4\n", ["line 3", "saw 4"]),
        ("SessionId\tItemId\tTime\n1\t2\t3\t4\n", ["line 2", "more fields"]),
    ],
)
def test_bad_files_name_the_file_and_column(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = _write(tmp_path / "bad.txt", text)
    with pytest.raises(DataFormatError) as info:
        read_sessions(path, "session_tsv")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_wrong_separator_and_format_are_explained(tmp_path: Path) -> None:
    path = _write(tmp_path / "views.csv", "sessionId;itemId;eventdate\n1;2;2016-05-09\n")
    with pytest.raises(DataFormatError, match="data.sep"):
        read_sessions(path, "session_csv", "sessionId", "itemId", "eventdate")
    with pytest.raises(DataFormatError, match="data.format"):
        read_sessions(path, "csv")
    with pytest.raises(FileNotFoundError):
        read_sessions(tmp_path / "missing.txt")


# --------------------------------------------------------------------------- filtering


def test_events_sorted_by_time_within_sessions_ties_in_file_order() -> None:
    events = frame([(2, 20, 5.0), (1, 11, 3.0), (2, 21, 1.0), (1, 10, 3.0), (2, 22, 5.0)])
    out = filter_sessions(events, min_session_length=1, min_item_support=0)
    assert out["session"].tolist() == [1, 1, 2, 2, 2]
    assert out["item"].tolist() == [11, 10, 21, 20, 22]  # 11 before 10: file order on a tie


def test_collapse_repeats_keeps_one_of_consecutive_clicks() -> None:
    events = frame([(1, 5, 0), (1, 5, 1), (1, 6, 2), (1, 5, 3), (2, 5, 4), (1, 5, 5)])
    kept = filter_sessions(events, collapse_repeats=True, min_session_length=1, min_item_support=0)
    assert kept["item"].tolist() == [5, 6, 5, 5]  # session 1: 5 6 5; session 2: 5
    assert kept["session"].tolist() == [1, 1, 1, 2]
    same = filter_sessions(events, min_session_length=1, min_item_support=0)
    assert len(same) == len(events)


def test_filter_steps_in_gru4rec_order(caplog: pytest.LogCaptureFixture) -> None:
    rows = [
        (1, 1, 0), (1, 1, 1), (1, 2, 2),  # 1 1 2: collapses to 1 2
        (2, 1, 3),  # one event: dropped in the first session pass
        (3, 1, 4), (3, 9, 5),  # item 9 is rare: session 3 falls to one event, dropped
        (4, 2, 6), (4, 1, 7), (4, 2, 8),
        (5, 2, 9), (5, 1, 10),
    ]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="rnnrec.data.sessions"):
        kept = filter_sessions(
            frame(rows), collapse_repeats=True, min_session_length=2, min_item_support=3
        )
    assert kept.groupby("session")["item"].apply(list).to_dict() == {
        1: [1, 2],
        4: [2, 1, 2],
        5: [2, 1],
    }
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5
    # read 11 events in 5 sessions; collapse drops one; session 2 goes; item 9 goes; session 3.
    expected = [(11, 5, 3), (10, 5, 3), (9, 4, 3), (8, 4, 2), (7, 3, 2)]
    for line, (events, sessions, items) in zip(lines, expected, strict=True):
        assert f"{events} events" in line
        assert f"{sessions} sessions" in line
        assert f"{items} items" in line


def test_item_support_counts_after_the_first_session_filter() -> None:
    # Item 7 has 3 events, but one is in a one-event session that goes first.
    rows = [(1, 7, 0), (2, 7, 1), (2, 8, 2), (3, 7, 3), (3, 8, 4), (4, 8, 5), (4, 8, 6)]
    kept = filter_sessions(frame(rows), min_session_length=2, min_item_support=3)
    assert kept["item"].tolist() == [8, 8]
    assert kept["session"].tolist() == [4, 4]


def test_bad_filter_settings_are_named() -> None:
    with pytest.raises(ValueError, match="min_session_length"):
        filter_sessions(frame([(1, 1, 0)]), min_session_length=0)
    with pytest.raises(ValueError, match="data.preprocessing"):
        load_sessions("unused.txt", preprocessing={"min_support": 3})


# --------------------------------------------------------------------------- splitting

# Hand-made log over four days, test_days = val_days = 1. Session: (raw item, time) events.
HAND_MADE: dict[int, list[tuple[int, float]]] = {
    1: [(10, 0), (20, 10)],  # train
    2: [(20, DAY), (30, DAY + 10)],  # train: ends before the validation cut (DAY + 600)
    7: [(10, DAY + 500), (30, DAY + 700)],  # straddles the validation cut: dropped
    6: [(10, 2 * DAY + 500), (30, 2 * DAY + 600)],  # validation; the last training event
    3: [(10, 2 * DAY + 900), (20, 2 * DAY + 1100)],  # straddles the test cut: dropped
    4: [(10, 2 * DAY + 2000), (90, 2 * DAY + 2050), (20, 2 * DAY + 2100)],  # test, 90 unseen
    5: [(30, 3 * DAY + 900), (90, 3 * DAY + 1000)],  # test; one event once 90 goes: dropped
}


def hand_made() -> pd.DataFrame:
    return frame([(s, i, t) for s, events in HAND_MADE.items() for i, t in events])


def test_split_by_days_on_a_hand_made_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rnnrec.data.sessions"):
        split = split_by_days(hand_made(), test_days=1, val_days=1)
    assert split.train.session_ids.tolist() == [1, 2]
    assert split.val.session_ids.tolist() == [6]
    assert split.test.session_ids.tolist() == [4]
    assert split.item_ids.tolist() == [10, 20, 30]  # training items, remapped to 1, 2, 3
    assert sessions_of(split.train) == [[1, 2], [2, 3]]
    assert sessions_of(split.val) == [[1, 3]]
    assert sessions_of(split.test) == [[1, 2]]  # item 90 removed
    assert split.test.session_ptr.tolist() == [0, 2]
    log = " | ".join(r.getMessage() for r in caplog.records)
    assert "1 straddling the cut dropped" in log
    assert "test: 2 events of items unseen in training removed; 1 sessions" in log


def test_split_guarantee_on_random_sessions() -> None:
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 6 * DAY, size=400)
    lengths = rng.integers(2, 6, size=400)
    session = np.repeat(np.arange(400), lengths)
    gaps = rng.uniform(0, 3600, size=len(session))
    time = starts[session] + gaps  # unordered within a session: the reader must sort
    events = pd.DataFrame({"session": session, "item": rng.integers(1, 4, len(session))})
    events["time"] = time
    split = split_by_days(events, test_days=1.5, val_days=1)
    train, val, test = split.train, split.val, split.test
    assert train.end_time.max() < val.start_time.min()
    assert val.end_time.max() < test.start_time.min()
    assert train.end_time.max() < test.start_time.min()
    cut = time.max() - 1.5 * DAY
    assert train.end_time.max() <= cut < test.start_time.min()
    for part in (train, val, test):
        assert np.all(np.diff(part.start_time) >= 0)  # ordered by start time
        assert np.all(part.lengths >= 2)
        in_order = np.diff(part.time) >= 0
        in_order[part.session_ptr[1:-1] - 1] = True  # across sessions anything goes
        assert in_order.all()
    ids = np.concatenate([train.session_ids, val.session_ids, test.session_ids])
    assert len(np.unique(ids)) == len(ids)
    # Only straddlers are missing: each crossed one of the two cuts.
    spans = pd.Series(time).groupby(session).agg(["min", "max"])
    val_cut = float(spans["max"][spans["max"] <= cut].max()) - DAY
    crossing = ((spans["min"] <= cut) & (spans["max"] > cut)) | (
        (spans["min"] <= val_cut) & (spans["max"] > val_cut)
    )
    assert sorted(spans.index[~crossing.to_numpy()]) == sorted(ids.tolist())


def test_split_rejects_bad_days() -> None:
    with pytest.raises(ValueError, match="data.split.test_days"):
        split_by_days(hand_made(), test_days=0)
    with pytest.raises(ValueError, match="data.split.test_days"):
        split_by_days(hand_made(), test_days=10)  # nothing is left for training


def test_test_file_that_overlaps_training_raises_leakage(tmp_path: Path) -> None:
    train = write_tsv(tmp_path / "train.txt", [(1, 1, 0), (1, 2, 100), (2, 1, 10), (2, 2, 1000)])
    test = write_tsv(tmp_path / "test.txt", [(9, 1, 999), (9, 2, 2000)])
    settings = {"preprocessing": {"min_item_support": 0}, "test_path": test}
    with pytest.raises(LeakageError) as info:
        load_sessions(train, **settings)  # type: ignore[arg-type]
    assert str(train) in str(info.value) and str(test) in str(info.value)
    write_tsv(test, [(9, 1, 1001), (9, 2, 2000)])
    split = load_sessions(
        train,
        split={"val_days": 500 / DAY},
        **settings,  # type: ignore[arg-type]
    )
    assert split.test.session_ids.tolist() == [9]


def test_test_file_shares_item_support_and_keeps_its_own_sessions(tmp_path: Path) -> None:
    # Item 3 has 3 training and 2 test events: it reaches min_item_support=5 only with both.
    train_rows = [(1, 1, 0), (1, 3, 1), (2, 3, 2), (2, 1, 3), (3, 1, 50), (3, 3, 60), (4, 1, 9e4)]
    train_rows.append((4, 3, 9e4 + 1))
    test_rows = [(1, 3, 2e5), (1, 1, 2e5 + 1), (1, 3, 2e5 + 2), (5, 1, 3e5), (5, 7, 3e5 + 1)]
    train = write_tsv(tmp_path / "train.txt", train_rows)
    test = write_tsv(tmp_path / "test.txt", test_rows)
    split = load_sessions(
        train, test_path=test, preprocessing={"min_item_support": 5}, split={"val_days": 0.5}
    )
    assert split.item_ids.tolist() == [1, 3]
    assert sessions_of(split.val) == [[1, 2]]
    # Session 1 of the test file is not session 1 of the training file; 7 is too rare.
    assert split.test.session_ids.tolist() == [1]
    assert sessions_of(split.test) == [[2, 1, 2]]


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", ["sessions", "yoochoose_sample"])
def test_configs_match_the_datamodule(name: str) -> None:
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert cfg._target_ == "rnnrec.data.session_datamodule.SessionDataModule"
    parameters = inspect.signature(SessionDataModule).parameters
    assert set(cfg) - {"_target_"} <= set(parameters)
    assert set(cfg.preprocessing) == {"collapse_repeats", "min_session_length", "min_item_support"}
    assert set(cfg.split) <= {"test_days", "val_days"}


# --------------------------------------------------------------------------- real sample


def _sample() -> Path:
    env = os.environ.get("RNNREC_SHARED_DIR")
    shared = Path(env) if env else Path(__file__).resolve().parents[3] / "shared"
    folder = shared / "data" / "yoochoose-rsc15-100k-sample"
    if not (folder / "yoochoose-clicks-100k_test.txt").is_file():
        pytest.skip(f"YooChoose sample not found in {folder}")
    return folder


def test_yoochoose_sample_matches_its_readme() -> None:
    folder = _sample()
    train = read_sessions(folder / "yoochoose-clicks-100k_train_full.txt")
    test = read_sessions(folder / "yoochoose-clicks-100k_test.txt")
    # Counts from the README (sessions, items, events); with a support of 1 filtering changes
    # nothing, since the files already hold sessions of >= 2 events.
    for events, counts in ((train, (17_794, 2_933, 70_278)), (test, (3_416, 1_771, 13_568))):
        kept = filter_sessions(events, min_session_length=2, min_item_support=1)
        assert (kept["session"].nunique(), kept["item"].nunique(), len(kept)) == counts
    assert train["time"].max() < test.groupby("session")["time"].min().min()
    # With the config's support of 5 (over both files), 125 of the 2,933 items go: session-rec
    # counted support on a larger log, so the sample keeps items it saw fewer than 5 times.
    both = pd.concat([train.assign(source=0), test.assign(source=1)], ignore_index=True)
    assert filter_sessions(both)["item"].nunique() == 2_808
