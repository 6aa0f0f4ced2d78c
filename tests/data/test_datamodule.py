import numpy as np
import pytest

from rnnrec.data import datamodule as datamodule_module
from rnnrec.data.datamodule import SequenceDataModule


def write_log(path, users=6, per_user=5):
    lines = ["user,item,ts"]
    for user in range(users):
        lines += [f"u{user},{(user + step) % 7},{step}" for step in range(per_user)]
    path.write_text("\n".join(lines) + "\n")
    return path


def module(path, cache_dir, **options):
    return SequenceDataModule(
        name="tiny",
        path=str(path),
        format="csv",
        time_col="ts",
        cache_dir=str(cache_dir),
        max_len=3,
        **options,
    )


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    path = write_log(tmp_path / "log.csv")
    first = module(path, tmp_path / "cache")
    first.load()
    assert len(list((tmp_path / "cache").glob("tiny-*.npz"))) == 1
    assert not list((tmp_path / "cache").glob("*.tmp"))

    def no_reading(*args, **kwargs):
        raise AssertionError("the file was read again")

    monkeypatch.setattr(datamodule_module.readers, "read_interactions", no_reading)
    second = module(path, tmp_path / "cache")
    second.load()
    assert second.fingerprint == first.fingerprint
    assert np.array_equal(second.interactions.item, first.interactions.item)
    assert second.interactions.user_ids.tolist() == first.interactions.user_ids.tolist()


def test_changed_file_or_settings_change_the_fingerprint(tmp_path):
    path = write_log(tmp_path / "log.csv")
    base = module(path, tmp_path / "cache")
    base.load()
    filtered = module(path, tmp_path / "cache", preprocessing={"min_item_interactions": 2})
    filtered.load()
    assert filtered.fingerprint != base.fingerprint
    write_log(path, users=7)
    changed = module(path, tmp_path / "cache")
    changed.load()
    assert changed.fingerprint != base.fingerprint
    assert changed.interactions.num_users == 7


def test_batches_cover_every_window_and_target(tmp_path):
    dm = module(write_log(tmp_path / "log.csv"), tmp_path / "cache", batch_size=4)
    dm.setup()
    windows = sum(len(batch["lengths"]) for batch in dm.train_dataloader())
    assert windows == len(dm.train_starts)
    tested = sum(len(batch["targets"]) for batch in dm.test_dataloader())
    assert tested == dm.interactions.num_users


def test_bad_split_name_is_named(tmp_path):
    dm = module(write_log(tmp_path / "log.csv"), tmp_path / "cache", split={"name": "random"})
    with pytest.raises(ValueError, match="data.split.name"):
        dm.load()
