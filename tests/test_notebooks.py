"""Every notebook runs headlessly against a tiny sweep (two Optuna trials, no long training)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
STUDY = "ml100k_accuracy_vs_time"  # conf/hparams_search/accuracy_vs_time.yaml's study_name


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> dict[str, str]:
    """Two trials of the two-objective search, GRUs with dot attention trained on two
    batches, logged to their own MLflow store and Optuna storage; returns the notebooks'
    environment variables pointing at them."""
    folder = tmp_path_factory.mktemp("sweep")
    storage = f"sqlite:///{folder / 'optuna.db'}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnnrec.train",
            "-m",
            "hparams_search=accuracy_vs_time",
            "hydra.sweeper.n_trials=2",
            f"hydra.sweeper.storage={storage}",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=2",
            "attention=dot",
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
    return {
        "RNNREC_NOTEBOOK_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "RNNREC_NOTEBOOK_EXPERIMENT": "tiny",
        "RNNREC_NOTEBOOK_OPTUNA_STORAGE": storage,
        "RNNREC_NOTEBOOK_OPTUNA_STUDY": STUDY,
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tiny_sweep, monkeypatch):
    for name, value in tiny_sweep.items():
        monkeypatch.setenv(name, value)
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
