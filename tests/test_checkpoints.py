"""Resumable checkpoints: finding one, refusing the wrong one, random states that round-trip."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnrec import checkpoints
from rnnrec.losses.candidates import BatchNegatives
from rnnrec.models.ranking_module import FINGERPRINT_KEY

MODEL_CONFIG = {
    "_target_": "rnnrec.models.sequential.SequentialRecommender",
    "encoder.hidden_size": "8",
}


def write_checkpoint(path: Path, **entry: object) -> Path:
    """A checkpoint as ResumeState writes it, with ``entry`` overriding its rnnrec fields."""
    fields = {
        "format_version": checkpoints.FORMAT_VERSION,
        "rnnrec_version": "0.0-test",
        "model_config": dict(MODEL_CONFIG),
        "mlflow_run_id": "abc123",
        "mlflow_tracking_uri": "sqlite:///elsewhere.db",
        "random_states": [],
        **entry,
    }
    torch.save(
        {
            "state_dict": {"weight": torch.zeros(2)},
            FINGERPRINT_KEY: "data-a",
            checkpoints.CHECKPOINT_KEY: fields,
        },
        path,
    )
    return path


def test_a_matching_checkpoint_gives_its_mlflow_run(tmp_path):
    path = write_checkpoint(tmp_path / "last.ckpt")
    point = checkpoints.read_resume_point(path, MODEL_CONFIG, "data-a")
    assert point == checkpoints.ResumePoint(path, "abc123", "sqlite:///elsewhere.db")


def test_another_model_config_is_refused_naming_the_file_and_the_setting(tmp_path):
    path = write_checkpoint(tmp_path / "last.ckpt")
    now = {**MODEL_CONFIG, "encoder.hidden_size": "16", "encoder.cell": "lstm"}
    with pytest.raises(ValueError) as caught:
        checkpoints.read_resume_point(path, now, "data-a")
    message = str(caught.value)
    assert str(path) in message
    assert "model.encoder.hidden_size: checkpoint 8, now 16" in message
    assert "model.encoder.cell: checkpoint <unset>, now lstm" in message


def test_another_format_version_is_refused(tmp_path):
    path = write_checkpoint(tmp_path / "old.ckpt", format_version=0, rnnrec_version="0.1")
    with pytest.raises(
        ValueError, match=r"old\.ckpt.*format is version 0 \(written by rnnrec 0\.1\)"
    ):
        checkpoints.read_resume_point(path, MODEL_CONFIG, "data-a")


def test_a_checkpoint_without_the_rnnrec_entry_is_refused(tmp_path):
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match=r"plain\.ckpt: it has no 'rnnrec' entry"):
        checkpoints.read_resume_point(path, MODEL_CONFIG, "data-a")


def test_other_data_is_refused(tmp_path):
    path = write_checkpoint(tmp_path / "last.ckpt")
    with pytest.raises(ValueError, match=r"last\.ckpt: it was trained on data data-a.*is data-b"):
        checkpoints.read_resume_point(path, MODEL_CONFIG, "data-b")


class Opaque:
    """Not a tensor or a plain container: weights_only loading refuses it."""


def test_a_file_that_needs_full_unpickling_is_refused(tmp_path):
    path = tmp_path / "pickled.ckpt"
    torch.save({"object": Opaque()}, path)
    with pytest.raises(ValueError, match=r"pickled\.ckpt: it does not load .*weights_only=True"):
        checkpoints.read_resume_point(path, MODEL_CONFIG, None)
    not_a_checkpoint = tmp_path / "notes.txt"
    not_a_checkpoint.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt: it is not a checkpoint"):
        checkpoints.read_resume_point(not_a_checkpoint, MODEL_CONFIG, None)


def test_last_is_the_newest_last_checkpoint_of_the_folder(tmp_path):
    older = write_checkpoint(tmp_path / "last-v1.ckpt")
    newer = write_checkpoint(tmp_path / "last.ckpt")
    write_checkpoint(tmp_path / "best-epoch003.ckpt")
    os.utime(older, (2_000_000_000, 2_000_000_000))
    os.utime(newer, (1_000_000_000, 1_000_000_000))
    assert checkpoints.resolve_checkpoint("last", tmp_path) == older.resolve()
    assert checkpoints.resolve_checkpoint(None, tmp_path) is None
    assert checkpoints.resolve_checkpoint(str(newer), "/nowhere") == newer.resolve()


def test_missing_checkpoints_name_the_place_looked_at(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"no last\*\.ckpt in {tmp_path}"):
        checkpoints.resolve_checkpoint("last", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"ckpt_path=.*gone\.ckpt is not a file"):
        checkpoints.resolve_checkpoint(str(tmp_path / "gone.ckpt"), tmp_path)
    (tmp_path / "checkpoints").mkdir()
    last = write_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(IsADirectoryError, match=rf"is a folder; .*ckpt_path={last}$"):
        checkpoints.resolve_checkpoint(str(tmp_path), "/elsewhere")


class WithNegatives(torch.nn.Module):
    """A module holding a negative sampler, as the sampled objective does."""

    def __init__(self) -> None:
        super().__init__()
        self.negatives = BatchNegatives("uniform", np.ones(50), num_negatives=7, buffer_size=20)


def draw_everything(module: WithNegatives) -> list[object]:
    """One value from every random source that checkpoints keep."""
    return [
        torch.rand(3).tolist(),
        np.random.rand(3).tolist(),
        [random.random() for _ in range(3)],
        module.negatives.draw(torch.tensor([1]))[0].tolist(),
    ]


def test_random_states_round_trip_through_a_weights_only_file(tmp_path):
    module = WithNegatives()
    parts = checkpoints.random_stateful_parts(module)
    assert list(parts) == ["negatives"]
    draw_everything(module)  # the buffer of negatives is now partly used

    torch.save(checkpoints.capture_random_state(parts), tmp_path / "state.pt")
    expected = draw_everything(module)
    draw_everything(module)  # move every source on
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    checkpoints.restore_random_state(state, parts)
    assert draw_everything(module) == expected
