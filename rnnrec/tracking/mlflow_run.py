"""MLflow bookkeeping around a training run: store location, params, tags, final status."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import filelock
from mlflow.entities import Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

# MLflow accepts longer values, but the UI's parameter table becomes unreadable past this.
MAX_PARAM_LENGTH = 500


def resolve_tracking_uri(configured: str | None = None) -> str:
    """The configured URI, else ``$MLFLOW_TRACKING_URI``, else ``mlflow.db`` in the cwd.

    The default is an absolute ``sqlite:///`` URI, which is where ``mlflow ui`` started in
    the same directory looks. (Lightning's logger would otherwise pick a ``file:`` store,
    which current MLflow refuses.)
    """
    if configured:
        return configured
    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    if from_env:
        return from_env
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def store_lock(tracking_uri: str) -> contextlib.AbstractContextManager[object]:
    """A lock file beside a SQLite store (no lock for other stores).

    MLflow creates and migrates a SQLite store's tables on first use, and two processes
    doing that at once (two sweeps started together on a new ``mlflow.db``) collide: one
    fails half-way through a migration. Server-backed stores migrate outside rnnrec.
    """
    if not tracking_uri.startswith("sqlite:///") or tracking_uri.endswith(":memory:"):
        return contextlib.nullcontext()
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    return filelock.FileLock(f"{database}.lock", timeout=600)


def ensure_experiment(tracking_uri: str, name: str) -> None:
    """Create the experiment unless it exists, tolerating a parallel job that creates it first.

    Two jobs starting at once (a parallel launcher) would otherwise both try to create it,
    and the second would crash on the store's unique name constraint; on a new SQLite store
    they would also race to create its tables (see :func:`store_lock`).
    """
    with store_lock(tracking_uri):
        client = MlflowClient(tracking_uri)
        if client.get_experiment_by_name(name) is not None:
            return
        try:
            client.create_experiment(name)
        except MlflowException:
            if client.get_experiment_by_name(name) is None:
                raise


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"encoder.hidden_size": "64", ...}``, long values shortened."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{name}."))
            continue
        text = str(value)
        if len(text) > MAX_PARAM_LENGTH:
            log.warning(
                "param %s is %d characters long; shortened in MLflow (full value in config.yaml)",
                name,
                len(text),
            )
            text = text[: MAX_PARAM_LENGTH - 3] + "..."
        flat[name] = text
    return flat


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    """Log params in batches of MLflow's per-request maximum (100)."""
    items = [Param(key, value) for key, value in params.items()]
    for begin in range(0, len(items), 100):
        client.log_batch(run_id, params=items[begin : begin + 100])


def git_commit() -> str:
    """Commit hash of the source tree, with ``-dirty`` when it has uncommitted changes."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def end_status(error: BaseException | None) -> str:
    """MLflow run status for how a run ended: finished, killed by the user, or failed."""
    if error is None:
        return "FINISHED"
    if isinstance(error, KeyboardInterrupt | SystemExit):
        return "KILLED"
    return "FAILED"


# Tags of a run that resumed training from a checkpoint.
RESUMES_TAG = "rnnrec.resumes"  # how many times it was resumed
RESUMED_FROM_TAG = "rnnrec.resumed_from"  # the checkpoint of the latest resume
CHANGED_PARAMS_TAG = "rnnrec.resume_changed_params"  # settings that differ from its params
# MLflow's limit on a tag value is 8000 characters; stay well below it.
MAX_TAG_LENGTH = 5000
# Settings that a resume changes by its nature (where to resume from, where to write): not
# listed as changed, since they do not change what is trained.
RESUME_BOOKKEEPING = ("ckpt_path", "paths.", "trainer.default_root_dir")


class _ResumePoint(Protocol):
    """What :func:`reopen_run` reads of :class:`rnnrec.checkpoints.ResumePoint`."""

    @property
    def path(self) -> Path: ...

    @property
    def mlflow_run_id(self) -> str | None: ...

    @property
    def mlflow_tracking_uri(self) -> str | None: ...


def reopen_run(tracking_uri: str, point: _ResumePoint) -> None:
    """Mark the run that a resumed training continues as RUNNING again, and tag the resume.

    Raises:
        ValueError: when the store at ``tracking_uri`` has no such run, naming the checkpoint
            and the store it was written with.
    """
    client = MlflowClient(tracking_uri)
    run_id = str(point.mlflow_run_id)
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise ValueError(
            f"checkpoint {point.path} belongs to MLflow run {run_id} (store "
            f"{point.mlflow_tracking_uri}), which the store {tracking_uri} does not hold: set "
            "logger.tracking_uri (or MLFLOW_TRACKING_URI) to the interrupted run's store"
        ) from error
    resumes = int(run.data.tags.get(RESUMES_TAG, "0")) + 1
    client.update_run(run_id, status="RUNNING")
    client.set_tag(run_id, RESUMES_TAG, str(resumes))
    client.set_tag(run_id, RESUMED_FROM_TAG, str(point.path))
    commit = git_commit()
    if run.data.tags.get("git_commit") not in (None, commit):
        log.warning(
            "run %s was started at commit %s, resumed at %s",
            run_id,
            run.data.tags["git_commit"],
            commit,
        )
        client.set_tag(run_id, f"git_commit_resume_{resumes}", commit)
    log.info("MLflow run %s (ended %s) resumed, time %d", run_id, run.info.status, resumes)


def params_to_add_on_resume(
    client: MlflowClient, run_id: str, params: Mapping[str, str]
) -> dict[str, str]:
    """Those of ``params`` that the run does not have yet; MLflow cannot change the others.

    Params whose value differs from the logged one (a resumed run with a larger
    ``trainer.max_epochs``, say) are listed in the tag :data:`CHANGED_PARAMS_TAG` instead,
    against the values of the run's first start (those its params keep), leaving out
    :data:`RESUME_BOOKKEEPING`.
    """
    logged = client.get_run(run_id).data.params
    changed = [
        f"{key}: {logged[key]} -> {value}"
        for key, value in params.items()
        if key in logged and logged[key] != value and not key.startswith(RESUME_BOOKKEEPING)
    ]
    if changed:
        text = "; ".join(changed)
        if len(text) > MAX_TAG_LENGTH:
            text = text[: MAX_TAG_LENGTH - 3] + "..."
        client.set_tag(run_id, CHANGED_PARAMS_TAG, text)
        log.info("settings changed on resume (kept in tag %s): %s", CHANGED_PARAMS_TAG, text)
    return {key: value for key, value in params.items() if key not in logged}
