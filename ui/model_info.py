"""What the Model page shows about backbones (thin wrappers over core.backbones, cached)."""
from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import streamlit as st

from ui.components import fmt_seconds
from ui.i18n import t

log = logging.getLogger(__name__)


def default_backbone() -> str:
    from core.config import DEFAULT_BACKBONE

    return DEFAULT_BACKBONE


@st.cache_data(show_spinner=False)
def backbones() -> list:
    from core.backbones import list_backbones

    return list(list_backbones())


@st.cache_data(show_spinner=False, ttl=60)
def offline(name: str) -> bool:
    from core.weights import weights_available_offline

    try:
        return bool(weights_available_offline(name))
    except Exception as exc:  # a probe must never break the page
        log.warning("weights_available_offline(%s) failed: %s", name, exc)
        return False


def display_name(name: str) -> str:
    """The friendly name of a listed backbone, else the timm name itself."""
    try:
        return next((s.display_name for s in backbones() if s.name == name), name)
    except Exception as exc:  # the list must never break a summary line
        log.warning("backbone list unavailable: %s", exc)
        return name


def train_count(df: pd.DataFrame, project: dict[str, Any]) -> int:
    """Photos that will be used for training (readable, minus val/test)."""
    readable = df[df["readable"]] if "readable" in df.columns else df
    if readable["split"].ne("").any():
        return int((readable["split"] == "train").sum())
    keep = 1.0 - float(setting(project, "val_fraction")) - float(setting(project, "test_fraction"))
    return int(round(len(readable) * max(keep, 0.0)))


@st.cache_data(show_spinner=False, ttl=600)
def _cost(name: str, n_images: int, strategy: str, epochs: int, image_size: int | None, batch: int,
          val_fraction: float, head_epochs: int, unfreeze_blocks: int) -> dict | None:
    from core.cost import estimate_cost

    try:
        return estimate_cost(name, strategy, n_images, image_size=image_size, epochs=epochs, batch_size=batch,
                             val_fraction=val_fraction, head_epochs=head_epochs, unfreeze_blocks=unfreeze_blocks)
    except Exception as exc:  # an estimate must never break the page
        log.warning("estimate_cost(%s) failed: %s", name, exc)
        return None


def card_info(spec, n_images: int, strategy: str, config, measured=None,
              df: pd.DataFrame | None = None) -> dict[str, Any]:
    """What a backbone card shows for the project's draft TrainConfig; with `measured` (the
    project's full config) and `df`, the time measured on this computer (core.time_estimate)
    once this machine has measured that backbone, else the rough figure."""
    size_mb = float(getattr(spec, "size_mb", 0.0) or round(float(spec.params_m) * 4.0, 1))
    cost = None
    if measured is not None and df is not None:
        cost = _measured_cost(measured.replace(backbone=spec.name, strategy=strategy), df)
    if cost is None:
        args = (n_images, strategy, config.epochs, config.image_size, config.batch_size, config.val_fraction,
                config.head_epochs, config.unfreeze_blocks)
        cost = _cost(spec.name, *args)
        if cost and measured is not None and df is not None and spec.name != measured.backbone:
            # another backbone is measured here: scale this rough figure by how far its rough figure was off
            timed = _measured_cost(measured.replace(strategy=strategy), df)
            rough = _cost(measured.backbone, *args)
            if timed and timed.get("measured") and rough and rough.get("seconds"):
                factor = float(timed["seconds"]) / float(rough["seconds"])
                cost = {**cost, "seconds": round(float(cost["seconds"]) * factor, 1), "scaled": True}
    return {"offline": offline(spec.name), "size_mb": size_mb, "speed": describe_cost(cost, spec), "cost": cost}


def _measured_cost(config, df: pd.DataFrame) -> dict | None:
    from core.time_estimate import needs_measuring
    from ui.time_advice import estimate_for

    try:
        if needs_measuring(config):
            return None
    except Exception as exc:  # an unknown backbone: the rough figure says what it can
        log.warning("cannot price %s on this computer: %s", config.backbone, exc)
        return None
    return estimate_for(config.to_json(), df)


def describe_cost(cost: dict | None, spec=None) -> str:
    parts = []
    if cost and cost.get("seconds"):
        key = "advice_time.card" if cost.get("measured") else "model.cost_time"
        parts.append(t(key, time=fmt_seconds(float(cost["seconds"]))))
    if cost and cost.get("memory_mb"):
        parts.append(t("model.cost_memory", mb=f"{float(cost['memory_mb']):,.0f}"))
    if cost and cost.get("measured") and cost.get("images_per_s"):
        speeds = cost["images_per_s"]
        parts.append(t("model.cost_speed", ips=f"{float(speeds.get('train') or speeds.get('forward')):.0f}"))
    elif cost is not None and not cost.get("measured"):
        ips = getattr(spec, "cpu_images_per_s", None)
        if ips:
            parts.append(t("model.cost_speed", ips=f"{float(ips):.0f}"))
        parts.append(t("advice_time.scaled" if cost.get("scaled") else "advice_time.rough"))
    return " · ".join(parts)


