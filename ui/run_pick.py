"""Choosing one of the project's trained runs (Evaluate, Test pages)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import streamlit as st

from ui import state
from ui.components import next_step
from ui.i18n import say, t

log = logging.getLogger(__name__)


def trained_runs(project: dict[str, Any]) -> list[str]:
    """Project runs that have a model, newest first."""
    return [r for r in reversed(state.project_runs(project)) if (Path(r) / "model.safetensors").exists()]


def pick_run(project: dict[str, Any], key: str) -> str:
    """A selectbox of trained runs (newest first, the project's last run preselected), or stop."""
    runs = trained_runs(project)
    if not runs:
        st.info(t("common.no_run"), icon=":material/info:")
        next_step("train", "common.go_train")
        st.stop()
    last = project.get("last_run")
    index = runs.index(last) if last in runs else 0
    chosen = st.selectbox(t("common.pick_run"), runs, index=index, key=key, format_func=run_title,
                          help=t("common.pick_run_help"))
    warn_if_unfinished(chosen)
    return chosen


def warn_if_unfinished(run_dir: str) -> None:
    """A failed or stopped run's model is its best epoch before it stopped: say so."""
    from core.runs import check_alive, status_label

    status = check_alive(run_dir)
    if status.get("state") != "done":
        label = say(status_label(status))
        st.warning(t("hardening.unfinished_model", state=label), icon=":material/warning:")


def run_title(run_dir: str) -> str:
    from core.runs import CONFIG_FILE, read_json

    config = read_json(Path(run_dir) / CONFIG_FILE) or {}
    name = Path(run_dir).name
    backbone = config.get("backbone", "?")
    strategy = config.get("strategy")
    strategy = t(f"strategy.{strategy}") if strategy else "?"
    return f"{name} · {backbone} · {strategy}"
