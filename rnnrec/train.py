"""``rnnrec-train``: train and evaluate one recommender, tracked in MLflow (a Hydra app)."""

from __future__ import annotations

import inspect
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
import torch
from hydra.utils import get_class, instantiate
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from rnnrec import checkpoints
from rnnrec.data.datamodule import SequenceDataModule
from rnnrec.models.ranking_module import RankingModule
from rnnrec.tracking import mlflow_run, sweep_run
from rnnrec.tracking.timing import EpochTimer
from rnnrec.tuning.pruning import PRUNED_TAG, is_pruned, pruning_callback, trial_tags

log = logging.getLogger(__name__)

# Sampled losses by class, as their conf/loss files name them (for run names).
SAMPLED_LOSS_NAMES = {
    "SampledSoftmax": "sampled_ce",
    "BPR": "bpr",
    "TOP1": "top1",
    "BPRMax": "bpr_max",
    "TOP1Max": "top1_max",
    "BCE": "bce",
    "GBCE": "gbce",
}

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def train(cfg: DictConfig) -> tuple[dict[str, float], str]:
    """Fit on the training split, select the best epoch on validation, evaluate on test.

    Returns every final metric, keyed as in MLflow (``test/ndcg_10``, ``time/fit_s``, ...),
    and the MLflow run id.
    """
    pl.seed_everything(cfg.seed, workers=True)
    check_task_fits_model(cfg)
    check_loss_fits_model(cfg)
    check_optimized_metric(cfg)
    for key in ("path", "test_path"):
        if cfg.data.get(key):
            # Recorded absolute, so the run's config finds the file from any folder later.
            cfg.data[key] = str(Path(cfg.data[key]).expanduser().resolve())

    datamodule: SequenceDataModule = instantiate(cfg.data)
    datamodule.load()
    log.info("data %s: %s", datamodule.name, datamodule.fingerprint)

    model = build_model(cfg.model, datamodule)
    if isinstance(model, RankingModule):
        model.data_fingerprint = datamodule.fingerprint
    num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("model %s with %d trainable parameters", type(model).__name__, num_params)
    model_config = checkpoints.model_config_summary(cfg.model)
    resume = find_resume_point(cfg, model, model_config, datamodule.fingerprint)

    tracking_uri = mlflow_run.resolve_tracking_uri(cfg.logger.tracking_uri)
    mlflow_run.ensure_experiment(tracking_uri, cfg.logger.experiment_name)
    logger = MLFlowLogger(
        experiment_name=cfg.logger.experiment_name,
        run_name=cfg.logger.run_name or default_run_name(cfg),
        tracking_uri=tracking_uri,
        tags={
            "git_commit": mlflow_run.git_commit(),
            "data_fingerprint": datamodule.fingerprint,
            **sweep_run.job_tags(),
            **trial_tags(cfg),
        },
        # A resumed training continues the checkpoint's run (None: a new run).
        run_id=resume.mlflow_run_id if resume else None,
    )
    if resume is not None and resume.mlflow_run_id and _main_process():
        mlflow_run.reopen_run(tracking_uri, resume)
    error: BaseException | None = None
    try:
        log_run_inputs(logger, cfg, datamodule, resumed=resume is not None)
        state = checkpoints.ResumeState(model_config, logger.run_id, tracking_uri)
        results = fit_and_test(cfg, datamodule, model, logger, state, resume)
        results["model/num_params"] = float(num_params)
        logger.log_metrics(results)
        return results, str(logger.run_id)
    except BaseException as caught:
        error = caught
        raise
    finally:
        status = mlflow_run.end_status(error)
        if is_pruned(error):
            # Optuna stopped a lagging trial: not a failure, and the UI can filter on the tag.
            status = "KILLED"
            logger.experiment.set_tag(logger.run_id, PRUNED_TAG, "true")
        logger.experiment.set_terminated(logger.run_id, status)
        if _main_process():
            log.info("MLflow run %s ended %s", logger.run_id, status)
            if error is not None and status != "FINISHED" and not is_pruned(error):
                hint_resume(cfg.paths.checkpoint_dir)