def check_backbone_name(name: str) -> None:
    """Raise a LatihError when timm does not know the name."""
    from core.backbones import get_spec

    get_spec(name)


# ---- the TrainConfig of a project ----------------------------------------------------------------
def training_data_path(project: dict[str, Any]) -> str:
    """The photos to estimate on: the dataset itself, or, when photos are left out, a labels CSV
    (path,label) of the kept ones in the project folder, which `core.data.scan.scan` reads as a
    dataset. Training itself gets the left-out photos as `TrainConfig.exclude` instead; either
    way the person's own files are never touched."""
    import hashlib
    import os
    from pathlib import Path

    from ui import state

    excluded = sorted(project.get("excluded") or [])
    if not excluded:
        return str(project["data_path"])
    digest = hashlib.sha1("\n".join([str(project["data_path"]), *excluded]).encode()).hexdigest()[:10]
    target = state.project_dir(project["id"]) / f"training-labels-{digest}.csv"
    if not target.exists():
        df = state.load_files_table(project)
        kept = df[df["readable"].astype(bool)][["path", "label"]] if df is not None else pd.DataFrame(
            columns=["path", "label"])
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        kept.to_csv(partial, index=False)
        os.replace(partial, target)
        log.info("kept photos of project %s written to %s", project["id"], Path(target).name)
    return str(target)


# Where each TrainConfig field lives in project.json. A field the project does not hold (or
# holds as None = "automatic") takes TrainConfig's own default: the one home of the defaults.
PROJECT_FIELDS = {
    "model": ("backbone", "strategy"),
    "settings": ("weights", "epochs", "head_epochs", "unfreeze_blocks", "lr", "batch_size", "image_size", "augment",
                 "early_stopping_patience", "positive_class", "target_sensitivity"),
    "split": ("val_fraction", "test_fraction", "seed"),
}


def setting(project: dict[str, Any], name: str) -> Any:
    """One TrainConfig field of the project: the stored value, else TrainConfig's default."""
    from core.config import default

    for section, names in PROJECT_FIELDS.items():
        if name in names:
            value = (project.get(section) or {}).get(name)
            if value not in (None, ""):
                return value
    return default(name)


def draft_config(project: dict[str, Any]):
    """The project's TrainConfig as it stands, validated: ConfigError (one plain line) for a
    choice that cannot train, so the Model page says so while the person edits, not the worker
    later. Built from the first choice on; the strategy is TrainConfig's until one is chosen."""
    from core.backbones import check_image_size
    from core.config import TrainConfig

    values: dict[str, Any] = {}
    for section, names in PROJECT_FIELDS.items():
        stored = project.get(section) or {}
        values.update({name: stored[name] for name in names if stored.get(name) not in (None, "")})
    config = TrainConfig(data_path=str(project.get("data_path") or ""), run_name=project.get("name"),
                         exclude=tuple(sorted(project.get("excluded") or ())),  # left-out photos, repeatable
                         groups=project.get("groups") or "", resplit=bool(project.get("resplit")), **values)
    check_image_size(config.backbone, config.image_size)
    return config


def config_problem(project: dict[str, Any]) -> str | None:
    """Why the project's settings cannot train, in one line; None when they can."""
    from core.errors import LatihError

    try:
        draft_config(project)
    except LatihError as exc:
        return str(exc)
    return None


def build_config(project: dict[str, Any], df: pd.DataFrame):
    """The frozen TrainConfig for what the person chose on the Data and Model pages: the
    draft, with the recommended strategy when none was chosen and the photos' recipe."""
    from core.config import recommend_strategy

    model = project.get("model") or {}
    config = draft_config(project)
    if not model.get("strategy"):
        config = config.replace(strategy=recommend_strategy(train_count(df, project))[0])
    return config.replace(**_recipe(model, project.get("settings") or {}))


def _recipe(model: dict[str, Any], settings: dict[str, Any]) -> dict:
    """The auto recipe (core.advice) when the person kept the strategy the photos called for;
    epochs and learning rate the person set on the Model page win."""
    recipe = dict(model.get("recipe") or {})
    if not recipe or recipe.get("strategy") != model.get("strategy"):
        return {}
    recipe.pop("strategy", None)
    from core.config import default

    if "epochs" in settings and int(settings["epochs"]) != default("epochs"):
        recipe.pop("epochs", None)
    if settings.get("lr") is not None:
        recipe.pop("lr", None)
    return recipe
