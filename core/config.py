"""The one frozen configuration that flows UI -> engine -> run folder -> CLI.

Every run saves its `TrainConfig` as `config.json`; `TrainConfig.from_json` on that file
repeats the run. Fields that are "auto" (None) are resolved by `resolve()` before training
so that the saved config holds the concrete values that were used.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from core.errors import LatihError
from core.i18n import Msg, joined
from core.recipe import DEFAULT_BACKBONE_LR, STRATEGIES

AUGMENT_PRESETS = ("none", "light", "medium", "heavy", "fundus", "leaf")
IMBALANCE_MODES = ("none", "class-weights", "balanced-sampler")
MONITOR_METRICS = ("val_loss", "val_acc", "val_f1")
# How the fine-tuning stages' learning rate moves (core/loop.py lr_factor). "flat-cosine" holds the
# chosen LR for the first 75% of the steps, then anneals (fastai's fit_flat_cos); "cosine" anneals
# from the first step. Measured on hymenoptera, 3 epochs of full fine-tuning (issue 12): a short
# budget has ~24 steps, and plain cosine halves the distance the weights travel in them.
FINETUNE_SCHEDULES = ("flat-cosine", "cosine")
DEFAULT_BACKBONE = "tf_efficientnet_lite0"
log = logging.getLogger(__name__)

# The head's learning rate; the backbone's, per strategy, is in the recipe table (core/recipe.py).
DEFAULT_HEAD_LR = 1e-3


class ConfigError(LatihError, ValueError):
    """A setting that cannot be used; the message says which and why, in plain words."""


@dataclass(frozen=True)
class TrainConfig:
    data_path: str
    backbone: str = DEFAULT_BACKBONE
    strategy: str = "feature-extraction"
    # weights: "pretrained" (bundled package or timm cache; error if unavailable),
    # "scratch" (random init, an explicit choice), or a path to .safetensors / .pth.
    weights: str = "pretrained"
    epochs: int = 15
    head_epochs: int = 3  # two-stage / gradual: epochs on the head (and on each partial unfreeze) first
    lr: float | None = None  # head LR; None -> DEFAULT_HEAD_LR
    backbone_lr: float | None = None  # unfrozen layers; None -> DEFAULT_BACKBONE_LR[strategy]
    # full / two-stage: LR shrinks by this per layer towards the input. 1.0 (off) by default: timm
    # counts every block as a layer (17 in Lite0), so 0.75 left Lite0's stem at 1% of the top LR
    # and short fine-tunes fell short of a plain loop (issue 12, bench/bench_finetune.py)
    layer_decay: float = 1.0
    unfreeze_blocks: int = 2  # fine-tune: how many of the last blocks learn (see core/recipe.py)
    weight_decay: float = 0.01
    warmup_epochs: int = 0  # a warm-up epoch cost a third of a 3-epoch budget (issue 12)
    finetune_schedule: str = "flat-cosine"  # see FINETUNE_SCHEDULES; the head stage always anneals by cosine
    label_smoothing: float = 0.0
    imbalance: str = "none"
    batch_size: int = 32
    image_size: int | None = None  # None -> backbone's pretrained input size
    augment: str = "light"
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    seed: int = 0
    # photos that belong together (core.data.groups spec: "eye-pair", "person", "prefix",
    # "regex:...", "csv:PATH", "folder"; "" = none) stay on one side of every split
    groups: str = ""
    resplit: bool = False  # ignore the dataset's own train/val/test folders and split again by group
    # one fold of a fine-tuned cross-validation, "KxR:rAfB" (K folds x R repeats; repeat A, fold B):
    # validate on that fold of core.cross_validation.folds (group-aware, stratified), train on the
    # rest; replaces the train/val split. "" = the ordinary split.
    cv_fold: str = ""
    early_stopping_patience: int = 5  # 0 disables
    monitor: str = "val_loss"
    device: str = "auto"  # auto | cpu | cuda | mps
    # photo-loading worker processes; None = auto (core.loader.worker_count: none on the CPU,
    # where they would take cores from the model, up to 8 on a GPU machine)
    num_workers: int | None = None
    # number format of fine-tuning: "auto" (core.precision.AUTO_CHOICES: only what was measured
    # to help on this kind of processor and backbone), "fp32", "bf16" or "fp16" (CUDA only)
    precision: str = "auto"
    compile: bool = False  # torch.compile the model before fine-tuning (CUDA; pays off only for long runs)
    positive_class: str | None = None  # screening mode: the class to catch
    target_sensitivity: float = 0.95
    run_name: str | None = None
    notes: str = ""
    # photos left out of this run (absolute paths): the copies the person chose to leave out
    # on the Data page, or `latih train --exclude list.txt`; saved so the run can be repeated.
    exclude: tuple[str, ...] = ()

    # ---- validation -------------------------------------------------------------------
    def __post_init__(self) -> None:
        if not isinstance(self.exclude, tuple):  # from JSON (a list) or a caller's list
            object.__setattr__(self, "exclude", tuple(str(p) for p in (self.exclude or ())))
        problems = []

        def bad(key: str, **params: Any) -> None:
            problems.append(Msg(f"config.bad.{key}", **params))

        if self.strategy not in STRATEGIES:
            bad("strategy", choices=", ".join(STRATEGIES), got=repr(self.strategy))
        if self.augment not in AUGMENT_PRESETS:
            bad("augment", choices=", ".join(AUGMENT_PRESETS), got=repr(self.augment))
        if self.finetune_schedule not in FINETUNE_SCHEDULES:
            bad("finetune_schedule", choices=", ".join(FINETUNE_SCHEDULES), got=repr(self.finetune_schedule))
        if self.imbalance not in IMBALANCE_MODES:
            bad("imbalance", choices=", ".join(IMBALANCE_MODES), got=repr(self.imbalance))
        if self.monitor not in MONITOR_METRICS:
            bad("monitor", choices=", ".join(MONITOR_METRICS), got=repr(self.monitor))
        for name, low, high in (("epochs", 1, 1000), ("head_epochs", 0, 1000), ("unfreeze_blocks", 0, 100),
                                ("batch_size", 1, 4096)):
            if not low <= getattr(self, name) <= high:
                bad(name, low=str(low), high=str(high), got=str(getattr(self, name)))
        if self.image_size is not None and not 32 <= self.image_size <= 1024:
            bad("image_size", got=str(self.image_size))
        for name in ("lr", "backbone_lr"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                bad("lr", name=name, got=str(value))
        if not 0 <= self.val_fraction < 1 or not 0 <= self.test_fraction < 1:
            bad("fractions")
        if self.val_fraction + self.test_fraction >= 0.9:
            bad("fractions_sum")
        if not 0 < self.target_sensitivity < 1:
            bad("target_sensitivity")
        if not 0 <= self.label_smoothing < 1:
            bad("label_smoothing")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            bad("device", got=repr(self.device))
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            bad("precision", got=repr(self.precision))
        if self.num_workers is not None and not 0 <= self.num_workers <= 64:
            bad("num_workers", got=str(self.num_workers))
        if self.cv_fold:
            from core.cross_validation import parse_fold

            try:
                parse_fold(self.cv_fold)
            except ValueError as exc:
                log.info("cv_fold %r: %s", self.cv_fold, exc)
                bad("cv_fold", got=repr(self.cv_fold))
        if problems:
            raise ConfigError(joined(problems))

    # ---- derived values ---------------------------------------------------------------
    @property
    def head_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_HEAD_LR

    @property
    def unfrozen_lr(self) -> float:
        return self.backbone_lr if self.backbone_lr is not None else DEFAULT_BACKBONE_LR[self.strategy]

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    # ---- (de)serialisation ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            from core.jsonfile import write_json_atomic  # atomic and locked, like every Latih JSON file

            write_json_atomic(path, self.to_dict())
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(Msg("err.config.unknown", names=', '.join(unknown)))
        if "finetune_schedule" not in data and known - {"finetune_schedule"} <= set(data):
            # A whole saved config from before the field existed: that run annealed by cosine,
            # and repeating or resuming it must too.
            data = {**data, "finetune_schedule": "cosine"}
        return cls(**data)

    @classmethod
    def from_json(cls, path_or_text: str | Path) -> "TrainConfig":
        path = Path(path_or_text)
        text = path.read_text(encoding="utf-8") if path.suffix == ".json" and path.exists() else str(path_or_text)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(Msg("err.config.not_json", detail=str(exc))) from exc
        return cls.from_dict(data)


def default(name: str) -> Any:
    """TrainConfig's default for one field: the one home of every default (the app reads it too)."""
    return TrainConfig.__dataclass_fields__[name].default


def recommend_strategy(n_train_images: int) -> tuple[str, str]:
    """Pick a freeze strategy from the data size, with the reason in plain words."""
    if n_train_images < 300:
        return ("feature-extraction",
                "Under 300 training photos: keep the pretrained backbone frozen and train only a "
                "new head. It is fast, and too few photos would make a fine-tuned model memorise.")
    if n_train_images < 1500:
        return ("two-stage",
                "A few hundred to ~1,500 photos: train the head first, then gently unfreeze the "
                "backbone with small learning rates. Usually a few points better than a frozen one.")
    return ("full",
            "Over 1,500 photos: fine-tune the whole network with layer-wise learning rates.")


__all__ = [
    "TrainConfig", "ConfigError", "STRATEGIES", "AUGMENT_PRESETS", "IMBALANCE_MODES",
    "MONITOR_METRICS", "FINETUNE_SCHEDULES", "DEFAULT_BACKBONE", "recommend_strategy", "default",
]
