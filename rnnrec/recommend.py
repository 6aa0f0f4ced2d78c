"""``rnnrec-recommend``: top-k items, in raw ids, from a trained run for a user or a history."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rnnrec.models.ranking_module import FINGERPRINT_KEY, RankingModule
from rnnrec.tracking.mlflow_run import resolve_tracking_uri
from rnnrec.train import build_model_from_facts

log = logging.getLogger(__name__)


@dataclass
class TrainedRun:
    """What a finished training run left behind, enough to recommend without the data file."""

    config: DictConfig
    state_dict: dict[str, torch.Tensor]
    item_ids: np.ndarray  # (N,) raw item id of item index i + 1, as strings
    user_ids: np.ndarray  # (U,) raw user id of user index u + 1, as strings
    user_ptr: np.ndarray  # (U + 2,) CSR offsets into ``items``
    items: np.ndarray  # (R,) every user's item sequence, concatenated

    @classmethod
    def from_folder(cls, folder: Path) -> TrainedRun:
        """Read a folder laid out like the run's MLflow artifacts."""
        needed = ["config.yaml", "model/model.pt", "data/histories.npz", "data/item_ids.csv"]
        missing = [name for name in needed if not (folder / name).exists()]
        if missing:
            raise FileNotFoundError(
                f"the run lacks {', '.join(missing)}: only runs that finished training "
                "(status FINISHED) can recommend"
            )
        histories = np.load(folder / "data" / "histories.npz")
        weights = torch.load(folder / "model" / "model.pt", map_location="cpu", weights_only=True)
        return cls(
            config=OmegaConf.load(folder / "config.yaml"),  # type: ignore[arg-type]
            state_dict=weights["state_dict"],
            item_ids=_raw_ids(folder / "data" / "item_ids.csv"),
            user_ids=_raw_ids(folder / "data" / "user_ids.csv"),
            user_ptr=histories["user_ptr"],
            items=histories["item"].astype(np.int64),
        )

    @classmethod
    def from_checkpoint(cls, checkpoint: Path) -> TrainedRun:
        """Rebuild from a Lightning checkpoint in a run's output folder.

        The folder's ``.hydra/config.yaml`` gives the config; ids and histories come from
        the data again (from the preprocessing cache when it is still there).
        """
        config_file = checkpoint.resolve().parent.parent / ".hydra" / "config.yaml"
        if not config_file.exists():
            raise FileNotFoundError(
                f"{config_file} not found: --checkpoint takes a checkpoint inside an "
                "rnnrec-train output folder (outputs/DATE/TIME/checkpoints/*.ckpt)"
            )
        config: DictConfig = OmegaConf.load(config_file)  # type: ignore[assignment]
        datamodule = instantiate(config.data)
        datamodule.load()
        data = datamodule.interactions
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        trained_on = saved.get(FINGERPRINT_KEY)
        if trained_on is not None and trained_on != datamodule.fingerprint:
            raise ValueError(
                f"{datamodule.path} is not the data {checkpoint} was trained on (fingerprint "
                f"{datamodule.fingerprint}, trained on {trained_on}): ids would not match; "
                "use --run-id, whose artifacts carry the id maps"
            )
        state = saved["state_dict"]
        return cls(
            config=config,
            state_dict=state,
            item_ids=data.item_ids.astype(str),
            user_ids=data.user_ids.astype(str),
            user_ptr=data.user_ptr,
            items=data.item,
        )

    def model(self) -> RankingModule:
        num_items = len(self.item_ids)
        model_cfg = self.config.model.copy()
        if model_cfg.get("task") is not None:
            # Task heads only shape training; scores come from the shared encoder alone.
            model_cfg.task = None
        model = build_model_from_facts(
            model_cfg,
            {
                "num_items": lambda: num_items,
                "num_users": lambda: len(self.user_ids),
                "item_counts": lambda: np.zeros(num_items + 1),  # restored from the state dict
            },
        )
        if not isinstance(model, RankingModule):
            raise TypeError(f"{type(model).__name__} is not an rnnrec recommender")
        state = {k: v for k, v in self.state_dict.items() if not k.startswith("heads.")}
        model.load_state_dict(state)
        model.eval()
        return model


