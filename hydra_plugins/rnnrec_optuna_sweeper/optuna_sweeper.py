"""``hydra/sweeper=rnnrec_optuna``: a Hydra sweeper driving an Optuna study by ask-and-tell.

Select it with ``rnnrec-train -m hydra/sweeper=rnnrec_optuna ...`` or through a config of
``conf/hparams_search``; its settings (``hydra.sweeper.*``) are the fields of
:class:`RnnrecOptunaSweeperConf`.

Search spaces come from ``hydra.sweeper.params`` (a mapping from config key to a value) and
from sweep overrides on the command line (these win for the same key), both written in
Hydra's override grammar:

=====================================  =================================================
``choice(a,b)`` or ``a,b``             categorical
``range(1,5)``, ``range(0,1,0.25)``    int (float with a step): 1, 2, 3, 4; stop excluded
``interval(0.1,0.5)``                  float
``tag(log, interval(1e-4,1e-1))``      float on a log scale
``tag(int, interval(1,100))``          int; ``tag(int, log, interval(1,100))`` log scale
a plain value, e.g. ``data.batch_size=64``  fixed: passed to every job unchanged
=====================================  =================================================

Each round checks how many trials the study holds, asks up to ``n_jobs`` new ones, hands
their overrides to the configured launcher together and tells Optuna each result:

- a job returns a number (single objective) or a mapping of metric names to numbers, from
  which ``objectives`` are picked;
- a job that raises, returns NaN or lacks an objective is told FAIL and the sweep goes on;
  a job that raises :class:`optuna.TrialPruned` (or returns ``{"optuna.pruned": True}``, or
  whose reporter flagged the trial) is told PRUNED.

Resume and several processes: with a ``storage`` and a ``study_name``, rerunning the command
loads the study and runs only the trials still missing to reach ``n_trials``, counting
trials COMPLETE, PRUNED, FAIL and RUNNING; several processes may share one study the same
way. Trials left RUNNING by a process of this machine that is gone (killed) are marked FAIL
at start; those of other machines only after ``fail_stale_after_s`` (if set).

Jobs learn their trial through ``++optuna.storage``, ``++optuna.study_name``,
``++optuna.trial_id``, ``++optuna.trial_number`` and ``++optuna.monitor`` (see
:mod:`rnnrec.tuning`), given only when the study lives in a storage that jobs can reach. A
study in memory (``storage: null``) with a pruner is kept in a journal file in the sweep
directory instead, so that its jobs can report and prune.

At the end a summary (trial counts, best trial or Pareto front) is logged and written to
``optimization_results.yaml`` in ``hydra.sweep.dir``.
"""

import logging
import math
import os
import random
import re
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

# Optuna is imported inside functions: Hydra imports this module at every start-up of every
# app, sweep or not, and should not pay for it.
if TYPE_CHECKING:
    import optuna
    from hydra.core.utils import JobReturn
    from hydra.plugins.launcher import Launcher
    from hydra.types import HydraContext, TaskFunction
    from optuna.distributions import BaseDistribution
    from optuna.trial import TrialState

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "grid", "cmaes", "nsgaii")
DIRECTIONS = ("maximize", "minimize")
RESULTS_FILE = "optimization_results.yaml"
JOURNAL_FILE = "optuna_journal.log"
HOST_ATTR = "sweeper.host"
"""Trial user attributes naming the sweeper process that asked the trial."""
PID_ATTR = "sweeper.pid"
FAIL_REASON_ATTR = "fail_reason"
# Study attribute: the fixed overrides of the sweep that last ran trials of the study.
FIXED_ATTR = "sweeper.fixed_overrides"
JOB_KEYS = ("storage", "study_name", "trial_id", "trial_number", "monitor")


@dataclass
class PrunerConf:
    """Pruner and its main arguments; null arguments keep Optuna's defaults."""

    # none, median, successive_halving or hyperband
    name: str = "none"
    # median: trials completed before any pruning; steps (epochs) before pruning a trial
    n_startup_trials: int | None = None
    n_warmup_steps: int | None = None
    interval_steps: int | None = None
    n_min_trials: int | None = None
    # successive_halving and hyperband ("auto" or an int)
    min_resource: Any = None
    max_resource: Any = None
    reduction_factor: int | None = None
    min_early_stopping_rate: int | None = None
    bootstrap_count: int | None = None


