"""Team tracking: an MLflow tracking server on a PostgreSQL backend store, reached by
rnnrec-train through ``MLFLOW_TRACKING_URI`` alone (the README's "Team tracking" set-up)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from rnnrec.train import train
from tests.e2e import config

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def tracking_server(postgres_database: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``mlflow server`` on 127.0.0.1 with the test's database as backend store and a local
    artifact folder; yields its URL and that folder, and stops the server's process group."""
    artifacts = tmp_path / "artifacts"
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [
        str(mlflow),
        "server",
        "--backend-store-uri",
        postgres_database,
        "--artifacts-destination",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log_file = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log_file.flush()
                pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()}")
            time.sleep(0.5)
        yield url, artifacts
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log_file.close()


def test_training_logs_to_the_server_named_in_the_environment(
    tracking_server: tuple[str, Path], workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, artifacts = tracking_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    cfg = config(workdir, "logger.tracking_uri=null", "logger.experiment_name=team")

    results, run_id = train(cfg)

    client = MlflowClient(url)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "team"
    assert run.data.metrics["test/ndcg_10"] == pytest.approx(results["test/ndcg_10"])
    # Artifacts travel through the server into its own folder, not the job's working folder.
    assert {a.path for a in client.list_artifacts(run_id, "model")} == {"model/model.pt"}
    assert list(artifacts.rglob("model.pt"))
    assert not (workdir / "mlruns").exists()
    assert not (workdir / "mlflow.db").exists()
