"""Processes that open a new SQLite MLflow store at the same moment all succeed."""

from __future__ import annotations

import multiprocessing

from mlflow.tracking import MlflowClient

from rnnrec.tracking.mlflow_run import ensure_experiment


def _open(uri: str, name: str, start: multiprocessing.synchronize.Barrier) -> None:
    start.wait()  # all processes reach the new store together, as two sweeps started at once
    ensure_experiment(uri, name)


def test_simultaneous_first_use_of_a_sqlite_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    names = ["study-a", "study-b", "study-a"]
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(names))
    workers = [context.Process(target=_open, args=(uri, n, start)) for n in names]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    found = {e.name for e in MlflowClient(uri).search_experiments()}
    assert {"study-a", "study-b"} <= found
