"""Pick the training strategy from the photos themselves, not only from how many there are.

Two probes on the cached frozen features (one forward pass per photo, reused by training):
  * a linear probe's cross-validated accuracy: how well ImageNet features already separate
    the classes (what feature extraction will reach);
  * familiarity: how sure the backbone's own ImageNet head is about the photos. Ants and
    bees are ImageNet photos (high); fundus photos and lab leaves are not (low).

Rules (measured on the shared sets, see bench/bench_estimates.py):
  probe >= FROZEN_ENOUGH                  -> feature extraction: the features already do the job
  familiarity < FAMILIAR                  -> full fine-tune with FINE_TUNE_RECIPE: photos far from
                                             ImageNet need their features re-learnt, even when few
  n_train >= MANY_PHOTOS                  -> full fine-tune: enough photos to afford it
  otherwise                               -> feature extraction (ImageNet-like photos: fine-tuning
                                             costs many times the time for a point or less)

The recommendation carries the TrainConfig changes that make it one repeatable config.
"""
from __future__ import annotations

import logging
from pathlib import Path
from dataclasses import asdict, dataclass, field

import pandas as pd

from core.config import DEFAULT_BACKBONE, TrainConfig

log = logging.getLogger(__name__)

FROZEN_ENOUGH = 0.96
FAMILIAR = 0.5
MANY_PHOTOS = 1500
# The fine-tune that the auto choice uses. Measured on acrima_glaucoma (seeded 80/20 split):
# every layer at one learning rate of 1e-4, no layer decay and no warm-up, 4 epochs, reaches
# the level of a plain hand-written loop; the older 0.75 layer decay, 5e-5 and a warm-up
# epoch left the lower layers nearly frozen and stopped several points short.
FINE_TUNE_RECIPE = {"strategy": "full", "epochs": 4, "lr": 1e-4, "backbone_lr": 1e-4, "layer_decay": 1.0,
                    "warmup_epochs": 0}
FEATURE_RECIPE = {"strategy": "feature-extraction"}


@dataclass
class Advice:
    strategy: str
    reason: str
    changes: dict  # TrainConfig fields to set
    probe_accuracy: float
    familiarity: float
    n_photos: int
    expected_seconds: float
    alternative_seconds: float
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def apply(self, config: TrainConfig) -> TrainConfig:
        return config.replace(**self.changes)


REASONS = {
    "frozen-enough": "The pretrained features already tell the classes apart (a quick test reaches {probe}), so "
                     "training only a new last layer is enough: it is fast and safe with few photos.",
    "far-from-imagenet": "These photos look unlike the everyday photos the model learnt from (it recognises them "
                         "with only {familiarity} confidence) and its frozen features reach only {probe}: re-training "
                         "all layers gently usually wins several points, even with a few hundred photos.",
    "enough-photos": "The frozen features reach only {probe}, and with {n} training photos there is enough to "
                     "re-train all layers gently.",
    "few-familiar": "These photos look like the everyday photos the model learnt from (it recognises them with "
                    "{familiarity} confidence), so its frozen features fit them ({probe} in a quick test): a new last "
                    "layer is the safe, fast choice for {n} training photos; fine-tuning would cost far more time "
                    "for little gain.",
}


def decide(probe_accuracy: float, familiarity: float, n_train: int) -> tuple[str, str, str]:
    """(strategy, reason code, plain reason) from the two probes and the number of training photos."""
    if probe_accuracy >= FROZEN_ENOUGH:
        strategy, code = "feature-extraction", "frozen-enough"
    elif familiarity < FAMILIAR:
        strategy, code = "full", "far-from-imagenet"
    elif n_train >= MANY_PHOTOS:
        strategy, code = "full", "enough-photos"
    else:
        strategy, code = "feature-extraction", "few-familiar"
    from core.i18n import Msg

    # REASONS is the English of the catalogue's advice.<code>; the Msg is shown in the page's language
    return strategy, code, Msg(f"advice.{code}", **reason_facts(probe_accuracy, familiarity, n_train))


def reason_facts(probe_accuracy: float, familiarity: float, n_train: int) -> dict:
    return {"probe": f"{probe_accuracy * 100:.0f}%", "familiarity": f"{familiarity * 100:.0f}%", "n": f"{n_train:,}"}


