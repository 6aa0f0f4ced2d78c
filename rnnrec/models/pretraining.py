"""Item vectors pretrained on the training split, cached on disk like preprocessed data."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from rnnrec.data import cache
from rnnrec.data.datamodule import SequenceDataModule
from rnnrec.data.sequences import expand_ranges
from rnnrec.models import item2vec

log = logging.getLogger(__name__)

# Bump when a method's vectors change meaning, so stale caches are never read.
PRETRAINING_VERSION = 1
METHODS = ("item2vec", "bprmf")


def training_sequences(datamodule: SequenceDataModule) -> tuple[np.ndarray, np.ndarray]:
    """Every user's training part: (R,) items and (R,) the sequence (user) of each.

    Only rows before ``split.train_end``: validation and test targets never leak in.
    """
    datamodule.load()
    data = datamodule.interactions
    assert data is not None
    start = data.user_ptr[1:-1]  # (U,) first row of users 1..U
    end = datamodule.split.train_end[1:]  # (U,) exclusive end of their training part
    owner, rows = expand_ranges(start, np.maximum(end - start, 0))
    return data.item[rows], owner


def pretrain_item_vectors(
    method: str, datamodule: SequenceDataModule, dim: int, settings: Mapping[str, Any]
) -> np.ndarray:
    """Hook for every pretraining method: (N + 1, dim) item vectors from the training split.

    ``settings`` are the method's own options (``embedding.<method>`` in the config); a new
    method plugs in here.
    """
    if method == "item2vec":
        items, sequence = training_sequences(datamodule)
        return item2vec.train_item2vec(
            items, sequence, num_items=datamodule.num_items, dim=dim, **settings
        )
    if method == "bprmf":
        return train_bprmf_vectors(datamodule, dim, **settings)
    raise ValueError(f"embedding.method must be one of {list(METHODS)}, got {method!r}")


def train_bprmf_vectors(
    datamodule: SequenceDataModule,
    dim: int,
    epochs: int = 20,
    lr: float = 0.005,
    weight_decay: float = 1e-5,
    seed: int = 0,
) -> np.ndarray:
    """Item vectors of a BPR-MF model fitted on the training windows (no validation)."""
    import functools

    import lightning.pytorch as pl
    import torch

    from rnnrec.models.bprmf import BPRMFRecommender

    data = datamodule.interactions
    assert data is not None
    torch.manual_seed(seed)
    model = BPRMFRecommender(
        num_items=data.num_items,
        num_users=data.num_users,
        optimizer=functools.partial(torch.optim.Adam, lr=lr, weight_decay=weight_decay),
        embedding_size=dim,
    )
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(model, train_dataloaders=datamodule.train_dataloader())
    log.info("pretrained BPR-MF item vectors in %d epochs", epochs)
    return model.item_vectors().detach().cpu().numpy()


def cache_key(datamodule: SequenceDataModule, method: str, dim: int, settings: Any) -> str:
    """Hash of the data (fingerprint and split) and every setting that shapes the vectors."""
    datamodule.load()
    identity = {
        "data": datamodule.fingerprint,
        "split": datamodule.split_settings,
        "method": method,
        "dim": dim,
        "settings": dict(settings),
        "version": PRETRAINING_VERSION,
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_item_vectors(
    datamodule: SequenceDataModule, embedding: Mapping[str, Any], dim: int
) -> np.ndarray:
    """Pretrained (N + 1, dim) vectors for the ``embedding`` config, from cache when there.

    ``embedding`` is the ``embedding`` config group: ``method`` and, under the method's name,
    its settings. Without ``datamodule.cache_dir`` the vectors are recomputed every time.
    """
    method = str(embedding.get("method", "item2vec"))
    settings = dict(embedding.get(method) or {})
    key = cache_key(datamodule, method, dim, settings)
    cached = (
        datamodule.cache_dir / f"{datamodule.name}-{method}-{key}.npz"
        if datamodule.cache_dir
        else None
    )
    if cached is not None and cached.exists():
        log.info("pretrained %s item vectors from cache %s", method, cached)
        return cache.load_arrays(cached)["item_vectors"]

    vectors = pretrain_item_vectors(method, datamodule, dim, settings)
    expected = (datamodule.num_items + 1, dim)
    if vectors.shape != expected:
        raise ValueError(f"{method} returned item vectors of shape {vectors.shape}, not {expected}")
    if cached is not None:
        cache.save_arrays_atomically(cached, {"item_vectors": vectors})
        log.info("cached pretrained %s item vectors at %s", method, cached)
    return vectors
