import numpy as np
import pytest

from rnnrec.data.interactions import Interactions
from rnnrec.data.sequences import training_target_rows, training_windows
from rnnrec.data.split import LeakageError, Split, check_no_leakage, leave_one_out, temporal


def interactions(lengths: list[int], times: list[float] | None = None) -> Interactions:
    user = np.repeat(np.arange(1, len(lengths) + 1), lengths)
    rows = len(user)
    return Interactions(
        user=user,
        item=np.arange(rows) % 7 + 1,
        timestamp=np.asarray(times if times is not None else np.arange(rows), dtype=float),
        rating=None,
        user_ids=np.arange(len(lengths)),
        item_ids=np.arange(7),
    )


def test_leave_one_out_rows():
    # Users with 4, 1, 2 and 3 interactions: rows 0-3, 4, 5-6, 7-9.
    split = leave_one_out(interactions([4, 1, 2, 3]))
    assert split.test_rows.tolist() == [3, 6, 9]
    assert split.val_rows.tolist() == [2, 8]
    assert split.train_end.tolist() == [0, 2, 5, 6, 8]


def test_temporal_split_inputs_stop_at_the_cut_off():
    times = [1, 2, 6, 7, 9, 3, 8, 4, 5]  # users: rows 0-4, 5-6, 7-8
    data = interactions([5, 2, 2], times)
    split = temporal(data, val_cutoff=6, test_cutoff=8)
    assert split.train_end.tolist() == [0, 2, 6, 9]
    assert split.val_rows.tolist() == [2]  # user 2's t=8 is at the test cut-off, not before
    assert split.test_rows.tolist() == [4, 6]
    for row in split.test_rows:
        first = data.user_ptr[data.user[row]]
        assert (data.timestamp[first:row] < 8).all()


def test_temporal_cut_offs_must_be_ordered():
    with pytest.raises(ValueError, match="val_cutoff"):
        temporal(interactions([3]), val_cutoff=5, test_cutoff=2)


def test_no_training_target_is_an_evaluation_target():
    data = interactions([30, 3, 12, 2])
    split = leave_one_out(data)
    starts, lengths = training_windows(data, split, max_len=5)
    check_no_leakage(training_target_rows(starts, lengths), split)


def test_leakage_check_fails_on_a_leaky_split():
    data = interactions([6])
    leaky = Split(train_end=np.array([0, 6]), val_rows=np.array([4]), test_rows=np.array([5]))
    starts, lengths = training_windows(data, leaky, max_len=3)
    with pytest.raises(LeakageError, match="validation targets"):
        check_no_leakage(training_target_rows(starts, lengths), leaky)
