import numpy as np
import torch

from rnnrec.data.sequences import (
    EvaluationTargets,
    TrainingWindows,
    padded,
    training_target_rows,
    training_windows,
)
from rnnrec.data.split import leave_one_out
from tests.data.test_split import interactions


def test_windows_are_laid_from_the_most_recent_end():
    # One user with 9 interactions: LOO leaves 7 for training, i.e. 6 targets.
    data = interactions([9])
    starts, lengths = training_windows(data, leave_one_out(data), max_len=4)
    assert starts.tolist() == [2, 0]
    assert lengths.tolist() == [4, 2]
    assert sorted(training_target_rows(starts, lengths).tolist()) == [1, 2, 3, 4, 5, 6]


def test_users_without_a_training_target_produce_no_window():
    data = interactions([3, 4, 2])  # training parts of 1, 2 and 1 interactions
    starts, lengths = training_windows(data, leave_one_out(data), max_len=10)
    assert starts.tolist() == [3] and lengths.tolist() == [1]


def test_padded_gathers_right_padded_rows():
    values = torch.arange(10, 20)
    out = padded(values, torch.tensor([0, 7]), torch.tensor([2, 3]))
    assert out.tolist() == [[10, 11, 0], [17, 18, 19]]


def test_training_batch_targets_are_inputs_shifted_by_one():
    data = interactions([9, 6])
    items = torch.from_numpy(data.item)
    starts, lengths = training_windows(data, leave_one_out(data), max_len=4)
    users = torch.from_numpy(data.user)
    batch = TrainingWindows(items, users, starts, lengths)[list(range(len(starts)))]
    assert batch["users"].tolist() == data.user[starts].tolist()
    for row in range(len(starts)):
        n = int(batch["lengths"][row])
        window = items[starts[row] : starts[row] + n + 1]
        assert batch["inputs"][row, :n].tolist() == window[:-1].tolist()
        assert batch["targets"][row, :n].tolist() == window[1:].tolist()
        assert (batch["targets"][row, n:] == 0).all()


def test_evaluation_batch_input_and_seen_items():
    data = interactions([6, 3])
    split = leave_one_out(data)
    items = torch.from_numpy(data.item)
    dataset = EvaluationTargets(items, data.user, data.user_ptr, split.test_rows, max_len=3)
    batch = dataset[[0, 1]]
    # User 1: target row 5, input rows 2..4 (max_len 3), seen rows 0..4.
    assert batch["targets"].tolist() == [items[5].item(), items[8].item()]
    assert batch["inputs"][0].tolist() == items[2:5].tolist()
    assert batch["lengths"].tolist() == [3, 2]
    seen_first = batch["seen_items"][batch["seen_example"] == 0]
    assert seen_first.tolist() == items[0:5].tolist()
    assert np.array_equal(batch["seen_items"][batch["seen_example"] == 1], items[6:8])


def test_batches_carry_the_rating_of_each_target_only_when_given():
    data = interactions([6, 4])
    split = leave_one_out(data)
    items, users = torch.from_numpy(data.item), torch.from_numpy(data.user)
    ratings = torch.arange(len(data.item), dtype=torch.float32) + 1.0  # row r has rating r + 1
    starts, lengths = training_windows(data, split, max_len=3)
    index = list(range(len(starts)))
    assert "ratings" not in TrainingWindows(items, users, starts, lengths)[index]
    batch = TrainingWindows(items, users, starts, lengths, ratings)[index]
    for row in range(len(starts)):
        n = int(batch["lengths"][row])
        expected = ratings[starts[row] + 1 : starts[row] + n + 1]
        assert batch["ratings"][row, :n].tolist() == expected.tolist()
        assert (batch["ratings"][row, n:] == 0).all()

    rows = split.test_rows
    plain = EvaluationTargets(items, data.user, data.user_ptr, rows, max_len=3)
    assert "target_ratings" not in plain[[0, 1]]
    rated = EvaluationTargets(items, data.user, data.user_ptr, rows, max_len=3, ratings=ratings)
    assert rated[[0, 1]]["target_ratings"].tolist() == ratings[rows].tolist()
