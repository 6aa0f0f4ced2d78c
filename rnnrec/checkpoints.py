"""What rnnrec adds to Lightning checkpoints, and how a resumed run finds and checks one.

Lightning's checkpoint restores the weights, the optimiser, the schedulers, the loop counters
and the state of callbacks such as early stopping. :class:`ResumeState` adds the rest of what
an exact continuation needs, under the checkpoint entry :data:`CHECKPOINT_KEY`: a format
version, the model config, the MLflow run id, and the global random states (torch, CUDA,
numpy, Python) and those of the model's own samplers. The data module keeps its shuffle in
the checkpoint itself (``SequenceDataModule.state_dict``).

Everything stored is a tensor, a string, a number, ``None`` or a list or dict of those, so a
checkpoint loads with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import logging
import pickle
import random
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig, OmegaConf

from rnnrec.models.ranking_module import FINGERPRINT_KEY

log = logging.getLogger(__name__)

# Checkpoint entry holding what rnnrec adds (see ResumeState).
CHECKPOINT_KEY = "rnnrec"
# Raised whenever the meaning of CHECKPOINT_KEY's contents changes; checked on resume.
FORMAT_VERSION = 1
# ckpt_path=last resumes from the newest file matching this in paths.checkpoint_dir.
LAST_PATTERN = "last*.ckpt"
# At most this many differing config keys are named in an error.
MAX_LISTED_DIFFERENCES = 10


@runtime_checkable
class RandomStateful(Protocol):
    """An object drawing from its own random generator (a negative sampler, for instance)."""

    def random_state(self) -> dict[str, Any]:
        """Its random state as tensors and plain values."""
        ...

    def load_random_state(self, state: Mapping[str, Any]) -> None:
        """Continue from a state returned by :meth:`random_state`."""
        ...


@dataclass(frozen=True)
class ResumePoint:
    """A checked checkpoint to continue from, and the MLflow run it belongs to."""

    path: Path
    mlflow_run_id: str | None
    mlflow_tracking_uri: str | None
    # Training epochs the checkpoint has finished (None: not recorded).
    epochs_done: int | None = None


def model_config_summary(model_cfg: DictConfig) -> dict[str, str]:
    """The resolved model config, flattened to ``{"encoder.hidden_size": "64", ...}``."""
    resolved = OmegaConf.to_container(model_cfg, resolve=True)
    assert isinstance(resolved, dict)
    return dict(_flatten({str(key): value for key, value in resolved.items()}))


def _flatten(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", str(value)


def rnnrec_version() -> str:
    """The installed rnnrec version, or ``unknown`` outside an installation."""
    try:
        return metadata.version("rnnrec")
    except metadata.PackageNotFoundError:
        return "unknown"


# ----------------------------------------------------------------- finding a checkpoint
def newest_last_checkpoint(folder: str | Path, *, below: bool = False) -> Path | None:
    """The most recently written ``last*.ckpt`` in ``folder`` (``below``: or any subfolder)."""
    found = (Path(folder).rglob if below else Path(folder).glob)(LAST_PATTERN)
    return max(found, key=lambda path: path.stat().st_mtime, default=None)


def resolve_checkpoint(ckpt_path: str | None, checkpoint_dir: str | Path) -> Path | None:
    """The checkpoint file that ``ckpt_path`` names: ``None``, a file, or ``last``.

    ``last`` is the newest ``last*.ckpt`` in ``checkpoint_dir`` (``last.ckpt``, or
    ``last-v1.ckpt`` when a new run wrote into a folder that already had one).
    """
    if ckpt_path is None or str(ckpt_path) == "":
        return None
    if str(ckpt_path) == "last":
        newest = newest_last_checkpoint(checkpoint_dir)
        if newest is None:
            raise FileNotFoundError(
                f"ckpt_path=last: no {LAST_PATTERN} in {checkpoint_dir} (paths.checkpoint_dir). "
                "Point it at the interrupted run's folder, e.g. hydra.run.dir=<that run's "
                "output folder> or paths.output_dir=..., or pass the checkpoint file as ckpt_path"
            )
        return newest.resolve()
    path = Path(ckpt_path).expanduser()
    if path.is_dir():
        # A run's output folder holds its checkpoints one level down, in checkpoints/.
        newest = newest_last_checkpoint(path, below=True)
        hint = f": the newest in it is ckpt_path={newest}" if newest else ""
        raise IsADirectoryError(f"ckpt_path={ckpt_path} is a folder; name a checkpoint file{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: {path} is not a file")
    return path.resolve()


def read_resume_point(
    path: Path, model_config: Mapping[str, str], data_fingerprint: str | None
) -> ResumePoint:
    """Load ``path`` safely and check that this run can continue from it.

    Raises:
        ValueError: naming ``path`` and what differs, when the file is not a checkpoint that
            loads with ``weights_only=True``, was written by an rnnrec without resume support
            or with another format version, or holds another model config or other data.
    """
    # torch.save writes zip archives; anything else would fail below with a message about
    # memory mapping that does not say what is wrong.
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"cannot resume from {path}: it is not a checkpoint (torch.save writes zip "
            "archives; this file is not one)"
        )
    try:
        # mmap: the tensors stay on disk; only the small entries below are read.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        raise ValueError(
            f"cannot resume from {path}: it does not load as a checkpoint with "
            f"torch.load(weights_only=True): {error}"
        ) from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f"cannot resume from {path}: it holds no checkpoint dictionary")

    entry = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(entry, dict) or "format_version" not in entry:
        raise ValueError(
            f"cannot resume from {path}: it has no '{CHECKPOINT_KEY}' entry, so it was written "
            "by another program or by an rnnrec from before resumable checkpoints"
        )
    if entry["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"cannot resume from {path}: its checkpoint format is version "
            f"{entry['format_version']} (written by rnnrec {entry.get('rnnrec_version')}), "
            f"this rnnrec {rnnrec_version()} reads version {FORMAT_VERSION}"
        )

    differences = config_differences(entry.get("model_config") or {}, model_config)
    if differences:
        listed = "; ".join(differences[:MAX_LISTED_DIFFERENCES])
        more = len(differences) - MAX_LISTED_DIFFERENCES
        raise ValueError(
            f"cannot resume from {path}: it was trained with another model config "
            f"({listed}{f'; and {more} more' if more > 0 else ''}). The model config "
            "holds the encoder, attention, optimizer and scheduler settings too: "
            "model.encoder.hidden_size is set as encoder.hidden_size, model.optimizer.lr "
            "as optimizer.lr. Resume with the checkpoint's settings, or start afresh with "
            "ckpt_path=null"
        )
    stored_fingerprint = checkpoint.get(FINGERPRINT_KEY)
    if data_fingerprint and stored_fingerprint and stored_fingerprint != data_fingerprint:
        raise ValueError(
            f"cannot resume from {path}: it was trained on data {stored_fingerprint}, this "
            f"run's data is {data_fingerprint} (another file, or other data.* settings)"
        )
    # Checkpoints are written at the end of an epoch, whose 0-based index they keep.
    epoch = checkpoint.get("epoch")
    epochs_done = int(epoch) + 1 if isinstance(epoch, int) else None
    return ResumePoint(
        path, entry.get("mlflow_run_id"), entry.get("mlflow_tracking_uri"), epochs_done
    )


def config_differences(stored: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """``model.<key>: checkpoint <a>, now <b>`` for every key whose value differs."""
    return [
        f"model.{key}: checkpoint {stored.get(key, '<unset>')}, now {current.get(key, '<unset>')}"
        for key in sorted(set(stored) | set(current))
        if stored.get(key) != current.get(key)
    ]


# ----------------------------------------------------------------- random states
def random_stateful_parts(module: torch.nn.Module) -> dict[str, RandomStateful]:
    """Attributes of ``module`` and its submodules that keep their own random generator."""
    parts: dict[str, RandomStateful] = {}
    for name, submodule in module.named_modules():
        for attribute, value in vars(submodule).items():
            if isinstance(value, RandomStateful):
                parts[f"{name}.{attribute}" if name else attribute] = value
    return parts


def capture_random_state(parts: Mapping[str, RandomStateful]) -> dict[str, Any]:
    """This process's random states, as tensors and plain values only."""
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),  # (624,)
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),  # (625,)
            "gauss_next": py_gauss,
        },
        "parts": {name: part.random_state() for name, part in parts.items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_random_state(state: Mapping[str, Any], parts: Mapping[str, RandomStateful]) -> None:
    """Set every random state captured by :func:`capture_random_state`."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = state["python"]
    internal = tuple(int(value) for value in python_state["internal"].tolist())
    random.setstate((python_state["version"], internal, python_state["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])

    for name, part in parts.items():
        if name in state["parts"]:
            part.load_random_state(state["parts"][name])
        else:
            log.warning("the checkpoint holds no random state for %s; it starts afresh", name)


class ResumeState(pl.Callback):
    """Writes :data:`CHECKPOINT_KEY` into every checkpoint and restores its random states.

    Random states are restored when fitting starts, after Lightning has restored the rest
    and before it builds the training loader, whose first batch it fetches at once: the first
    resumed epoch then draws what it would have drawn in an uninterrupted run. Under several
    processes each stores and gets back its own.

    Args:
        model_config: :func:`model_config_summary` of the run, compared on resume.
        mlflow_run_id: the run a resumed training logs into.
        mlflow_tracking_uri: its store, named in errors when a resumed run cannot find it.
    """

    def __init__(
        self,
        model_config: Mapping[str, str],
        mlflow_run_id: str | None,
        mlflow_tracking_uri: str | None,
    ) -> None:
        self.model_config = dict(model_config)
        self.mlflow_run_id = mlflow_run_id
        self.mlflow_tracking_uri = mlflow_tracking_uri
        self._pending: Mapping[str, Any] | None = None

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        state = capture_random_state(random_stateful_parts(pl_module))
        # Lightning builds the checkpoint on every process and rank 0 writes it.
        states = _gather(state, trainer.world_size)
        checkpoint[CHECKPOINT_KEY] = {
            "format_version": FORMAT_VERSION,
            "rnnrec_version": rnnrec_version(),
            "model_config": dict(self.model_config),
            "mlflow_run_id": self.mlflow_run_id,
            "mlflow_tracking_uri": self.mlflow_tracking_uri,
            "random_states": states,
        }

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        entry = checkpoint.get(CHECKPOINT_KEY) or {}
        states = entry.get("random_states") or []
        # Lightning also calls this when it validates or tests a checkpoint: nothing to do.
        if not states or trainer.state.fn != TrainerFn.FITTING:
            return
        if len(states) != trainer.world_size:
            log.warning(
                "the checkpoint holds random states of %d processes, this run has %d: "
                "each continues from process 0's",
                len(states),
                trainer.world_size,
            )
        rank = trainer.global_rank if len(states) == trainer.world_size else 0
        self._pending = states[rank]

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore(pl_module)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Strategies that restore checkpoints after on_fit_start (DeepSpeed, FSDP) land here:
        # the first batch was drawn already, so the first resumed epoch differs slightly.
        self._restore(pl_module)

    def _restore(self, pl_module: pl.LightningModule) -> None:
        if self._pending is None:
            return
        restore_random_state(self._pending, random_stateful_parts(pl_module))
        self._pending = None
        log.info("random states restored from the checkpoint")


def _gather(state: dict[str, Any], world_size: int) -> list[dict[str, Any]]:
    if world_size <= 1 or not torch.distributed.is_initialized():
        return [state]
    gathered: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(gathered, state)
    return [dict(item) for item in gathered]