def hint_resume(checkpoint_dir: str) -> None:
    """Say how to continue an interrupted training, when it left a checkpoint to resume from."""
    newest = checkpoints.newest_last_checkpoint(checkpoint_dir)
    if newest is not None:
        log.info("to continue this run, rerun the same command with ckpt_path=%s", newest)


def check_task_fits_model(cfg: DictConfig) -> None:
    """Extra task heads need a model with a shared encoder (one whose config has ``task``)."""
    task = cfg.get("task") or {}
    heads = list(task.get("heads") or {})
    if heads and "task" not in cfg.model:
        raise ValueError(
            f"task={task.get('name')} adds heads ({', '.join(heads)}) that only sequential "
            f"models carry; model {cfg.model._target_} has none: use task=next_item"
        )


def check_loss_fits_model(cfg: DictConfig) -> None:
    """A loss other than full softmax only means something to a model that takes one (one
    whose config has ``loss``); the baselines have their own objective and would ignore it."""
    chosen = cfg.get("loss") or {}
    if "loss" in cfg.model or chosen.get("_target_", "").endswith(".FullSoftmaxCrossEntropy"):
        return
    name = str(chosen.get("_target_", "?")).rsplit(".", 1)[-1]
    raise ValueError(
        f"the loss ({name}) applies to sequential models (model=sequential or sasrec); model "
        f"{cfg.model._target_} has its own objective and would ignore it: use loss=ce"
    )


def find_resume_point(
    cfg: DictConfig,
    model: pl.LightningModule,
    model_config: Mapping[str, str],
    data_fingerprint: str | None,
) -> checkpoints.ResumePoint | None:
    """The checked checkpoint that ``ckpt_path`` names, or ``None`` for a new run.

    A checkpoint outside ``paths.checkpoint_dir`` makes its folder the run's checkpoint
    folder, so that checkpoint selection keeps the best epoch saved before the interruption.
    """
    if not cfg.get("ckpt_path"):
        return None
    path = checkpoints.resolve_checkpoint(str(cfg.ckpt_path), cfg.paths.checkpoint_dir)
    assert path is not None
    if not getattr(model, "trainable", True):
        raise ValueError(
            f"ckpt_path={cfg.ckpt_path}: model {type(model).__name__} has no training to "
            "resume; use ckpt_path=null"
        )
    point = checkpoints.read_resume_point(path, model_config, data_fingerprint)
    # Lightning would refuse this only after the MLflow run was reopened, leaving it FAILED.
    max_epochs = cfg.trainer.get("max_epochs")
    done = point.epochs_done
    if done is not None and max_epochs not in (None, -1) and max_epochs < done:
        raise ValueError(
            f"ckpt_path={cfg.ckpt_path}: {path} has finished {done} epochs, more than "
            f"trainer.max_epochs={max_epochs}; set trainer.max_epochs to {done} or more"
        )
    if path.parent != Path(cfg.paths.checkpoint_dir).expanduser().resolve():
        log.info("checkpoints go on in %s, beside the one resumed from", path.parent)
        cfg.paths.checkpoint_dir = str(path.parent)
    if point.mlflow_run_id is None:
        log.warning("checkpoint %s names no MLflow run; the resumed training gets a new one", path)
    log.info("resuming from %s (MLflow run %s)", path, point.mlflow_run_id)
    return point


def default_run_name(cfg: DictConfig) -> str:
    """``data-model``, e.g. ``ml100k-gru``, ``ml100k-lstm-additive``, ``ml100k-pop``, or with a
    sampled loss ``ml100k-gru-bpr_max-mixed``."""
    target = str(cfg.model._target_).rsplit(".", 1)[-1]
    if target != "SequentialRecommender":
        short = {"PopularityRecommender": "pop", "ItemKNNRecommender": "itemknn"}
        return f"{cfg.data.name}-{short.get(target, target.removesuffix('Recommender').lower())}"
    encoder = cfg.model.encoder
    parts = [str(encoder.get("cell", "sasrec"))]
    attention = str(cfg.model.attention.get("_target_", "")).rsplit(".", 1)[-1]
    if attention and attention != "LastState":
        parts.append(attention.removesuffix("Attention").lower())
    loss = str(cfg.model.loss.get("_target_", "")).rsplit(".", 1)[-1]
    if loss in SAMPLED_LOSS_NAMES:
        parts += [SAMPLED_LOSS_NAMES[loss], str(cfg.model.sampler.name)]
    return "-".join([str(cfg.data.name), *parts])


