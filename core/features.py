"""Frozen pretrained features of a set of photos, cached on disk (shared with training).

Estimates (cross-validation, learning curves) and the strategy advice all fit small models
on these vectors, so the one slow step, a forward pass per photo, is paid once per photo
and backbone: the cache is the one training uses (core/feature_cache.py) for feature extraction
(`<workspace>/cache/features/<backbone>-<size>-<sha1>.npy`).

Also returns the probabilities of the backbone's own ImageNet head, from the same vectors
(the head is one Linear layer on them): how "familiar" ImageNet finds the photos.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from core.config import DEFAULT_BACKBONE, TrainConfig

log = logging.getLogger(__name__)


@dataclass
class FrozenFeatures:
    features: np.ndarray  # (N, D) float32
    imagenet_probs: np.ndarray  # (N, 1000) float32: the pretrained head's softmax
    image_size: int
    backbone: str


def frozen_features(frame: pd.DataFrame, backbone: str = DEFAULT_BACKBONE, workspace=None,
                    image_size: int | None = None, progress: Callable[[int, int], None] | None = None,
                    device: str = "auto") -> FrozenFeatures:
    """Features of each row of frame (readable photos; needs `path` and `sha1`)."""
    from core.weights import pretrained_model
    from core.device import configure_cpu_threads, pick_device
    from core.feature_cache import cached_feature, store_feature
    from core.forward import forward_photos
    from core.prepare import build_model
    from core.workspace import subdir

    configure_cpu_threads()
    config = TrainConfig(data_path=str(frame.attrs.get("root", ".")), backbone=backbone, image_size=image_size)
    classes = sorted(frame["label"].astype(str).unique()) if "label" in frame else ["?"]
    model, prep = build_model(config, max(2, len(classes)), workspace)
    torch_device = pick_device(device)
    model = model.to(torch_device)
    store = subdir("cache", workspace) / "features"
    keys = [(backbone, prep.image_size, sha1) for sha1 in frame["sha1"]]
    found = {i: f for i, key in enumerate(keys) if (f := cached_feature(key, store)) is not None}
    missing = [i for i in range(len(frame)) if i not in found]
    if missing:
        log.info("computing %s features for %d photos (%d cached)", backbone, len(missing), len(found))
        labelled = frame.iloc[missing].assign(label=frame.iloc[missing]["label"].astype(str)
                                              if "label" in frame else classes[0])
        computed = forward_photos(model, labelled, classes, prep, torch_device, progress=progress)[0]
        for i, vector in zip(missing, computed):
            found[i] = vector
            store_feature(keys[i], vector, store)
    features = np.stack([found[i] for i in range(len(frame))]).astype(np.float32) if len(frame) else \
        np.zeros((0, model.num_features), np.float32)
    head = pretrained_model(backbone, workspace).get_classifier()
    with torch.inference_mode():
        probs = torch.softmax(head(torch.from_numpy(features)), dim=1).numpy().astype(np.float32)
    return FrozenFeatures(features, probs, prep.image_size, backbone)


def familiarity(imagenet_probs: np.ndarray) -> float:
    """Mean top-1 probability of the ImageNet head: near 1 for ImageNet-like photos (ants,
    bees), low for photos ImageNet never showed the backbone (fundus, X-ray, lab leaves)."""
    if not len(imagenet_probs):
        return 0.0
    return float(imagenet_probs.max(axis=1).mean())


__all__ = ["FrozenFeatures", "frozen_features", "familiarity"]
