"""Get a run ready to train: the photos (scan, check, split) and the model with its preprocessing.

`prepare_data(config)` scans the dataset, applies the config's exclude list, checks it (errors
stop training), splits it (saved as splits.csv); `build_model(config)` builds the pretrained
backbone and the eval/train transforms; `write_meta` records both in the run's meta.json.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from core import runs
from core.config import TrainConfig
from core.errors import DataError
from core.workspace import subdir
from core.i18n import Msg

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    frames: dict[str, pd.DataFrame]  # split -> rows (readable photos only)
    class_names: list[str]
    warnings: list[str] = field(default_factory=list)



def reading_progress(run_dir: Path, interval_s: float = 0.5) -> Callable[[int, int], None]:
    """progress(done, total) of the scan as "reading photos" lines in metrics.jsonl (at most
    every interval_s, and the last), so the page counts the photos from the first second."""
    import json
    import time

    last = [0.0]

    def write(done: int, total: int) -> None:
        now = time.monotonic()
        if done != total and now - last[0] < interval_s:
            return
        last[0] = now
        try:
            with open(Path(run_dir) / runs.METRICS_FILE, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"type": "progress", "task": "reading photos", "done": int(done),
                                         "total": int(total), "time": round(time.time(), 3)}) + "\n")
        except OSError as exc:  # progress is for people; never worth failing a training
            log.warning("reading progress not written: %s", exc)

    return write


def prepare_data(config: TrainConfig, workspace, run_dir: Path) -> PreparedData:
    """Scan, check (errors stop training), split (saved as splits.csv)."""
    from core.data.copies import find_pairs
    from core.data.scan import scan
    from core.data.split import assign_splits
    from core.data.validate import check_dataset

    df = scan(config.data_path, workspace=workspace, progress=reading_progress(run_dir))
    # Copies among ALL the photos, left-out ones included, as the Data page finds them: the
    # pairs come from the cache when its copy check already ran (a minute at 50,000 photos);
    # pairs naming a left-out photo drop out below.
    pairs = find_pairs(df[df["readable"].astype(bool)], workspace=workspace)
    if config.exclude:
        left_out = df["path"].isin(set(config.exclude))
        log.info("leaving out %d photos listed in the config's exclude (%d listed)", int(left_out.sum()),
                 len(config.exclude))
        if left_out.sum() < len(set(config.exclude)):
            log.warning("%d excluded paths are not in the dataset", len(set(config.exclude)) - int(left_out.sum()))
        attrs = dict(df.attrs)
        df = df[~left_out].reset_index(drop=True)
        df.attrs = attrs
        gone = set(config.exclude)
        pairs = pairs[~pairs["file_a"].isin(gone) & ~pairs["file_b"].isin(gone)].reset_index(drop=True)
    findings = check_dataset(df, pairs=pairs)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise DataError(Msg("err.prepare.more", first=errors[0].message, n=str(len(errors) - 1)) if len(errors) > 1
                        else errors[0].message)
    groups = None
    if config.groups:
        from core.data.groups import assign_groups, group_leak

        groups = assign_groups(df, config.groups)
        if not (config.resplit or config.cv_fold):
            findings += group_leak(df, groups)
    for finding in findings:
        log.warning("data check (%s): %s", finding.severity, finding.message)
    if config.cv_fold:  # one fold of a fine-tuned cross-validation (core.fine_tune_cv)
        from core.data.split import assign_fold

        df = assign_fold(df, config.cv_fold, config.seed, groups=groups)
    else:
        df = assign_splits(df, config.val_fraction, config.test_fraction, config.seed, groups=groups,
                           resplit=config.resplit, pairs=pairs)
    df.to_csv(run_dir / runs.SPLITS_FILE, index=False)
    usable = df[df["readable"].astype(bool) & (df["split"] != "")]
    class_names = sorted(usable["label"].unique())
    frames = {s: usable[usable["split"] == s].reset_index(drop=True) for s in ("train", "val", "test")}
    frames = {s: f for s, f in frames.items() if len(f)}
    if "train" not in frames or "val" not in frames:
        raise DataError(Msg("err.prepare.no_val"))
    log.info("classes %s; photos per split %s", class_names, {s: len(f) for s, f in frames.items()})
    return PreparedData(frames, class_names, [f.message for f in findings])


@dataclass
class Preprocessing:
    image_size: int
    mean: tuple
    std: tuple
    crop_pct: float
    interpolation: str
    eval_transform: Callable
    train_transform: Callable
    cache: object  # core.data.cache.ImageCache


def build_model(config: TrainConfig, n_classes: int, workspace=None) -> tuple[nn.Module, Preprocessing]:
    from core.augment import build_eval_transform, build_train_transform
    from core.backbones import check_image_size
    from core.weights import create_backbone, data_config
    from core.data.cache import ImageCache

    model = create_backbone(config.backbone, n_classes, weights=config.weights, workspace=workspace)
    dc = data_config(model)
    size = config.image_size or int(dc["input_size"][-1])
    check_image_size(config.backbone, size, {"input_size": dc["input_size"], **(getattr(model, "pretrained_cfg", None) or {})})
    mean, std = tuple(dc["mean"]), tuple(dc["std"])
    crop_pct = float(dc.get("crop_pct") or 1.0)
    train_tf = build_train_transform(config.augment, size, mean, std)
    if hasattr(train_tf, "set_random_seed"):  # albumentations >= 2: its own generator, seeded for repeatability
        train_tf.set_random_seed(config.seed)
    # Why size / crop_pct: the eval transform resizes to that then centre-crops, so caching
    # at that size loses nothing while decoding each photo only once.
    cache = ImageCache(subdir("cache", workspace) / "images", math.ceil(size / crop_pct))
    prep = Preprocessing(size, mean, std, crop_pct, str(dc.get("interpolation", "bicubic")),
                         build_eval_transform(size, mean, std, crop_pct=crop_pct), train_tf, cache)
    return model, prep




def trim_photo_cache(prep: Preprocessing, data: PreparedData) -> None:
    """Keep the photo cache under its limit (core.data.cache.limit_bytes) before this training
    fills it: the photos used longest ago go, this training's own photos stay."""
    from core.data.cache import limit_bytes, prune

    keep = {str(s) for frame in data.frames.values() for s in frame.get("sha1", ())}
    prune(prep.cache.root, limit_bytes(), keep)


def write_meta(run_dir: Path, config: TrainConfig, data: PreparedData, prep: Preprocessing) -> None:
    runs.update_meta(
        run_dir, class_names=data.class_names, backbone=config.backbone, strategy=config.strategy,
        input_size=[3, prep.image_size, prep.image_size], image_size=prep.image_size,
        mean=list(prep.mean), std=list(prep.std), crop_pct=prep.crop_pct, interpolation=prep.interpolation,
        decode_size=prep.cache.size,
        best_epoch=None, temperature=None, threshold=None, positive_class=config.positive_class,
        target_sensitivity=config.target_sensitivity, splits=runs.SPLITS_FILE,
        split_sizes={s: len(f) for s, f in data.frames.items()}, data_warnings=data.warnings,
        torch_version=torch.__version__)
