"""Optuna on the job side of a sweep: reconnect to the study, report, prune, tag.

The sweeper ``hydra/sweeper=rnnrec_optuna`` (in ``hydra_plugins/rnnrec_optuna_sweeper``) adds
an ``optuna`` section to every job's config when its study lives in a storage that a job can
reach (a database or a journal file)::

    optuna:
      storage: sqlite:////abs/path/optuna.db   # or journal:/abs/path/optuna.log
      study_name: ml100k_optuna
      trial_id: 17        # storage-wide id, used to reconnect
      trial_number: 3     # number within the study, used in names and tags
      monitor: val/ndcg_10  # the metric the study optimises (its first objective)

This module needs Optuna but not Lightning, so a sweep's jobs and the sweeper itself import it
in a fraction of a second; the Lightning callback is in :mod:`rnnrec.tuning.pruning`.

A job ends a pruned trial by raising :class:`optuna.TrialPruned` (or by returning a mapping
with ``"optuna.pruned": True``); the sweeper then records the trial as PRUNED.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend

log = logging.getLogger(__name__)

CONFIG_KEY = "optuna"
"""The job config section the sweeper fills in."""
DEFAULT_MONITOR = "val/ndcg_10"
PRUNED_TAG = "optuna.pruned"
"""MLflow tag of a pruned run, and the key of a job result that reports pruning."""
PRUNED_ATTR = "pruned"
"""Trial user attribute set when a job decides to prune, read back by the sweeper."""
PRUNER_ATTR = "rnnrec.pruner"
"""Study user attribute holding the pruner settings, so that jobs build the same pruner."""
JOURNAL_PREFIX = "journal:"

# Constructor arguments each pruner accepts (None: Optuna's default is used).
PRUNER_ARGS: dict[str, tuple[str, ...]] = {
    "none": (),
    "median": ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"),
    "successive_halving": (
        "min_resource",
        "reduction_factor",
        "min_early_stopping_rate",
        "bootstrap_count",
    ),
    "hyperband": ("min_resource", "max_resource", "reduction_factor", "bootstrap_count"),
}

# Messages logged once per process: a multi-objective study cannot prune.
_warned: set[str] = set()


def make_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """The Optuna storage of ``url``: None (in memory), ``journal:PATH`` or a SQLAlchemy URL.

    ``journal:PATH`` is Optuna's JournalStorage on a file (its choice for several processes
    on one machine). SQLite gets a long lock timeout: several processes writing to one file
    otherwise fail with "database is locked" under load.
    """
    if url is None:
        return None
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX) :]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
        return optuna.storages.JournalStorage(backend)
    engine_kwargs: dict[str, Any] | None = None
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


def build_pruner(spec: Mapping[str, Any] | None) -> optuna.pruners.BasePruner:
    """An Optuna pruner from ``{"name": ..., **arguments}``; arguments set to None are left out.

    Names: ``none``, ``median``, ``successive_halving``, ``hyperband``. An argument that the
    chosen pruner does not take is an error rather than silently ignored.
    """
    spec = dict(spec or {})
    name = str(spec.pop("name", "none") or "none")
    if name not in PRUNER_ARGS:
        raise ValueError(f"unknown pruner {name!r}: use one of {', '.join(PRUNER_ARGS)}")
    kwargs = {key: value for key, value in spec.items() if value is not None}
    unknown = sorted(set(kwargs) - set(PRUNER_ARGS[name]))
    if unknown:
        allowed = ", ".join(PRUNER_ARGS[name]) or "none"
        raise ValueError(f"pruner {name} takes no {', '.join(unknown)} (it takes: {allowed})")
    if name == "median":
        return optuna.pruners.MedianPruner(**kwargs)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(**kwargs)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(**kwargs)
    return optuna.pruners.NopPruner()


class TrialReporter:
    """Reports intermediate values of one trial, living in a storage, and asks to prune.

    Connects lazily on the first report. In a multi-objective study Optuna cannot prune:
    then nothing is reported (logged once per process).
    """

    def __init__(
        self,
        storage: str,
        study_name: str,
        trial_id: int,
        trial_number: int | None = None,
        monitor: str | None = None,
    ) -> None:
        self.storage = storage
        self.study_name = study_name
        self.trial_id = trial_id
        self.trial_number = trial_number
        self.monitor = monitor
        self.pruned = False
        self.pruned_step: int | None = None
        self._trial: optuna.Trial | None = None
        self._disabled = False
        self._last_step: int | None = None

    def _connect(self) -> optuna.Trial | None:
        if self._trial is not None or self._disabled:
            return self._trial
        # A job never samples, so the random sampler (no state, no relative search space)
        # is enough; the pruner must be the sweeper's, read from the study's attributes.
        storage = make_storage(self.storage)
        assert storage is not None
        study = optuna.load_study(
            study_name=self.study_name,
            storage=storage,
            sampler=optuna.samplers.RandomSampler(),
        )
        if len(study.directions) > 1:
            self._disabled = True
            if self.study_name not in _warned:
                _warned.add(self.study_name)
                log.info(
                    "study %s has %d objectives: Optuna cannot prune multi-objective studies, "
                    "so no intermediate values are reported",
                    self.study_name,
                    len(study.directions),
                )
            return None
        study.pruner = build_pruner(study.user_attrs.get(PRUNER_ATTR))
        self._trial = optuna.trial.Trial(study, self.trial_id)
        return self._trial

    def report(self, value: float, step: int) -> bool:
        """Report ``value`` at ``step`` (an epoch); True when the trial should stop now.

        A step already reported (validation more than once per epoch) is skipped: Optuna
        would ignore it with a warning.
        """
        if self.pruned:
            return True
        trial = self._connect()
        if trial is None or step == self._last_step:
            return False
        self._last_step = step
        trial.report(float(value), step)
        if not trial.should_prune():
            return False
        self.pruned = True
        self.pruned_step = step
        # Recorded in the storage so that the sweeper marks the trial PRUNED even if the
        # job swallows the exception and returns normally.
        trial.set_user_attr(PRUNED_ATTR, True)
        log.info(
            "trial %s of study %s pruned at step %d (%s=%.6g)",
            self.trial_number if self.trial_number is not None else self.trial_id,
            self.study_name,
            step,
            self.monitor or "value",
            value,
        )
        return True

    def pruned_error(self) -> optuna.TrialPruned:
        """The exception that ends a pruned job (raise it)."""
        return optuna.TrialPruned(
            f"trial {self.trial_number} pruned at step {self.pruned_step} "
            f"({self.monitor or 'value'} lagged behind the other trials)"
        )


def _section(cfg: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if cfg is None:
        return None
    section = cfg.get(CONFIG_KEY)
    return section if isinstance(section, Mapping) and section else None


def trial_reporter(cfg: Mapping[str, Any] | None) -> TrialReporter | None:
    """The reporter of the job's trial, or None when the config has no ``optuna`` section
    (not a sweep job, or a sweep whose study lives in memory)."""
    section = _section(cfg)
    if section is None:
        return None
    missing = [key for key in ("storage", "study_name", "trial_id") if section.get(key) is None]
    if missing:
        log.warning(
            "config section %s lacks %s: this job cannot report to its trial",
            CONFIG_KEY,
            ", ".join(missing),
        )
        return None
    number = section.get("trial_number")
    monitor = section.get("monitor")
    return TrialReporter(
        storage=str(section["storage"]),
        study_name=str(section["study_name"]),
        trial_id=int(section["trial_id"]),
        trial_number=None if number is None else int(number),
        monitor=None if monitor is None else str(monitor),
    )


def trial_tags(cfg: Mapping[str, Any] | None) -> dict[str, str]:
    """MLflow tags naming the job's study and trial (empty outside an Optuna sweep)."""
    section = _section(cfg)
    if section is None:
        return {}
    tags = {}
    for key in ("study_name", "trial_number"):
        if section.get(key) is not None:
            tags[f"optuna.{key}"] = str(section[key])
    return tags


def is_pruned(thing: object) -> bool:
    """True for :class:`optuna.TrialPruned` (also as the cause of another exception), and for
    an object whose ``pruned`` attribute is true (a reporter or the pruning callback)."""
    seen: set[int] = set()
    current: object = thing
    while isinstance(current, BaseException) and id(current) not in seen:
        if isinstance(current, optuna.TrialPruned):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return bool(getattr(thing, "pruned", False))


__all__ = [
    "CONFIG_KEY",
    "DEFAULT_MONITOR",
    "PRUNED_ATTR",
    "PRUNED_TAG",
    "PRUNER_ARGS",
    "PRUNER_ATTR",
    "TrialReporter",
    "build_pruner",
    "is_pruned",
    "make_storage",
    "trial_reporter",
    "trial_tags",
]