def check_optimized_metric(cfg: DictConfig) -> None:
    """Fail before training if early stopping would watch a metric that is never logged."""
    name = str(cfg.optimized_metric)
    _, _, cut_off = name.rpartition("_")
    if name.startswith("val/") and cut_off.isdigit() and int(cut_off) not in cfg.eval.ks:
        raise ValueError(
            f"optimized_metric={name} needs K={cut_off} in eval.ks (now {list(cfg.eval.ks)}); "
            f"add it, or pick another optimized_metric"
        )


def build_model(model_cfg: DictConfig, datamodule: SequenceDataModule) -> pl.LightningModule:
    """Instantiate the model config, passing the data facts its constructor asks for.

    Facts are computed only when asked for: ``pretrained_item_vectors`` (from the model's
    ``embedding`` settings, cached) may take a while. Task heads (``model.task.heads``) are
    checked against the data first, so a head whose data is missing fails before training.
    """
    from rnnrec.models.itemknn import training_matrix
    from rnnrec.models.pretraining import cached_item_vectors
    from rnnrec.models.user_fusion import users_with_training_windows

    datamodule.load()
    session_parallel = bool(getattr(datamodule, "session_parallel", False))

    def interactions() -> Any:
        if session_parallel:
            raise ValueError(
                f"data {datamodule.name} holds sessions without users: models that need "
                "a user-item matrix (itemknn, bprmf) do not apply to it"
            )
        assert datamodule.interactions is not None
        return datamodule.interactions

    embedding = model_cfg.get("embedding") or {}
    heads = set((model_cfg.get("task") or {}).get("heads") or {})
    if "rating" in heads:
        datamodule.require_ratings("task.rating")
    if "genre" in heads:
        datamodule.genre_matrix("task.genre")  # reads the item file now; kept for the fact

    def pretrained_item_vectors() -> Any:
        if embedding.get("name", "random") != "pretrained":
            return None
        return cached_item_vectors(datamodule, embedding, int(model_cfg.embedding_size))

    return build_model_from_facts(
        model_cfg,
        {
            "num_items": lambda: datamodule.num_items,
            "item_counts": datamodule.train_item_counts,
            # Session data has no users: None lets the model say that cf needs them.
            "num_users": lambda: None if session_parallel else interactions().num_users,
            "known_users": lambda: (
                None
                if session_parallel
                else users_with_training_windows(
                    interactions().user[datamodule.train_starts], interactions().num_users
                )
            ),
            "pretrained_item_vectors": pretrained_item_vectors,
            "train_matrix": lambda: training_matrix(interactions(), datamodule.split.train_end),
            "genre_matrix": lambda: (
                datamodule.genre_matrix("task.genre") if "genre" in heads else None
            ),
            "session_parallel": lambda: session_parallel,
            "rating_mean": lambda: (
                datamodule.train_rating_mean("task.rating") if "rating" in heads else None
            ),
        },
    )


def build_model_from_facts(
    model_cfg: DictConfig, available: dict[str, Callable[[], Any]]
) -> pl.LightningModule:
    """Instantiate ``model_cfg`` with those of ``available`` that its constructor takes."""
    wanted = inspect.signature(get_class(model_cfg._target_)).parameters
    extra = {name: make() for name, make in available.items() if name in wanted}
    return instantiate(model_cfg, **extra)


