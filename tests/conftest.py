"""Shared fixtures: every test gets its own cache folder and MLflow default, and third parties
stay quiet."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in ``tmp_path``: MLflow's SQLite store puts artifacts under ./mlruns."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNREC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def _no_inherited_mlflow_store() -> Iterator[None]:
    """Tests write to their own stores, never to a store named in the environment.

    MLflow also exports the URI of the store a run used into os.environ; without the
    clean-up after each test, that store would become the default of every later test and
    subprocess. (monkeypatch.delenv would not undo a variable that was absent at setup.)
    """
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)


# Set by .ci/run, which starts a throw-away server with .ci/postgres.sh.
POSTGRES_URL_VARIABLE = "RNNREC_TEST_POSTGRES_URL"


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test (dropped afterwards), as a URL.

    Skips, saying why, when no server is named in ``$RNNREC_TEST_POSTGRES_URL`` or the one
    named does not answer.
    """
    import uuid

    server = os.environ.get(POSTGRES_URL_VARIABLE)
    if not server:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_URL_VARIABLE} (.ci/postgres.sh)")
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL at {server} does not answer: {error}")
    name = f"rnnrec_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield server.rsplit("/", 1)[0] + f"/{name}"
        finally:
            # Connections left by the code under test would block the drop.
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
