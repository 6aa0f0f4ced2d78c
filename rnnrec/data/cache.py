"""On-disk cache of preprocessed data, keyed by the input file's bytes and the data config."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

# Bump when the cached arrays change meaning, so stale caches are never read.
CACHE_VERSION = 1


def fingerprint(path: Path, settings: Mapping[str, Any]) -> str:
    """SHA-256 of the file's contents and the settings that shape the preprocessed data."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return _finish(digest, settings)


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """Like :func:`fingerprint`, for data made from settings alone (no file)."""
    return _finish(hashlib.sha256(b"settings only"), settings)


def _finish(digest: Any, settings: Mapping[str, Any]) -> str:
    digest.update(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    digest.update(str(CACHE_VERSION).encode())
    return digest.hexdigest()[:16]


def save_arrays_atomically(target: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an ``.npz`` so that readers see either nothing or the whole file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)  # type: ignore[arg-type]
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read an ``.npz`` written by :func:`save_arrays_atomically` (no pickled objects)."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