def download_run(run_id: str, tracking_uri: str, destination: Path) -> Path:
    """Fetch a run's artifacts from MLflow into ``destination``."""
    import mlflow

    return Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, tracking_uri=tracking_uri, dst_path=str(destination)
        )
    )


def recommend(
    run: TrainedRun, history: np.ndarray, k: int, exclude_seen: bool, user: int = 0
) -> list[tuple[str, float]]:
    """Top-``k`` raw item ids and scores after the item-index ``history`` (oldest first).

    ``user`` is the user index, or 0 for a history without a known user (models with user
    embeddings then use their default user).
    """
    model = run.model()
    max_len = int(run.config.data.max_len)
    inputs = torch.tensor(history[-max_len:], dtype=torch.long).unsqueeze(0)  # (1, T)
    batch = {
        "inputs": inputs,
        "lengths": torch.tensor([inputs.size(1)]),
        "targets": torch.zeros(1, dtype=torch.long),
        "users": torch.tensor([user]),
        "seen_example": torch.zeros(len(history), dtype=torch.long),
        "seen_items": torch.tensor(history, dtype=torch.long),
    }
    with torch.no_grad():
        # By blocks of the run's eval.item_block_size items, when it set one.
        scores, items = model.top_items(batch, k, exclude_seen)  # (1, k), (1, k)
    ranked = scores[0] > float("-inf")  # excluded items and padding come last, at -inf
    return [
        (str(run.item_ids[i - 1]), float(s))
        for i, s in zip(items[0][ranked].tolist(), scores[0][ranked].tolist(), strict=True)
    ]


def lookup(raw: list[str], ids: np.ndarray, kind: str) -> np.ndarray:
    """Indices (1-based) of raw ids; unknown ones are reported on stderr and skipped."""
    index = pd.Series(np.arange(1, len(ids) + 1), index=ids.astype(str))
    known = [value for value in raw if value in index.index]
    for value in raw:
        if value not in index.index:
            print(f"unknown {kind} id {value!r}: skipped", file=sys.stderr)
    return index.loc[known].to_numpy(np.int64) if known else np.zeros(0, dtype=np.int64)


def _raw_ids(path: Path) -> np.ndarray:
    return pd.read_csv(path, dtype={"raw_id": str}, keep_default_na=False)["raw_id"].to_numpy()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rnnrec-recommend", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-id", help="MLflow run id of a finished rnnrec-train run")
    source.add_argument(
        "--run-folder", type=Path, help="a folder with that run's artifacts, already downloaded"
    )
    source.add_argument(
        "--checkpoint", type=Path, help="a checkpoint in an rnnrec-train output folder"
    )
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="raw user id from the training data")
    who.add_argument("--items", nargs="+", help="raw item ids of a history, oldest first")
    parser.add_argument("-k", type=_positive, default=10, help="number of items (default 10)")
    parser.add_argument(
        "--include-seen", action="store_true", help="allow items already in the history"
    )
    parser.add_argument(
        "--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or ./mlflow.db)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if args.run_folder is not None:
        run = TrainedRun.from_folder(args.run_folder)
    elif args.checkpoint is not None:
        run = TrainedRun.from_checkpoint(args.checkpoint)
    else:
        import tempfile

        uri = resolve_tracking_uri(args.tracking_uri)
        default_store = Path.cwd() / "mlflow.db"
        if uri == f"sqlite:///{default_store.resolve()}" and not default_store.exists():
            print(
                f"no MLflow store at {default_store}: run this where you trained, or pass "
                "--tracking-uri",
                file=sys.stderr,
            )
            return 1
        with tempfile.TemporaryDirectory() as folder:
            run = TrainedRun.from_folder(download_run(args.run_id, uri, Path(folder)))

    user = 0
    if args.user is not None:
        users = lookup([args.user], run.user_ids, "user")
        if len(users) == 0:
            return 1
        user = int(users[0])
        history = run.items[run.user_ptr[user] : run.user_ptr[user + 1]]
    else:
        history = lookup(args.items, run.item_ids, "item")
        if len(history) == 0:
            print("no known item in the history", file=sys.stderr)
            return 1

    for rank, (item, score) in enumerate(
        recommend(run, history, args.k, exclude_seen=not args.include_seen, user=user), start=1
    ):
        print(f"{rank:>3}  {item:<20} {score:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