def config_group_choices() -> dict[str, str]:
    """``{"loss": "bpr_max", ...}`` in a Hydra app; empty when composed without one (tests)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {k: str(v) for k, v in choices.items() if not k.startswith("hydra/") and v}


def log_run_inputs(
    logger: MLFlowLogger, cfg: DictConfig, datamodule: SequenceDataModule, resumed: bool = False
) -> None:
    """Params (flattened config), the full config file and the id maps of this run.

    A resumed run keeps its params (MLflow cannot change them); settings that differ now,
    such as a larger ``trainer.max_epochs``, are listed in a tag, and ``config.yaml`` is
    replaced by the config of the resumed training.
    """
    if not _main_process():
        return  # other processes of a distributed run log nothing
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    run_id = str(logger.run_id)
    params = mlflow_run.flatten(resolved)  # type: ignore[arg-type]
    # The config-group choices (loss=bpr_max, sampler=mixed, ...) as the user typed them:
    # the resolved config only shows their contents. rnnrec-report groups by them.
    params.update({f"choice.{k}": str(v) for k, v in config_group_choices().items()})
    if resumed:
        params = mlflow_run.params_to_add_on_resume(logger.experiment, run_id, params)
    mlflow_run.log_params(logger.experiment, run_id, params)
    with tempfile.TemporaryDirectory() as folder:
        config_file = Path(folder) / "config.yaml"
        config_file.write_text(OmegaConf.to_yaml(cfg, resolve=True))
        logger.experiment.log_artifact(logger.run_id, str(config_file))
        for path in datamodule.save_id_maps(Path(folder)):
            logger.experiment.log_artifact(logger.run_id, str(path), artifact_path="data")


def fit_and_test(
    cfg: DictConfig,
    datamodule: SequenceDataModule,
    model: pl.LightningModule,
    logger: MLFlowLogger,
    resume_state: checkpoints.ResumeState | None = None,
    resume: checkpoints.ResumePoint | None = None,
) -> dict[str, float]:
    """Train with early stopping on validation, then validate and test the best checkpoint.

    With ``resume``, training continues from its checkpoint (weights, optimiser, schedulers,
    loop counters, callbacks and, through ``resume_state``, every random state).
    """
    timer = EpochTimer()
    callbacks: list[pl.Callback] = [timer]
    if resume_state is not None:
        callbacks.append(resume_state)
    callbacks += [instantiate(c) for c in cfg.callbacks.values()]
    pruning = pruning_callback(cfg)  # only inside an Optuna sweep with a storage
    if pruning is not None:
        callbacks.append(pruning)
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks)
    check_distributed_fits_data(trainer, datamodule)

    fit_seconds = 0.0
    best: str | None = None
    if getattr(model, "trainable", True):
        started = time.perf_counter()
        trainer.fit(
            model,
            datamodule=datamodule,
            ckpt_path=None if resume is None else str(resume.path),
            weights_only=True,
        )
        fit_seconds = time.perf_counter() - started + timer.resumed_fit_seconds
        best = best_checkpoint(trainer, cfg.optimized_metric)
        if best is None:
            log.warning("no best checkpoint was saved; evaluating the final weights")

    results: dict[str, float] = {}
    results.update(
        _floats(trainer.validate(model, datamodule=datamodule, ckpt_path=best, weights_only=True))
    )
    started = time.perf_counter()
    results.update(
        _floats(trainer.test(model, datamodule=datamodule, ckpt_path=best, weights_only=True))
    )
    results["time/test_s"] = time.perf_counter() - started
    # With a resumed run, fitting time and epochs count the epochs before the checkpoint too.
    results["time/fit_s"] = fit_seconds
    # A model without training (pop, itemknn) has no epochs: 0, like its fit time.
    results["time/epoch_s"] = timer.median_epoch_seconds if timer.epoch_seconds else 0.0
    results["train/epochs"] = float(len(timer.epoch_seconds))
    if timer.data_wait_shares:
        results["time/data_wait_share"] = timer.median_data_wait_share
    save_model_artifacts(logger, model, best, datamodule)
    return results


def check_distributed_fits_data(trainer: pl.Trainer, datamodule: Any) -> None:
    """Session-parallel batches carry recurrent states from one batch to the next, so they
    cannot be dealt out to several processes."""
    if trainer.world_size > 1 and getattr(datamodule, "session_parallel", False):
        raise ValueError(
            f"data {datamodule.name} is served in session-parallel batches, which several "
            f"processes cannot share (trainer.devices x num_nodes = {trainer.world_size}): "
            "train session data in one process (trainer=cpu or trainer=gpu)"
        )


def save_model_artifacts(
    logger: MLFlowLogger,
    model: pl.LightningModule,
    checkpoint: str | None,
    datamodule: SequenceDataModule,
) -> None:
    """Log what ``rnnrec-recommend`` needs: the best weights and every user's history.

    Weights are a plain state dict, loadable with ``weights_only=True``.
    """
    if not _main_process():
        return
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    else:
        state = model.state_dict()
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "model.pt"
        torch.save({"state_dict": state, "model_class": type(model).__name__}, weights)
        logger.experiment.log_artifact(logger.run_id, str(weights), artifact_path="model")
        histories = Path(folder) / "histories.npz"
        datamodule.save_histories(histories)
        logger.experiment.log_artifact(logger.run_id, str(histories), artifact_path="data")


def _main_process() -> bool:
    """False in the other processes of a distributed run, which log nothing to MLflow."""
    return getattr(rank_zero_only, "rank", 0) == 0


def best_checkpoint(trainer: pl.Trainer, metric: str) -> str | None:
    """Path of the best epoch's checkpoint: that of the checkpoint callback watching ``metric``.

    Several checkpoint callbacks run (the best epoch, the newest one to resume from), so
    ``trainer.checkpoint_callback``, the first of them, is not taken on trust.
    """
    for callback in trainer.checkpoint_callbacks:
        if getattr(callback, "monitor", None) == metric:
            return getattr(callback, "best_model_path", None) or None
    return None


def _floats(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    return {key: float(value) for result in results for key, value in result.items()}


def print_summary(results: dict[str, float], run_id: str | None) -> None:
    """The short table a user reads at the end of a run."""
    rows: list[tuple[str, ...]] = [("metric", "@5", "@10", "@20")]
    for part in ("val", "test"):
        for name in ("hr", "ndcg", "mrr"):
            values = [results.get(f"{part}/{name}_{k}") for k in (5, 10, 20)]
            rows.append((f"{part} {name}", *("-" if v is None else f"{v:.4f}" for v in values)))
    for other in ("test_seen_included", "test_seen_excluded"):
        if f"{other}/ndcg_10" in results:
            values = [results[f"{other}/ndcg_{k}"] for k in (5, 10, 20)]
            label = "  seen items kept" if other.endswith("included") else "  seen items dropped"
            rows.append((f"test ndcg{label}", *(f"{v:.4f}" for v in values)))
    print()
    for row in rows:
        print(f"{row[0]:<32}" + "".join(f"{cell:>9}" for cell in row[1:]))
    print(
        f"\ntraining {results.get('time/fit_s', 0):.1f} s "
        f"({results.get('train/epochs', 0):.0f} epochs, median {results.get('time/epoch_s', 0):.2f}"
        f" s), test {results.get('time/test_s', 0):.2f} s, "
        f"{results.get('model/num_params', 0):.0f} parameters"
    )
    if run_id:
        print(
            f"MLflow run {run_id} (open with: mlflow ui --backend-store-uri "
            f"{mlflow_run.resolve_tracking_uri()})"
        )


def _quiet_third_parties() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # Device banners and advertising tips from Lightning; warnings still come through.
    for name in ("alembic", "mlflow", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Raised inside Lightning 2.6 itself against newer torch; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # Under DDP: ranking metrics are already summed over processes before they are logged.
    warnings.filterwarnings(
        "ignore", message=r"It is recommended to use `self.log\('(val|test|test_seen_\w+)/"
    )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> dict[str, float]:
    """Hydra entry point; returns every final metric, from which sweepers pick objectives."""
    _quiet_third_parties()
    results, run_id = train(cfg)
    if _main_process():  # not again from each process of a distributed run
        print_summary(results, run_id)
    return results


if __name__ == "__main__":
    main()
