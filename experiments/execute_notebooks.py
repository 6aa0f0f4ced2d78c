"""Execute study notebooks in place, so that their committed outputs come from real runs.

Each notebook reads its study's runs from MLflow (by default ``mlflow.db`` and ``optuna.db``
in the repository root; the notebooks' own ``RNNREC_NOTEBOOK_*`` environment variables
point elsewhere). A failing cell stops with the notebook's name and leaves the file as it was.

    .venv/bin/python experiments/execute_notebooks.py [NAME ...]    # default: every notebook
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
log = logging.getLogger("execute_notebooks")


def execute(path: Path, timeout_s: int) -> float:
    """Run every cell of ``path`` with the notebook's folder as working directory, then
    write it back with its outputs; returns the seconds it took."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout_s,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.perf_counter()
    client.execute()
    nbformat.write(notebook, path)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="notebook names without .ipynb (default: all)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("MPLBACKEND", "Agg")  # no display needed for the figures
    paths = [NOTEBOOKS / f"{name}.ipynb" for name in args.names] or sorted(
        NOTEBOOKS.glob("*.ipynb")
    )
    for path in paths:
        if not path.exists():
            raise SystemExit(f"no notebook {path}")
        log.info("%s: executed in %.1f s", path.name, execute(path, args.timeout))


if __name__ == "__main__":
    main()
