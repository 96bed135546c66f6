"""How long a training will take on this computer, and how much memory it needs.

Built from what training really does (core/train.py), priced with this machine's measured
speed (core/machine_speed.py) and the cost of reading the person's own photos (a few of them
decoded and augmented now):

  feature extraction  read + one forward pass per photo (train, val, test; photos whose
                      features are cached cost nothing), then `epochs` head epochs on the
                      cached features (each saves the weights);
  full / fine-tune    per epoch: every training photo read (decoded the first time, from the
                      photo cache afterwards), augmented, forward + backward; a validation
                      pass; the weights saved; at the end one forward pass over every split
                      for the outputs; fine-tune (top blocks only) is priced between the two;
  two-stage           the head epochs of feature extraction, then full epochs;
  every run           scanning and checking, building the model, the evaluation at the end.

Without a measurement of this machine it falls back to the rough figures of
core.backbones.estimate_cost, and says so (`measured: False`).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from core.config import TrainConfig

log = logging.getLogger(__name__)

# Steps that do not depend on the backbone (seconds on Latih's 2-core reference box, when it is
# quiet); on another or a busier computer they are scaled by its measured slowness (the
# backbone's reference speed, core.backbones cpu_images_per_s, over the speed measured here):
SCAN_CHECK_S_PER_PHOTO = 0.0003  # checking the scanned photos and splitting (the scan itself is cached)
EVALUATION_S = 1.2  # calibration, the screening threshold, the model card after the last epoch
EVALUATION_S_PER_PHOTO = 0.0005
SAVES_PER_EPOCH = {"head": 3, "finetune": 6}  # best + last weights, resume state (optimizer moments for full)
HEAD_S_PER_PHOTO_EPOCH = 0.0001  # the new last layer on cached features, and its validation
SAMPLE_PHOTOS = 6
from core.forward import FEATURE_BATCH  # noqa: E402 (photos per forward pass of the features)


@dataclass
class Estimate:
    seconds: float
    memory_mb: float
    measured: bool  # priced with this machine's measured speed (False: rough figures)
    parts: dict = field(default_factory=dict)  # seconds per step, for the page and the bench
    images_per_s: dict = field(default_factory=dict)  # measured speeds used
    load: float | None = None  # the machine's load when it was measured

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PhotoCosts:
    """Seconds per photo of this dataset: decode + shrink, load from the photo cache, augment."""

    read_s: float
    cached_read_s: float
    augment_s: float
    eval_transform_s: float


def split_counts(df: pd.DataFrame, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Photos per split as training will make them (the dataset's own folders win)."""
    rows = df[df["readable"].astype(bool)] if "readable" in df else df
    splits = rows["split"].astype(str) if "split" in rows else pd.Series([""] * len(rows))
    if (splits != "").all() and (splits == "train").any():
        return {s: int((splits == s).sum()) for s in ("train", "val", "test")}
    n = len(rows)
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def photo_costs(df: pd.DataFrame, config: TrainConfig, image_size: int, crop_pct: float,
                mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> PhotoCosts:
    """Decode, cache-load and augment a few of the photos themselves (seeded sample)."""
    import tempfile
    from pathlib import Path

    from core.augment import build_eval_transform, build_train_transform
    from core.data.cache import ImageCache

    rows = df[df["readable"].astype(bool)] if "readable" in df else df
    sample = rows.sample(n=min(SAMPLE_PHOTOS, len(rows)), random_state=0) if len(rows) else rows
    decode_size = math.ceil(image_size / crop_pct)
    train_tf = build_train_transform(config.augment, image_size, mean, std)
    eval_tf = build_eval_transform(image_size, mean, std, crop_pct=crop_pct)
    read, load, augment, evaluate = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        cache = ImageCache(Path(folder), decode_size)
        for i, row in enumerate(sample.itertuples(index=False)):
            started = time.perf_counter()
            array = cache.get(row.path, f"{i:02d}sample")  # decoded, shrunk and stored as training does
            read.append(time.perf_counter() - started)
            started = time.perf_counter()
            cache.get(row.path, f"{i:02d}sample")
            load.append(time.perf_counter() - started)
            started = time.perf_counter()
            train_tf(image=array)
            augment.append(time.perf_counter() - started)
            started = time.perf_counter()
            eval_tf(image=array)
            evaluate.append(time.perf_counter() - started)
    mean_of = (lambda xs: float(np.mean(xs)) if xs else 0.01)
    return PhotoCosts(mean_of(read), mean_of(load), mean_of(augment), mean_of(evaluate))


def cached_share(df: pd.DataFrame, config: TrainConfig, image_size: int, crop_pct: float, workspace=None) -> dict:
    """Share of the photos already in the photo cache, and of their features in the feature cache."""
    from core.data.cache import ImageCache
    from core.workspace import subdir

    rows = df[df["readable"].astype(bool)] if "readable" in df else df
    sha1s = [s for s in rows.get("sha1", pd.Series(dtype=str)).astype(str) if s]
    if not sha1s:
        return {"photos": 0.0, "features": 0.0}
    cache = ImageCache(subdir("cache", workspace) / "images", math.ceil(image_size / crop_pct))
    store = subdir("cache", workspace) / "features"
    photos = sum(cache.file_for(s).exists() for s in sha1s) / len(sha1s)
    features = 0.0
    if config.weights == "pretrained":
        features = sum((store / f"{config.backbone}-{image_size}-{s}.npy").exists() for s in sha1s) / len(sha1s)
    return {"photos": photos, "features": features}


def estimate(config: TrainConfig, df: pd.DataFrame, workspace=None, costs: PhotoCosts | None = None) -> Estimate:
    """Seconds and memory for training `config` on the scanned photos `df`, on this machine."""
    from core.cost import estimate_cost
    from core.weights import data_config
    from core.machine_speed import LOOP_MODE, cached

    counts = split_counts(df, config.val_fraction, config.test_fraction)
    n_all = sum(counts.values())
    dc = data_config(config.backbone)
    size = int(config.image_size or dc["input_size"][-1])
    crop_pct = float(dc.get("crop_pct") or 1.0)
    forward = cached(config.backbone, size, config.batch_size, "forward", config.device, workspace)
    trains = config.strategy != "feature-extraction"
    train = cached(config.backbone, size, config.batch_size, "train", config.device, workspace) if trains else None
    loop = cached(config.backbone, size, config.batch_size, LOOP_MODE, config.device, workspace) if trains else None
    if forward is None or (trains and train is None and loop is None):
        rough = estimate_cost(config.backbone, config.strategy, n_all, image_size=config.image_size,
                              epochs=config.epochs, batch_size=config.batch_size, head_epochs=config.head_epochs,
                              unfreeze_blocks=config.unfreeze_blocks, val_fraction=config.val_fraction)
        return Estimate(float(rough["seconds"]), float(rough["memory_mb"]), False)
    features_fwd = cached(config.backbone, size, FEATURE_BATCH, "forward", config.device, workspace) or forward
    costs = costs or photo_costs(df, config, size, crop_pct, tuple(dc["mean"]), tuple(dc["std"]))
    share = cached_share(df, config, size, crop_pct, workspace)
    fwd_s, fwd48_s = 1 / forward.images_per_s, 1 / features_fwd.images_per_s
    slow = slowness(config.backbone, size, forward)
    parts = {"scan_check": slow * n_all * SCAN_CHECK_S_PER_PHOTO, "model": forward.model_s,
             "evaluation": slow * (EVALUATION_S + n_all * EVALUATION_S_PER_PHOTO)}
    passes = {"features": 0, "validation": 0, "outputs": 0}  # forward passes over a split: each warms up once
    fresh = 1.0 - share["photos"]
    first_read = fresh * costs.read_s + (1 - fresh) * costs.cached_read_s

    head_epochs = _head_epochs(config)
    tuned_epochs = config.epochs - head_epochs
    if head_epochs:
        uncached = n_all * (1.0 - share["features"])
        parts["features"] = uncached * (first_read + costs.eval_transform_s + fwd48_s) \
            + (features_fwd.warmup_s * sum(1 for n in counts.values() if n) if uncached else 0.0)
        parts["head_epochs"] = head_epochs * (SAVES_PER_EPOCH["head"] * forward.save_s
                                              + slow * (counts["train"] + counts["val"]) * HEAD_S_PER_PHOTO_EPOCH)
        first_read = costs.cached_read_s  # the photos are in the cache now
    busier = load_factor(forward.load)
    if tuned_epochs:
        if loop is not None:
            # the loop's own figure already holds reading from the cache and augmenting; it is
            # scaled by the load then against now, not by the forward pass's
            loop_s = 1 / loop.images_per_s * load_factor(loop.load) / busier
            photo_s = _trained_seconds_per_photo(config, loop, forward, loop_s)
        else:
            photo_s = costs.cached_read_s + costs.augment_s + _trained_seconds_per_photo(config, train, forward)
        speed = loop if train is None else train
        val_each = counts["val"] * (costs.cached_read_s + costs.eval_transform_s + fwd_s)
        epoch_s = counts["train"] * photo_s + val_each + SAVES_PER_EPOCH["finetune"] * speed.save_s
        first_extra = (counts["train"] + counts["val"]) * (first_read - costs.cached_read_s)
        parts["epochs"] = tuned_epochs * (epoch_s - val_each + speed.warmup_s) + first_extra
        parts["validation"] = tuned_epochs * (val_each + forward.warmup_s)
        parts["outputs"] = n_all * (costs.cached_read_s + costs.eval_transform_s + fwd48_s) \
            + features_fwd.warmup_s * sum(1 for n in counts.values() if n)
    if busier != 1.0:
        parts = {k: v * busier for k, v in parts.items()}
    seconds = float(sum(parts.values()))
    memory = (loop or train or forward).peak_mem_mb
    speeds = {"forward": forward.images_per_s, "features": features_fwd.images_per_s}
    if train is not None:
        speeds["train"] = train.images_per_s
    if loop is not None:
        speeds["loop"] = loop.images_per_s
    speeds["load_factor"] = round(busier, 2)
    return Estimate(round(seconds, 1), round(float(memory)), True, {k: round(v, 1) for k, v in parts.items()},
                    speeds, forward.load)


def load_factor(measured_load: float | None) -> float:
    """How much slower than at the measurement this computer is now, from its load: with C cores
    and a load of L (processes wanting a core), a process gets about C / max(L, C) of one.
    1.0 on a quiet computer, whatever the load was; bounded to 0.5-3."""
    import os

    from core.device import cpu_threads

    if measured_load is None:
        return 1.0
    cores = float(cpu_threads())
    now = os.getloadavg()[0]
    return max(0.5, min(3.0, max(now, cores) / max(float(measured_load), cores)))


def slowness(backbone: str, size: int, forward) -> float:
    """How many times slower than Latih's quiet reference box this computer runs now (from the
    forward speed measured here against the backbone's reference speed at its native size)."""
    from core.backbones import get_spec

    spec = get_spec(backbone)
    reference = spec.cpu_images_per_s
    if not reference or not forward.images_per_s:
        return 1.0
    native = int(spec.input_size[-1])
    measured_at_native = forward.images_per_s * (size / native) ** 2
    return max(0.2, min(50.0, float(reference) / measured_at_native))


def _head_epochs(config: TrainConfig) -> int:
    if config.strategy == "feature-extraction":
        return config.epochs
    if config.strategy == "two-stage":
        return min(config.head_epochs, config.epochs - 1) if config.epochs > 1 else 1
    return 0


def _trained_seconds_per_photo(config: TrainConfig, train, forward, full_s: float | None = None) -> float:
    """Forward + backward of the layers that train; fine-tune (top blocks only) in between."""
    full_s, fwd_s = full_s or 1 / train.images_per_s, 1 / forward.images_per_s
    if config.strategy == "fine-tune":
        from core.cost import _trained_share

        share = _trained_share("fine-tune", config.unfreeze_blocks)
        return fwd_s + share * (full_s - fwd_s)
    return full_s


def stopping_seconds(run_dir, workspace=None) -> float:
    """About how long a stopped training still takes to save its best model: the outputs (one
    forward pass over every split when the backbone was trained) and the evaluation."""
    import json
    from pathlib import Path

    from core.machine_speed import cached
    from core.runs import read_metrics

    run = Path(run_dir)
    try:
        from core import runs

        meta = json.loads((run / runs.META_FILE).read_text(encoding="utf-8"))
        config = json.loads((run / runs.CONFIG_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return EVALUATION_S
    n_all = int(sum((meta.get("split_sizes") or {}).values()))
    backbone, device = str(config.get("backbone")), str(config.get("device", "auto"))
    size = int(meta.get("image_size") or 224)
    speed = cached(backbone, size, FEATURE_BATCH, "forward", device, workspace) or cached(
        backbone, size, int(config.get("batch_size", 32)), "forward", device, workspace)
    slow = slowness(backbone, size, speed) if speed else 1.0
    seconds = slow * (EVALUATION_S + n_all * EVALUATION_S_PER_PHOTO)
    epochs = read_metrics(run, "epoch")
    if not epochs.empty and "stage" in epochs and (epochs["stage"] == "finetune").any():
        ips = speed.images_per_s if speed else 3.0 * float(epochs["images_per_s"].iloc[-1] or 1.0)
        seconds += n_all / max(ips, 1e-6)
    return round(seconds, 0)


def needs_measuring(config: TrainConfig, workspace=None) -> bool:
    """True when this machine has not measured what `config` needs yet."""
    from core.weights import data_config
    from core.machine_speed import cached

    size = int(config.image_size or data_config(config.backbone)["input_size"][-1])
    modes = ["forward"] + (["train"] if config.strategy != "feature-extraction" else [])
    return any(cached(config.backbone, size, config.batch_size, m, config.device, workspace) is None for m in modes)


__all__ = ["Estimate", "PhotoCosts", "estimate", "photo_costs", "split_counts", "cached_share", "needs_measuring", "stopping_seconds", "slowness", "load_factor"]