def training_count(rows: pd.DataFrame, val_fraction: float = 0.2) -> int:
    """Photos that will train: the dataset's own train/ folder when it has one, else the share left."""
    splits = rows["split"] if "split" in rows else pd.Series([""] * len(rows))
    if (splits == "train").any() and (splits != "").all():
        return int((splits == "train").sum())
    return int(round(len(rows) * (1 - val_fraction)))


def recipe(strategy: str) -> dict:
    """The TrainConfig changes for a recommended strategy."""
    return dict(FEATURE_RECIPE if strategy == "feature-extraction" else FINE_TUNE_RECIPE)


def recommend(df: pd.DataFrame, backbone: str = DEFAULT_BACKBONE, workspace=None, groups: pd.Series | None = None,
              val_fraction: float = 0.2, progress=None, device: str = "auto",
              image_size: int | None = None) -> Advice:
    """Probe the photos of a scanned dataset (readable rows) and recommend a strategy."""
    from core.cross_validation import cross_validate
    from core.data.split import split_groups
    from core.features import familiarity, frozen_features

    readable = df["readable"].astype(bool)
    rows = df[readable].reset_index(drop=True)
    rows.attrs = dict(df.attrs)
    class_names = sorted(rows["label"].astype(str).unique())
    labels = rows["label"].astype(str).map({c: i for i, c in enumerate(class_names)}).to_numpy()
    frozen = frozen_features(rows, backbone, workspace, image_size, progress=progress, device=device)
    patient = groups.reindex(df.index)[readable].reset_index(drop=True) if groups is not None else None
    fold_groups = split_groups(rows, patient).to_numpy()
    cv = cross_validate(frozen.features, labels, fold_groups, class_names, n_splits=5, n_repeats=1)
    probe, fam = cv.accuracy.mean, familiarity(frozen.imagenet_probs)
    n_train = training_count(rows, val_fraction)
    strategy, code, reason = decide(probe, fam, n_train)
    changes = recipe(strategy)
    other = FINE_TUNE_RECIPE if strategy == "feature-extraction" else FEATURE_RECIPE
    # Priced on this computer when its speed is measured (core.time_estimate), else rough; the
    # Model page shows the same figures for the same choices.
    from core.time_estimate import estimate as time_on_this_computer

    base = TrainConfig(data_path=".", backbone=backbone, image_size=image_size, val_fraction=val_fraction,
                       device=device)
    expected = time_on_this_computer(base.replace(**changes), rows, workspace).seconds
    alternative = time_on_this_computer(base.replace(**other), rows, workspace).seconds
    log.info("advice: %s (probe %.3f, familiarity %.3f, %d photos)", strategy, probe, fam, len(rows))
    return Advice(strategy, reason, changes, round(probe, 4), round(fam, 4), len(rows), expected, alternative,
                  {"probe_interval": [cv.accuracy.low, cv.accuracy.high], "classes": class_names, "code": code,
                   "n_train": n_train})


def recommend_for_config(config: TrainConfig, workspace=None, progress=None) -> Advice | None:
    """The advice for the dataset and groups a config names (what `latih train` without --strategy
    uses); None when the photos cannot be trained on at all: training then says why, in its words."""
    from core.data.groups import assign_groups
    from core.data.scan import scan
    from core.data.findings import has_errors
    from core.data.validate import check_dataset

    if not Path(config.data_path).expanduser().exists():
        return None
    df = scan(config.data_path, workspace=workspace)
    if has_errors(check_dataset(df)):
        return None
    groups = assign_groups(df, config.groups) if config.groups else None
    return recommend(df, config.backbone, workspace, groups, config.val_fraction, progress, config.device,
                     config.image_size)


def minutes(seconds: float) -> str:
    from core.i18n import Msg

    if seconds < 90:
        return Msg("advice.about_seconds", s=max(1, int(round(seconds))))
    return Msg("advice.about_minutes", m=int(round(seconds / 60)))


__all__ = ["Advice", "REASONS", "reason_facts", "recipe", "FINE_TUNE_RECIPE", "FROZEN_ENOUGH", "FAMILIAR", "decide", "recommend", "recommend_for_config",
           "minutes"]