@dataclass
class RnnrecOptunaSweeperConf:
    """Settings of ``hydra/sweeper=rnnrec_optuna`` (``hydra.sweeper.*``)."""

    _target_: str = "hydra_plugins.rnnrec_optuna_sweeper.optuna_sweeper.RnnrecOptunaSweeper"
    # tpe, random, grid, cmaes (needs the cmaes package) or nsgaii
    sampler: str = "tpe"
    # further arguments of the sampler's constructor, e.g. {n_startup_trials: 5}
    sampler_kwargs: dict[str, Any] = field(default_factory=dict)
    # seed of the sampler; null: a different sequence every run
    seed: int | None = None
    # maximize or minimize, or a list with one direction per objective
    direction: Any = "maximize"
    # names of the job's metrics to optimise (a job returning a number: that number)
    objectives: list[str] = field(default_factory=lambda: ["val/ndcg_10"])
    # trials in the study when the sweep ends, counting earlier runs of the same study
    n_trials: int = 20
    # trials asked at once and handed to the launcher together
    n_jobs: int = 1
    # null (in memory), sqlite:///PATH, journal:PATH or any SQLAlchemy URL
    storage: str | None = None
    # name of the study in the storage; the same name resumes it
    study_name: str | None = None
    pruner: PrunerConf = field(default_factory=PrunerConf)
    # search space: config key -> value in Hydra's override grammar
    params: dict[str, Any] | None = None
    # RUNNING trials older than this many seconds are marked FAIL at start (null: never)
    fail_stale_after_s: float | None = None


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="rnnrec_optuna",
    node=RnnrecOptunaSweeperConf,
    provider="rnnrec",
)


# ---------------------------------------------------------------- override grammar values

_value_parser: OverridesParser | None = None


def _parser() -> OverridesParser:
    global _value_parser
    if _value_parser is None:
        _value_parser = OverridesParser.create()
    return _value_parser


def _parsed_value(text: str) -> tuple[bool, Any]:
    """(parsed?, value) of ``text`` as the value of an override."""
    try:
        override = _parser().parse_override(f"key={text}")
    except Exception:
        return False, None
    if override.is_sweep_override():
        return False, None
    return True, override.value()


def quote(text: str) -> str:
    """``text`` as a quoted string of the override grammar.

    In quoted strings Hydra reads backslashes literally, except those before a quote or at
    the end, which escape: those are doubled, and quotes escaped.
    """
    escaped = re.sub(r"(\\+)(?='|$)", lambda match: match.group(1) * 2, text)
    quoted = "'" + escaped.replace("'", "\\'") + "'"
    ok, value = _parsed_value(quoted)
    if not ok or value != text:
        raise ValueError(f"cannot write {text!r} in Hydra's override grammar")
    return quoted


def format_value(value: Any) -> str:
    """``value`` written so that Hydra's override parser reads back the same value."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy and torch scalars
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        ok, parsed = _parsed_value(value)
        return value if ok and isinstance(parsed, str) and parsed == value else quote(value)
    if isinstance(value, Mapping):
        items = (f"{key}:{format_value(item)}" for key, item in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    raise TypeError(f"cannot write a {type(value).__name__} as an override value: {value!r}")


def params_as_overrides(params: Mapping[str, Any] | None) -> list[str]:
    """``hydra.sweeper.params`` as overrides: strings are grammar already, others formatted."""
    return [
        f"{key}={value if isinstance(value, str) else format_value(value)}"
        for key, value in (params or {}).items()
    ]


# ------------------------------------------------------------------------ search space


@dataclass
class SearchSpace:
    """Optuna distributions by parameter name, and the overrides that every job gets."""

    distributions: dict[str, "BaseDistribution"] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    """Parameter name -> key element of its override (``+key`` stays ``+key``)."""
    fixed: list[str] = field(default_factory=list)
    raw: set[str] = field(default_factory=set)
    """Parameters whose categorical choices are override text (lists, dicts)."""

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """A job's overrides: the fixed ones, then one per sampled parameter."""
        sampled = [
            f"{key}={params[name] if name in self.raw else format_value(params[name])}"
            for name, key in self.keys.items()
        ]
        return [*self.fixed, *sampled]


