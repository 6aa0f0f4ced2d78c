"""Every notebook runs headlessly against a tiny sweep (two jobs, no long training)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> str:
    """A two-job multirun logged to its own MLflow store; returns the tracking URI."""
    folder = tmp_path_factory.mktemp("sweep")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnnrec.train",
            "-m",
            "model=pop,itemknn",
            f"hydra.sweep.dir={folder / 'multirun'}",
            "logger.experiment_name=tiny",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RNNREC_CACHE_DIR": str(folder / "cache")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tiny_sweep, monkeypatch):
    monkeypatch.setenv("RNNREC_NOTEBOOK_TRACKING_URI", tiny_sweep)
    monkeypatch.setenv("RNNREC_NOTEBOOK_EXPERIMENT", "tiny")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": path.parent}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    printed = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert "2 finished runs in 'tiny'" in printed
