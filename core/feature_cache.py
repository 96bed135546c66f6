"""Pooled features of the unchanged pretrained backbone, cached per photo in memory and on disk.

Key: (backbone, image size, photo sha1); files <workspace>/cache/features/<backbone>-<size>-<sha1>.npy.
A damaged file (a killed run) is recomputed; a full disk only makes the next run slower.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_FEATURE_MEMORY: dict[tuple[str, int, str], np.ndarray] = {}  # (backbone, size, sha1) -> features
_FEATURE_MEMORY_LIMIT = 200_000


def _feature_file(key: tuple[str, int, str], store: Path) -> Path:
    backbone, size, sha1 = key
    return store / f"{backbone}-{size}-{sha1}.npy"


def cached_feature(key, store: Path | None) -> np.ndarray | None:
    if key in _FEATURE_MEMORY:
        vector = _FEATURE_MEMORY[key]
        if store is not None and not _feature_file(key, store).exists():
            # Computed in this process for another workspace: this workspace's cache must be
            # complete too (a later process reads only the disk).
            store_feature(key, vector, store)
        return vector
    if store is None:
        return None
    path = _feature_file(key, store)
    if not path.exists():
        return None
    try:
        vector = np.load(path)
    except (OSError, ValueError, EOFError) as exc:  # half-written by a killed run: recompute
        log.warning("feature cache file %s is damaged (%s); recomputing", path.name, exc)
        return None
    _remember(key, vector)
    return vector


def store_feature(key, vector: np.ndarray, store: Path) -> None:
    _remember(key, vector)
    path = _feature_file(key, store)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        store.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            np.save(handle, vector.astype(np.float32))
        tmp.replace(path)
    except OSError as exc:  # a full disk makes the next run slower, it must not fail this one
        log.warning("cannot write feature cache %s: %s", path.name, exc)


def _remember(key, vector: np.ndarray) -> None:
    if len(_FEATURE_MEMORY) >= _FEATURE_MEMORY_LIMIT:
        _FEATURE_MEMORY.clear()
    _FEATURE_MEMORY[key] = vector

