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
    split = project.get("split") or {}
    keep = 1.0 - float(split.get("val_fraction", 0.2)) - float(split.get("test_fraction", 0.1))
    return int(round(len(readable) * max(keep, 0.0)))


@st.cache_data(show_spinner=False, ttl=600)
def _cost(name: str, n_images: int, strategy: str, epochs: int, image_size: int | None, batch: int,
          val_fraction: float) -> dict | None:
    from core.cost import estimate_cost

    try:
        return estimate_cost(name, strategy, n_images, image_size=image_size, epochs=epochs, batch_size=batch,
                             val_fraction=val_fraction)
    except Exception as exc:  # an estimate must never break the page
        log.warning("estimate_cost(%s) failed: %s", name, exc)
        return None


def card_info(spec, n_images: int, strategy: str, settings: dict[str, Any], val_fraction: float = 0.2) -> dict[str, Any]:
    size_mb = float(getattr(spec, "size_mb", 0.0) or round(float(spec.params_m) * 4.0, 1))
    cost = _cost(spec.name, n_images, strategy, int(settings.get("epochs", 15)), settings.get("image_size"),
                 int(settings.get("batch_size", 32)), val_fraction)
    return {"offline": offline(spec.name), "size_mb": size_mb, "speed": describe_cost(cost, spec), "cost": cost}


def describe_cost(cost: dict | None, spec=None) -> str:
    parts = []
    if cost and cost.get("seconds"):
        parts.append(t("model.cost_time", time=fmt_seconds(float(cost["seconds"]))))
    if cost and cost.get("memory_mb"):
        parts.append(t("model.cost_memory", mb=f"{float(cost['memory_mb']):,.0f}"))
    ips = getattr(spec, "cpu_images_per_s", None)
    if ips:
        parts.append(t("model.cost_speed", ips=f"{float(ips):.0f}"))
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


def build_config(project: dict[str, Any], df: pd.DataFrame):
    """The frozen TrainConfig for what the person chose on the Data and Model pages."""
    from core.config import TrainConfig, recommend_strategy

    model = project.get("model") or {}
    settings = project.get("settings") or {}
    split = project.get("split") or {}
    strategy = model.get("strategy") or recommend_strategy(train_count(df, project))[0]
    return TrainConfig(
        data_path=project["data_path"],
        exclude=tuple(sorted(project.get("excluded") or ())),  # left-out photos, repeatable from the run's config
        backbone=model.get("backbone") or default_backbone(),
        strategy=strategy,
        weights=settings.get("weights", "pretrained"),
        epochs=int(settings.get("epochs", 15)),
        lr=settings.get("lr"),
        batch_size=int(settings.get("batch_size", 32)),
        image_size=settings.get("image_size"),
        augment=settings.get("augment", "light"),
        val_fraction=float(split.get("val_fraction", 0.2)),
        test_fraction=float(split.get("test_fraction", 0.1)),
        seed=int(split.get("seed", 0)),
        early_stopping_patience=int(settings.get("early_stopping_patience", 5)),
        positive_class=settings.get("positive_class") or None,
        target_sensitivity=float(settings.get("target_sensitivity", 0.95)),
        run_name=project.get("name"),
        groups=project.get("groups") or "",
        resplit=bool(project.get("resplit")),
    ).replace(**_recipe(model, settings))


def _recipe(model: dict[str, Any], settings: dict[str, Any]) -> dict:
    """The auto recipe (core.advice) when the person kept the strategy the photos called for;
    epochs and learning rate the person set on the Model page win."""
    recipe = dict(model.get("recipe") or {})
    if not recipe or recipe.get("strategy") != model.get("strategy"):
        return {}
    recipe.pop("strategy", None)
    if "epochs" in settings and int(settings["epochs"]) != 15:
        recipe.pop("epochs", None)
    if settings.get("lr") is not None:
        recipe.pop("lr", None)
    return recipe