def _is_primitive(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def to_distribution(name: str, sweep: Any) -> tuple["BaseDistribution", bool]:
    """The Optuna distribution of a parsed sweep, and whether its choices are override text.

    Raises ValueError for sweeps that have no distribution (``glob``) or bad tags.
    """
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    tags = set(getattr(sweep, "tags", None) or ())
    unknown = tags - {"log", "int"}
    if unknown:
        raise ValueError(f"{name}: unknown tags {sorted(unknown)} (known: log, int)")
    log_scale = "log" in tags
    try:
        if isinstance(sweep, ChoiceSweep):
            if tags:
                raise ValueError("choice takes no log or int tag")
            choices: list[Any] = list(sweep.list)
            if not choices:
                raise ValueError("choice needs at least one value")
            if all(_is_primitive(choice) for choice in choices):
                return CategoricalDistribution(choices), False
            # Optuna stores only primitive choices: lists and dicts become override text.
            return CategoricalDistribution([format_value(choice) for choice in choices]), True
        if isinstance(sweep, RangeSweep):
            return _range_distribution(sweep, log_scale), False
        if isinstance(sweep, IntervalSweep):
            if sweep.start is None or sweep.end is None:
                raise ValueError("interval needs a start and an end")
            low, high = float(sweep.start), float(sweep.end)
            if "int" in tags:
                if not (low.is_integer() and high.is_integer()):
                    raise ValueError("tag int needs whole interval bounds")
                return IntDistribution(int(low), int(high), log=log_scale), False
            return FloatDistribution(low, high, log=log_scale), False
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from error
    raise ValueError(
        f"{name}: {type(sweep).__name__} has no Optuna distribution; use choice, range or "
        "interval (with tag log or int)"
    )


def _range_distribution(sweep: RangeSweep, log_scale: bool) -> "BaseDistribution":
    from optuna.distributions import FloatDistribution, IntDistribution

    start, stop = sweep.start, sweep.stop
    step = 1 if sweep.step is None else sweep.step
    if start is None or stop is None:
        raise ValueError("range needs a start and a stop")
    if step == 0:
        raise ValueError("range step must not be 0")
    count = math.ceil(round((stop - start) / step, 9))
    if count <= 0:
        raise ValueError(f"range({start}, {stop}, {step}) is empty")
    ends = (start, start + (count - 1) * step)
    low, high, width = min(ends), max(ends), abs(step)
    if all(isinstance(x, int) for x in (start, stop, step)):
        if log_scale and width != 1:
            raise ValueError("a log scale needs step 1")
        return IntDistribution(int(low), int(high), log=log_scale, step=int(width))
    if log_scale:
        raise ValueError("a float range has a step, which a log scale does not allow")
    # Rounded: 0.1 + 3 * 0.1 is not 0.4 in floats, and Optuna checks high - low against step.
    return FloatDistribution(round(low, 12), round(high, 12), step=width)


def parse_search_space(
    overrides: Sequence[str], parser: OverridesParser | None = None
) -> SearchSpace:
    """Split overrides into a search space (sweeps) and fixed overrides (all others).

    A later override of the same key replaces an earlier one, so command-line overrides
    placed after ``hydra.sweeper.params`` win.
    """
    parsed = (parser or _parser()).parse_overrides(list(overrides))
    by_key: dict[str, Override] = {}
    for override in parsed:
        by_key.pop(override.key_or_group, None)
        by_key[override.key_or_group] = override
    space = SearchSpace()
    for name, override in by_key.items():
        if not override.is_sweep_override():
            assert override.input_line is not None
            space.fixed.append(override.input_line)
            continue
        distribution, raw = to_distribution(name, override.value())
        space.distributions[name] = distribution
        space.keys[name] = override.get_key_element()
        if raw:
            space.raw.add(name)
    return space


def grid_space(space: SearchSpace) -> dict[str, list[Any]]:
    """The search space as the grid sampler wants it; intervals have no grid."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    grid: dict[str, list[Any]] = {}
    for name, dist in space.distributions.items():
        if isinstance(dist, CategoricalDistribution):
            grid[name] = list(dist.choices)
        elif isinstance(dist, IntDistribution):
            grid[name] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            count = round((dist.high - dist.low) / dist.step) + 1
            grid[name] = [round(dist.low + i * dist.step, 12) for i in range(count)]
        else:
            raise ValueError(
                f"sampler grid needs choice or range search spaces; {name} is an interval"
            )
    return grid


def _grid_sampler(
    search_space: dict[str, list[Any]], **kwargs: Any
) -> "optuna.samplers.BaseSampler":
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """GridSampler whose end-of-grid stop is left to the sweeper."""

        def after_trial(
            self,
            study: "optuna.Study",
            trial: "optuna.trial.FrozenTrial",
            state: "TrialState",
            values: Sequence[float] | None,
        ) -> None:
            # GridSampler calls study.stop() when the grid is done, which Optuna allows only
            # inside study.optimize (it raises in tell); the sweeper caps n_trials instead.
            return None

    return AskTellGridSampler(search_space, **kwargs)


# ----------------------------------------------------------------------------- storage


def resolve_storage_url(url: str | None, base: Path) -> str | None:
    """``url`` with a relative SQLite or journal path made absolute against ``base``, so that
    jobs (which may change directory) reach the same file. Empty or null: in memory."""
    if url is None or not str(url).strip():
        return None
    url = str(url)
    if url.startswith("journal:"):
        path = Path(url[len("journal:") :]).expanduser()
        return "journal:" + str(path if path.is_absolute() else base / path)
    if url.startswith("sqlite:///"):
        rest = url[len("sqlite:///") :]
        if rest and not rest.startswith(":memory:") and not Path(rest).is_absolute():
            return "sqlite:///" + str(base / rest)
    return url


def mask_url(url: str | None) -> str:
    """``url`` without its password, for logs and the results file."""
    if url is None:
        return "in memory"
    if "://" in url and "@" in url:
        try:
            from sqlalchemy.engine import make_url

            return make_url(url).render_as_string(hide_password=True)
        except Exception:
            return url.split("://", 1)[0] + "://***"
    return url


def _retryable_errors() -> tuple[type[BaseException], ...]:
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover - installed with Optuna
        return ()
    return (SQLAlchemyError,)


def warn_if_fixed_overrides_changed(study: "optuna.Study", fixed: Sequence[str]) -> None:
    """Warn when a study with trials is resumed under other fixed overrides, then record
    these ones.

    The study is found by storage and name alone, so a rerun with, say, another
    ``data=...`` adds its trials to trials of another setting, and the sampler would
    compare them as if only the searched parameters differed. Not an error: a changed
    tracking URI, for one, is harmless.
    """
    current = sorted(fixed)
    previous = study.user_attrs.get(FIXED_ATTR)
    if previous is not None and count_taken(study) > 0 and sorted(previous) != current:
        added = sorted(set(current) - set(previous))
        dropped = sorted(set(previous) - set(current))
        log.warning(
            "study %s already has trials run with other fixed overrides (now added: %s; "
            "now gone: %s): its trials then differ in more than the searched parameters. "
            "Use another study_name for another setting",
            study.study_name,
            ", ".join(added) or "none",
            ", ".join(dropped) or "none",
        )
    study.set_user_attr(FIXED_ATTR, current)


# ---------------------------------------------------------------------- trial bookkeeping


def count_taken(study: "optuna.Study", up_to: int | None = None) -> int:
    """Trials that use up the budget: COMPLETE, PRUNED, FAIL and RUNNING (not WAITING);
    with ``up_to``, only those numbered up to it."""
    from optuna.trial import TrialState

    states = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False, states=states)
    if up_to is None:
        return len(trials)
    return sum(1 for trial in trials if trial.number <= up_to)


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would signal the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: alive
        return True
    return True


def fail_orphaned_trials(study: "optuna.Study", stale_after_s: float | None = None) -> list[int]:
    """Mark FAIL the RUNNING trials whose sweeper process, on this machine, is gone, and
    (with ``stale_after_s``) those running longer than that; returns their numbers.

    A process id reused by an unrelated process keeps its trial RUNNING: set
    ``fail_stale_after_s`` for that, and for trials of other machines.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    host, now, failed = socket.gethostname(), datetime.now(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get(PID_ATTR)
        reason = None
        started = trial.datetime_start
        # At start this process owns no trial yet: its own id means an earlier owner.
        if (
            trial.user_attrs.get(HOST_ATTR) == host
            and isinstance(pid, int)
            and (pid == os.getpid() or not _pid_alive(pid))
        ):
            reason = f"left RUNNING by process {pid}, which is gone"
        elif (
            stale_after_s is not None
            and started is not None
            and (now - started).total_seconds() > stale_after_s
        ):
            reason = f"RUNNING for more than {stale_after_s:g} s"
        if reason is None:
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, FAIL_REASON_ATTR, reason)
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        except UpdateFinishedTrialError:  # its owner, or another sweeper, finished it
            continue
        log.warning("trial %d %s: marked FAIL", trial.number, reason)
        failed.append(trial.number)
    return failed


class Outcome(NamedTuple):
    """How a job ended, as Optuna is told."""

    state: "TrialState"
    values: list[float] | None = None
    reason: str = ""
    error: BaseException | None = None


def objective_values(result: Any, objectives: Sequence[str]) -> list[float]:
    """The objectives' values in a job's result: a mapping by name, or a single number."""
    if isinstance(result, Mapping):
        missing = [name for name in objectives if name not in result]
        if missing:
            have = ", ".join(str(key) for key in result) or "nothing"
            raise ValueError(f"the job's result has no {', '.join(missing)} (it has: {have})")
        return [float(result[name]) for name in objectives]
    if result is None or isinstance(result, str | bytes):
        raise TypeError(
            f"the job returned {result!r}: return a number or a mapping of metric names to numbers"
        )
    if len(objectives) != 1:
        raise TypeError(
            f"the job returned one number, but the study has {len(objectives)} objectives "
            f"({', '.join(objectives)}): return a mapping of metric names to numbers"
        )
    return [float(result)]


def interpret_result(
    job_return: "JobReturn", objectives: Sequence[str], flagged_pruned: bool = False
) -> Outcome:
    """COMPLETE with values, PRUNED, or FAIL with a reason, from a launcher's ``JobReturn``."""
    from hydra.core.utils import JobStatus
    from optuna.trial import TrialState

    from rnnrec.tuning import PRUNED_TAG, is_pruned

    # Reading return_value of a failed job prints "Error executing job" before re-raising:
    # right for a crash, noise for a pruned trial, which is looked at first.
    failure = getattr(job_return, "_return_value", None)
    if job_return.status == JobStatus.FAILED and is_pruned(failure):
        return Outcome(TrialState.PRUNED, reason=str(failure))
    try:
        result = job_return.return_value  # re-raises the job's exception
    except Exception as error:
        if is_pruned(error):
            return Outcome(TrialState.PRUNED, reason=str(error))
        return Outcome(TrialState.FAIL, reason=f"{type(error).__name__}: {error}", error=error)
    if flagged_pruned or (isinstance(result, Mapping) and result.get(PRUNED_TAG)):
        return Outcome(TrialState.PRUNED, reason="the job reported pruning")
    try:
        values = objective_values(result, objectives)
    except (TypeError, ValueError) as error:
        return Outcome(TrialState.FAIL, reason=str(error))
    nan = [name for name, value in zip(objectives, values, strict=True) if math.isnan(value)]
    if nan:
        return Outcome(TrialState.FAIL, reason=f"{', '.join(nan)} is NaN")
    return Outcome(TrialState.COMPLETE, values=values)


def consecutive_runs(numbers: Sequence[int]) -> list[tuple[int, int]]:
    """Index ranges [start, stop) of ``numbers`` that count up by one."""
    runs: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            runs.append((start, i))
            start = i
    return runs


def summarize(
    study: "optuna.Study", objectives: Sequence[str], n_trials: int, storage_url: str | None
) -> dict[str, Any]:
    """Trial counts, failures, and the best trial (one objective) or the Pareto front."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    states = {
        "complete": TrialState.COMPLETE,
        "pruned": TrialState.PRUNED,
        "failed": TrialState.FAIL,
        "running": TrialState.RUNNING,
        "waiting": TrialState.WAITING,
    }
    counts = {name: sum(1 for t in trials if t.state == state) for name, state in states.items()}

    def describe(trial: "optuna.trial.FrozenTrial") -> dict[str, Any]:
        values = dict(zip(objectives, trial.values or [], strict=False))
        return {"number": trial.number, "params": dict(trial.params), "values": values}

    summary: dict[str, Any] = {
        "study_name": study.study_name,
        "storage": mask_url(storage_url),
        "objectives": list(objectives),
        "directions": [d.name.lower() for d in study.directions],
        "n_trials": n_trials,
        "trials": counts,
        "failures": [
            {"number": t.number, "reason": str(t.user_attrs.get(FAIL_REASON_ATTR, "unknown"))}
            for t in trials
            if t.state == TrialState.FAIL
        ],
    }
    if len(study.directions) == 1:
        summary["best_trial"] = describe(study.best_trial) if counts["complete"] else None
    else:
        summary["pareto_front"] = [describe(trial) for trial in study.best_trials]
    return summary


def _values_text(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value:.6g}" for name, value in values.items())


def log_summary(summary: Mapping[str, Any]) -> None:
    counts = summary["trials"]
    log.info(
        "study %s: %d complete, %d pruned, %d failed of %d requested (%s)",
        summary["study_name"],
        counts["complete"],
        counts["pruned"],
        counts["failed"],
        summary["n_trials"],
        summary["storage"],
    )
    for failure in summary["failures"]:
        log.info("  failed trial %d: %s", failure["number"], failure["reason"])
    if "pareto_front" in summary:
        front = summary["pareto_front"]
        log.info("Pareto front (%d trials):", len(front))
        for trial in front:
            log.info(
                "  trial %d: %s with %s",
                trial["number"],
                _values_text(trial["values"]),
                trial["params"],
            )
    elif summary.get("best_trial"):
        best = summary["best_trial"]
        log.info(
            "best trial %d: %s with %s",
            best["number"],
            _values_text(best["values"]),
            best["params"],
        )
    else:
        log.warning("no trial completed")


# ----------------------------------------------------------------------------- sweeper


def _plain(value: Any) -> Any:
    """Config nodes as plain Python containers."""
    if isinstance(value, DictConfig) or OmegaConf.is_list(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


class RnnrecOptunaSweeper(Sweeper):
    """Hydra sweeper asking trials of an Optuna study and telling it the jobs' results."""

    def __init__(
        self,
        sampler: str = "tpe",
        sampler_kwargs: Mapping[str, Any] | None = None,
        seed: int | None = None,
        direction: str | Sequence[str] = "maximize",
        objectives: Sequence[str] = ("val/ndcg_10",),
        n_trials: int = 20,
        n_jobs: int = 1,
        storage: str | None = None,
        study_name: str | None = None,
        pruner: Mapping[str, Any] | str | None = None,
        params: Mapping[str, Any] | None = None,
        fail_stale_after_s: float | None = None,
    ) -> None:
        from rnnrec.tuning import build_pruner

        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}: use one of {', '.join(SAMPLERS)}")
        direction = _plain(direction)
        directions = [direction] if isinstance(direction, str) else list(direction)
        self.directions = [str(d).lower() for d in directions]
        if any(d not in DIRECTIONS for d in self.directions):
            raise ValueError(f"direction {direction}: use maximize or minimize (or a list)")
        self.objectives = [str(name) for name in _plain(objectives)]
        if len(self.objectives) != len(self.directions):
            raise ValueError(
                f"{len(self.objectives)} objectives ({', '.join(self.objectives)}) need as many "
                f"directions, got {self.directions}"
            )
        if sampler == "cmaes" and len(self.objectives) > 1:
            raise ValueError("sampler cmaes optimises one objective: use nsgaii or tpe")
        if int(n_trials) < 1 or int(n_jobs) < 1:
            raise ValueError(f"n_trials ({n_trials}) and n_jobs ({n_jobs}) must be at least 1")
        pruner = _plain(pruner)
        spec = {"name": pruner} if isinstance(pruner, str) else dict(pruner or {})
        spec = {key: value for key, value in spec.items() if value is not None}
        spec.setdefault("name", "none")
        build_pruner(spec)  # fails now on a bad name or argument, not after the first trial
        if spec["name"] != "none" and len(self.objectives) > 1:
            log.warning(
                "Optuna cannot prune multi-objective studies: pruner %s is ignored", spec["name"]
            )
            spec = {"name": "none"}
        self.sampler = sampler
        self.sampler_kwargs = dict(_plain(sampler_kwargs) or {})
        self.seed = seed
        self.n_trials = int(n_trials)
        self.n_jobs = int(n_jobs)
        self.storage = storage
        self.study_name = study_name
        self.pruner_spec: dict[str, Any] = spec
        self.params: dict[str, Any] = dict(_plain(params) or {})
        self.fail_stale_after_s = fail_stale_after_s
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None

    def setup(
        self, *, hydra_context: "HydraContext", task_function: "TaskFunction", config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ------------------------------------------------------------------ the sweep

    def sweep(self, arguments: list[str]) -> list[Sequence["JobReturn"]]:
        assert self.config is not None and self.launcher is not None
        assert self.hydra_context is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space = parse_search_space([*params_as_overrides(self.params), *arguments], parser)
        if not space.distributions:
            log.warning("no search space (no sweep in params or overrides): trials are alike")
        storage_url = self._storage_url(sweep_dir)
        study = self._open_study(storage_url, space)
        n_trials = self._budget(space)
        fail_orphaned_trials(study, self.fail_stale_after_s)
        log.info(
            "study %s (%s): sampler %s, pruner %s, %s %s; %d of %d trials taken",
            study.study_name,
            mask_url(storage_url),
            self.sampler,
            self.pruner_spec["name"],
            "/".join(self.directions),
            ", ".join(self.objectives),
            count_taken(study),
            n_trials,
        )

        returns: list[Sequence[JobReturn]] = []
        while trials := self._ask_batch(study, space, n_trials):
            returns.append(self._run_batch(study, space, trials, storage_url))

        summary = summarize(study, self.objectives, n_trials, storage_url)
        log_summary(summary)
        OmegaConf.save(OmegaConf.create(summary), sweep_dir / RESULTS_FILE)
        from rnnrec.tuning.plots import write_study_plots

        write_study_plots(study, sweep_dir, self.objectives)
        return returns

    def _storage_url(self, sweep_dir: Path) -> str | None:
        url = resolve_storage_url(self.storage, Path.cwd())
        if url is None and self.pruner_spec["name"] != "none":
            # Jobs cannot reach a study in this process's memory, and pruning happens in the
            # jobs: keep the study in a journal file of the sweep instead.
            url = f"journal:{sweep_dir / JOURNAL_FILE}"
            log.info("pruning needs a storage that jobs reach: the study is kept in %s", url)
        if url is not None and self.study_name is None and self.storage is not None:
            log.warning("storage without study_name: Optuna names a new study, nothing resumes")
        return url

    def _open_study(self, storage_url: str | None, space: SearchSpace) -> "optuna.Study":
        import optuna
        from optuna.study import StudyDirection

        from rnnrec.tuning import PRUNER_ATTR, build_pruner, make_storage

        if storage_url is not None and storage_url.startswith("sqlite:///"):
            database = storage_url[len("sqlite:///") :].split("?", 1)[0]
            if database and not database.startswith(":memory:"):
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        self._make_sampler(space, self.seed)  # a bad sampler setting fails before the study
        retryable = _retryable_errors()
        for attempt in range(1, 6):
            try:
                study = optuna.create_study(
                    storage=make_storage(storage_url),
                    sampler=optuna.samplers.RandomSampler(),  # replaced below
                    pruner=build_pruner(self.pruner_spec),
                    study_name=self.study_name,
                    directions=[StudyDirection[d.upper()] for d in self.directions],
                    load_if_exists=True,
                )
                break
            except retryable as error:
                # Processes starting together on a new SQLite file race to create its tables.
                if attempt == 5:
                    raise
                log.debug("opening the study failed (%s); retrying", error)
                time.sleep(0.3 * attempt + random.random() * 0.3)
        stored = [d.name.lower() for d in study.directions]
        if stored != self.directions:
            raise ValueError(
                f"study {study.study_name} in {mask_url(storage_url)} optimises {stored}, but "
                f"this sweep asks for {self.directions}: use another study_name"
            )
        # A seeded sampler restarted on a resumed study would draw its first points again:
        # shift the seed by the trials already there (still reproducible run after run).
        seed = None if self.seed is None else self.seed + count_taken(study)
        study.sampler = self._make_sampler(space, seed)
        warn_if_fixed_overrides_changed(study, space.fixed)
        # Jobs rebuild the pruner from the study; several sweepers write the same value.
        study.set_user_attr(PRUNER_ATTR, self.pruner_spec)
        return study

    def _make_sampler(self, space: SearchSpace, seed: int | None) -> "optuna.samplers.BaseSampler":
        import optuna

        kwargs = dict(self.sampler_kwargs)
        if seed is not None:
            kwargs.setdefault("seed", seed)
        if self.sampler == "grid":
            return _grid_sampler(grid_space(space), **kwargs)
        if self.sampler == "random":
            return optuna.samplers.RandomSampler(**kwargs)
        if self.sampler == "nsgaii":
            return optuna.samplers.NSGAIISampler(**kwargs)
        if self.sampler == "cmaes":
            try:
                import cmaes  # noqa: F401  (Optuna imports it only when sampling)
            except ImportError as error:
                raise ImportError("sampler cmaes needs the cmaes package: pip install cmaes") from (
                    error
                )
            return optuna.samplers.CmaEsSampler(**kwargs)
        return optuna.samplers.TPESampler(**kwargs)

    def _budget(self, space: SearchSpace) -> int:
        if self.sampler != "grid":
            return self.n_trials
        size = math.prod(len(values) for values in grid_space(space).values())
        if size < self.n_trials:
            log.info("the grid has %d points: n_trials %d is cut to %d", size, self.n_trials, size)
        return min(size, self.n_trials)

    def _ask_batch(
        self, study: "optuna.Study", space: SearchSpace, n_trials: int
    ) -> list["optuna.Trial"]:
        """Up to ``n_jobs`` new trials, never more than the budget left in the storage."""
        from optuna.trial import TrialState

        trials: list[optuna.Trial] = []
        while len(trials) < self.n_jobs and count_taken(study) < n_trials:
            trial = study.ask(space.distributions)
            if count_taken(study, up_to=trial.number) > n_trials:
                # Another process asked at the same moment and got the last place (trial
                # numbers follow creation order). Hand this trial back as WAITING, which a
                # later ask reuses, so that finished trials never pass n_trials.
                study._storage.set_trial_state_values(trial._trial_id, TrialState.WAITING)
                break
            trial.set_user_attr(HOST_ATTR, socket.gethostname())
            trial.set_user_attr(PID_ATTR, os.getpid())
            trials.append(trial)
        return trials

    def _job_keys(self, study: "optuna.Study", trial: "optuna.Trial", url: str | None) -> list[str]:
        if url is None:  # a study in memory: nothing to reconnect to
            return []
        values = {
            "storage": url,
            "study_name": study.study_name,
            "trial_id": trial._trial_id,
            "trial_number": trial.number,
            "monitor": self.objectives[0],
        }
        return [f"++optuna.{key}={format_value(values[key])}" for key in JOB_KEYS]

    def _run_batch(
        self,
        study: "optuna.Study",
        space: SearchSpace,
        trials: list["optuna.Trial"],
        storage_url: str | None,
    ) -> list["JobReturn"]:
        assert self.launcher is not None
        batch = [
            [*space.overrides(trial.params), *self._job_keys(study, trial, storage_url)]
            for trial in trials
        ]
        results: list[JobReturn] = []
        try:
            # Composes every job's config now: a config error stops the sweep here.
            self.validate_batch_is_legal(batch)
            # Job numbers (and so job folders) are trial numbers, unique in the study even
            # across resumed runs; trials asked by another process in between split a batch.
            for start, stop in consecutive_runs([trial.number for trial in trials]):
                launched = self.launcher.launch(
                    batch[start:stop], initial_job_idx=trials[start].number
                )
                for trial, job_return in zip(trials[start:stop], launched, strict=True):
                    self._tell(study, trial, job_return)
                results.extend(launched)
        except BaseException as error:
            self._fail_unfinished(study, trials, f"the sweep stopped: {type(error).__name__}")
            raise
        return results

    def _tell(self, study: "optuna.Study", trial: "optuna.Trial", job_return: "JobReturn") -> None:
        from optuna.trial import TrialState

        from rnnrec.tuning import PRUNED_ATTR

        flagged = bool(trial.user_attrs.get(PRUNED_ATTR, False))
        outcome = interpret_result(job_return, self.objectives, flagged)
        if outcome.state == TrialState.FAIL:
            trial.set_user_attr(FAIL_REASON_ATTR, outcome.reason[:1000])
        study.tell(trial, values=outcome.values, state=outcome.state, skip_if_finished=True)
        if outcome.state == TrialState.COMPLETE:
            assert outcome.values is not None
            values = dict(zip(self.objectives, outcome.values, strict=True))
            log.info("trial %d: %s with %s", trial.number, _values_text(values), trial.params)
        elif outcome.state == TrialState.PRUNED:
            log.info("trial %d pruned: %s", trial.number, outcome.reason)
        else:
            log.warning("trial %d failed: %s", trial.number, outcome.reason, exc_info=outcome.error)

    @staticmethod
    def _fail_unfinished(study: "optuna.Study", trials: list["optuna.Trial"], reason: str) -> None:
        """Mark FAIL the trials of an interrupted batch, so a resumed sweep does not wait."""
        from optuna.trial import TrialState

        for trial in trials:
            try:
                if not trial.study._storage.get_trial(trial._trial_id).state.is_finished():
                    trial.set_user_attr(FAIL_REASON_ATTR, reason)
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            except Exception as error:  # the storage itself may be what broke
                log.debug("could not mark trial %d FAIL: %s", trial.number, error)
                continue
        log.warning("%s: unfinished trials of the batch marked FAIL", reason)
