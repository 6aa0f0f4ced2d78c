import pandas as pd
import pytest

from rnnrec.data.preprocess import preprocess


def frame(rows: list[tuple], rating: bool = True) -> pd.DataFrame:
    columns = ["user", "item", "timestamp", "rating"][: len(rows[0])]
    data = pd.DataFrame(rows, columns=columns)
    return data if rating else data.drop(columns="rating", errors="ignore")


def test_sort_is_by_user_then_time_and_ties_keep_file_order():
    data = preprocess(frame([(7, "b", 5), (3, "a", 9), (7, "c", 1), (7, "a", 5), (3, "b", 2)]))
    assert data.user.tolist() == [1, 1, 2, 2, 2]  # raw 3 -> 1, raw 7 -> 2
    raw_items = data.item_ids[data.item - 1].tolist()
    assert raw_items == ["b", "a", "c", "b", "a"]  # user 7: t=1, then the t=5 tie in file order
    assert data.user_ids.tolist() == [3, 7]


def test_ids_start_at_one_and_raw_zero_is_a_real_id():
    data = preprocess(frame([(0, 0, 1), (0, 5, 2), (1, 0, 3)]))
    assert data.item.min() == 1 and data.user.min() == 1
    assert data.item_ids.tolist() == [0, 5]
    assert data.num_items == 2 and data.num_users == 2


def test_rating_threshold():
    rows = [(1, 1, 1, 5.0), (1, 2, 2, 3.0), (2, 1, 3, 4.0)]
    data = preprocess(frame(rows), rating_threshold=4.0)
    assert len(data) == 2
    assert data.rating.tolist() == [5.0, 4.0]


def test_rating_threshold_without_ratings_names_the_setting():
    with pytest.raises(ValueError, match="data.preprocessing.rating_threshold"):
        preprocess(frame([(1, 1, 1)], rating=False), rating_threshold=4.0)


@pytest.mark.parametrize(("policy", "kept_times"), [("first", [1, 2]), ("last", [2, 3])])
def test_duplicates_keep_first_or_last(policy, kept_times):
    rows = [(1, "x", 3), (1, "x", 1), (1, "y", 2)]  # the file order is not the time order
    data = preprocess(frame(rows), duplicates=policy)
    assert data.timestamp.tolist() == kept_times
    assert len(preprocess(frame(rows), duplicates="keep_all")) == 3


def test_k_core_filtering_repeats_until_stable():
    # Item c has 2 interactions; dropping it leaves user 2 with 1 (b), dropping user 2 leaves
    # item b with 2, and dropping b leaves users 1 and 3 with two a's each.
    rows = [(1, "a", 1), (1, "b", 2), (2, "b", 1), (2, "c", 2), (3, "a", 1), (3, "b", 2)]
    rows += [(3, "c", 3), (1, "a", 3), (3, "a", 4)]
    data = preprocess(frame(rows), min_user_interactions=2, min_item_interactions=3)
    users = data.user_ids[data.user - 1]
    items = data.item_ids[data.item - 1]
    assert users.tolist() == [1, 1, 3, 3]
    assert items.tolist() == ["a", "a", "a", "a"]


def test_nothing_left_is_a_clear_error():
    with pytest.raises(ValueError, match="no interactions left"):
        preprocess(frame([(1, 1, 1)]), min_user_interactions=5)
