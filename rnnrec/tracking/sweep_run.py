"""One MLflow parent run per Hydra multirun, with every job's run nested under it.

A Hydra callback opens the parent run when the multirun starts and passes its id to the jobs
through an environment variable (inherited by launchers that start processes). Each job tags
its own run with ``mlflow.parentRunId`` and the sweep it belongs to (:func:`job_tags`). When
the multirun ends, the parent run receives the best job's swept values and final metrics, and
the count of jobs per status. If the sweep process dies first, an exit hook marks the parent
run FAILED rather than leaving it RUNNING.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from rnnrec.tracking import mlflow_run

log = logging.getLogger(__name__)

# Set for the jobs of a multirun: the id of the sweep's parent run.
PARENT_RUN_ENV = "RNNREC_SWEEP_PARENT_RUN_ID"
# Tag on the parent run; jobs carry ``mlflow.parentRunId`` pointing to it.
SWEEP_TAG = "rnnrec.sweep"


def job_tags() -> dict[str, str]:
    """Tags that place a job's run inside its sweep; empty outside a multirun.

    ``sweep.job`` is Hydra's job number and ``sweep.overrides`` the job's own overrides, so the
    UI can filter and compare the jobs of one sweep.
    """
    parent = os.environ.get(PARENT_RUN_ENV)
    if not parent:
        return {}
    tags = {"mlflow.parentRunId": parent}
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        tags["sweep.job"] = str(hydra_cfg.job.num)
        tags["sweep.overrides"] = " ".join(hydra_cfg.overrides.task)[:5000]
    return tags


def parse_overrides(text: object) -> dict[str, str]:
    """A ``sweep.overrides`` tag as ``{key: value}``: ``"loss=bpr +x.y=2"`` ->
    ``{"loss": "bpr", "x.y": "2"}``. The ``+``/``~`` prefixes go: MLflow keys cannot hold
    them, and the key is what matters."""
    if not isinstance(text, str):
        return {}
    pairs = (item.split("=", 1) for item in text.split() if "=" in item)
    return {key.lstrip("+~"): value for key, value in pairs}


class MLflowSweepRun(Callback):
    """Hydra callback (``hydra.callbacks`` in ``conf/train.yaml``) owning the parent run."""

    def __init__(self) -> None:
        self.client: MlflowClient | None = None
        self.run_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        tracking_uri = mlflow_run.resolve_tracking_uri(config.logger.get("tracking_uri"))
        experiment = str(config.logger.experiment_name)
        mlflow_run.ensure_experiment(tracking_uri, experiment)
        self.client = MlflowClient(tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        assert found is not None  # ensure_experiment created it
        experiment_id = found.experiment_id
        overrides = list(config.hydra.overrides.task)
        sweeper = str(config.hydra.sweeper.get("_target_", "")).rsplit(".", 1)[-1]
        run = self.client.create_run(
            experiment_id,
            run_name=f"sweep-{time.strftime('%Y%m%d-%H%M%S')}",
            tags={
                SWEEP_TAG: "true",
                "git_commit": mlflow_run.git_commit(),
                "sweep.sweeper": sweeper,
                "sweep.overrides": " ".join(overrides)[:5000],
            },
        )
        self.run_id = run.info.run_id
        os.environ[PARENT_RUN_ENV] = self.run_id
        atexit.register(self._end_if_running)
        self._log_config(config)
        log.info("MLflow sweep run %s in experiment %s", self.run_id, experiment)

    def _log_config(self, config: DictConfig) -> None:
        """The multirun's config, unresolved: ``${hydra:...}`` does not resolve here."""
        assert self.client is not None and self.run_id is not None
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "sweep_config.yaml"
            path.write_text(OmegaConf.to_yaml(config, resolve=False))
            self.client.log_artifact(self.run_id, str(path))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.client is None or self.run_id is None:
            return
        try:
            summarise_sweep(self.client, self.run_id, str(config.optimized_metric))
            self._log_sweep_outputs(Path(str(config.hydra.sweep.dir)))
            status = "FINISHED"
        except Exception:
            # Hydra would only warn about an exception raised here; say what went wrong.
            log.exception("could not summarise sweep run %s", self.run_id)
            status = "FAILED"
        self.client.set_terminated(self.run_id, status)
        os.environ.pop(PARENT_RUN_ENV, None)
        self.run_id = None

    def _log_sweep_outputs(self, sweep_dir: Path) -> None:
        """What the sweeper left in the sweep folder: Optuna's results and study plots."""
        assert self.client is not None and self.run_id is not None
        for pattern in ("optimization_results.yaml", "optuna_*.png"):
            for path in sorted(sweep_dir.glob(pattern)):
                self.client.log_artifact(self.run_id, str(path), artifact_path="optuna")

    def _end_if_running(self) -> None:
        """At exit: a sweep that never reached ``on_multirun_end`` crashed or was stopped."""
        if self.client is None or self.run_id is None:
            return
        if self.client.get_run(self.run_id).info.status == "RUNNING":
            self.client.set_terminated(self.run_id, "FAILED")


def summarise_sweep(client: MlflowClient, parent_run_id: str, metric: str) -> str | None:
    """Log job counts and the best job (highest ``metric``) on the parent run; its run id."""
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
        max_results=10_000,
    )
    statuses = [child.info.status for child in children]
    for status in ("FINISHED", "FAILED", "KILLED"):
        client.log_metric(parent_run_id, f"sweep/jobs_{status.lower()}", statuses.count(status))
    finished = [
        child
        for child in children
        if child.info.status == "FINISHED"
        and math.isfinite(child.data.metrics.get(metric, math.nan))
    ]
    if not finished:
        log.warning("sweep %s: no finished job logged %s", parent_run_id, metric)
        return None
    # Sweeps in rnnrec select on validation accuracy, where higher is better.
    best = max(finished, key=lambda child: child.data.metrics[metric])
    client.set_tag(parent_run_id, "sweep.best_run_id", best.info.run_id)
    client.set_tag(parent_run_id, "sweep.best_overrides", best.data.tags.get("sweep.overrides", ""))
    for key, value in best.data.metrics.items():
        client.log_metric(parent_run_id, key, value)
    params = parse_overrides(best.data.tags.get("sweep.overrides"))
    mlflow_run.log_params(client, parent_run_id, {f"best.{k}": v for k, v in params.items()})
    log.info(
        "sweep %s: best run %s, %s %.4f",
        parent_run_id,
        best.info.run_id,
        metric,
        best.data.metrics[metric],
    )
    return str(best.info.run_id)
