"""Labelling glue between a project and the engine (core.labels, core.data.labelled, core.active).

A project that labels photos in the app keeps:
* `project["pool"]`: folders of unsorted photos (a folder on the machine, or a zip extracted
  into the workspace); the project's `camera/` folder is always part of the pool;
* `<project>/labels/decisions.jsonl`: every decision (core.labels);
* `<project>/labels.csv`: the labelled photos, the project's training source (`data_path`),
  rewritten after every decision. The person's photos are never moved or rewritten.
A project that started from class folders keeps its photos' classes: they are imported into
the log once (one action per class) when the first unsorted or camera photo arrives.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.labels import LabelLog, LabelState, write_training_csv
from ui import state
from core.i18n import Msg

log = logging.getLogger(__name__)

SOURCE_KIND = "labels"
CAMERA_DIR = "camera"
QUICK_ROUND_S = 3.0  # a page waits this long for a suggestion round before polling it instead


def plain(text: str) -> str:
    """A user-controlled name made safe for a widget label (which Streamlit renders as Markdown)."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~:$])", r"\\\1", str(text))


def label_log(project: dict[str, Any]) -> LabelLog:
    return LabelLog(state.project_dir(project["id"]))


def labels_dir(project: dict[str, Any]) -> Path:
    return label_log(project).folder


def camera_dir(project: dict[str, Any]) -> Path:
    return state.project_dir(project["id"]) / CAMERA_DIR


def csv_path(project: dict[str, Any]) -> Path:
    return state.project_dir(project["id"]) / "labels.csv"


def pool_folders(project: dict[str, Any]) -> list[str]:
    folders = [f for f in project.get("pool") or [] if Path(f).is_dir()]
    if camera_dir(project).is_dir():
        folders.append(str(camera_dir(project)))
    return folders


def _signature(folders: list[str]) -> str:
    """Changes when a photo is added to or removed from a folder (cheap: file names and sizes)."""
    digest = hashlib.sha1()
    for folder in folders:
        for current, dirs, names in os.walk(folder):
            dirs.sort()
            for name in sorted(names):
                try:
                    stat = os.stat(os.path.join(current, name))
                except OSError:
                    continue
                digest.update(f"{current}/{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


@st.cache_data(max_entries=16, show_spinner=False)
def _pool_cached(folders: tuple[str, ...], signature: str, workspace: str) -> pd.DataFrame:
    from core.data.labelled import scan_loose

    return scan_loose(folders)


def pool_frame(project: dict[str, Any]) -> pd.DataFrame:
    """Every unsorted photo of the project (scanned and checked like a dataset's), label ""."""
    from core.workspace import workspace_dir

    folders = pool_folders(project)
    if not folders:
        from core.data.scan_cache import COLUMNS

        return pd.DataFrame(columns=COLUMNS)
    return _pool_cached(tuple(folders), _signature(folders), str(workspace_dir()))


def all_photos(project: dict[str, Any], current: LabelState) -> pd.DataFrame:
    """The pool plus photos labelled from elsewhere (imported class folders), label ""."""
    pool = pool_frame(project)
    in_pool = set(pool["path"])
    extra = [p for p in current.labels if p not in in_pool]
    if not extra or not csv_path(project).exists():
        return pool
    from core.data.labelled import scan_csv

    labelled = scan_csv(csv_path(project))
    return pd.concat([pool, labelled[labelled["path"].isin(set(extra))].assign(label="")], ignore_index=True)


# ---- changing the project ------------------------------------------------------------------------
def adopt(project: dict[str, Any]) -> dict[str, Any]:
    """Make labels.csv the project's training source; a class-folder dataset's labels come along."""
    if (project.get("source") or {}).get("kind") == SOURCE_KIND:
        return project
    labels = label_log(project)
    data_path = project.get("data_path")
    if data_path and Path(data_path).is_dir():
        from core.data.scan import scan

        df = scan(data_path)
        df = df[df["readable"]]
        for name, rows in df.groupby("label"):
            labels.label(rows["path"].tolist(), str(name), source="import")
        log.info("imported %d labelled photos of %s into the labelling log", len(df), data_path)
    project.update(source={"kind": SOURCE_KIND, "path": str(csv_path(project)), "imported": data_path})
    state.save_project(project)
    return sync(project)


def sync(project: dict[str, Any]) -> dict[str, Any]:
    """After a decision: labels.csv, the project's data_path and file table follow the log."""
    from core.data.labelled import scan_csv

    current = label_log(project).state()
    path = write_training_csv(current, csv_path(project))
    if not current.labels:
        state.clear_files_table(project)
        return state.update_project(project, data_path=None)
    project["data_path"] = str(path)
    state.save_files_table(project, scan_csv(path))  # (scan cache: only new photos are decoded)
    return project


def add_pool_source(project: dict[str, Any], source: str | Path) -> int:
    """A folder or zip of loose photos joins the pool; returns how many files it holds."""
    from core.data.scan import open_source
    from core.data.labelled import loose_files
    from core.errors import DataError

    source = Path(source).expanduser()
    if source.is_dir():
        root = source.resolve()
    else:
        root = open_source(source)  # a zip, safely extracted into the workspace
    n = len(loose_files([root]))
    if not n:
        raise DataError(Msg("err.label.no_files", name=root.name))
    pool = [p for p in project.get("pool") or [] if p != str(root)] + [str(root)]
    project["pool"] = pool
    state.save_project(project)
    adopt(project)
    return n


def save_camera_photo(project: dict[str, Any], data: bytes, target: str | None, suffix: str = ".jpg") -> Path:
    """A camera shot into the project's camera folder, labelled `target` (None: unlabelled pool)."""
    folder = camera_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"camera-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}{suffix}"
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    adopt(project)
    if target:
        label_log(project).label(str(path), target, source="camera")
    sync(project)
    log.info("camera photo %s saved (%s)", path.name, target or "unlabelled")
    return path


# ---- suggestions ---------------------------------------------------------------------------------
def labels_version(current: LabelState) -> str:
    return hashlib.sha1(json.dumps(sorted(current.labels.items())).encode()).hexdigest()[:12]


def backbone(project: dict[str, Any]) -> str:
    from core.config import DEFAULT_BACKBONE

    return (project.get("model") or {}).get("backbone") or DEFAULT_BACKBONE


def suggestions(project: dict[str, Any], current: LabelState, photos: pd.DataFrame) -> tuple[dict | None, dict]:
    """(latest suggestions, background status); starts a new round when the labels changed."""
    from core import active

    folder = labels_dir(project)
    found = active.read_suggestions(folder)
    status = active.refresh_status(folder)
    version = labels_version(current)
    tried = status["version"] == version and (status["running"] or status["error"])  # no retry loop on failure
    if (found is None or found.get("version") != version) and not tried:
        if len(photos):
            active.start_refresh(folder, photos, current.labels, version, backbone(project))
            status = active.refresh_status(folder)
    if status["running"] and status["version"] == version:
        # Why: once the features are cached a round takes well under a second; waiting that long
        # shows the next photo from the order for the labels just given (not from an older round,
        # depending on which finished first). A longer round (the first one reads every photo)
        # goes on in the background and the page polls it.
        status = active.wait_refresh(folder, timeout=QUICK_ROUND_S)
        found = active.read_suggestions(folder)
    return found, status


def queue(current: LabelState, photos: pd.DataFrame, found: dict | None) -> list[str]:
    """Photos still to label, in "label these next" order; unsure ones at the end."""
    readable = photos.loc[photos["readable"].astype(bool), "path"].tolist()
    todo = [p for p in readable if not current.done(p)]
    todo_set = set(todo)
    ordered = [p for p in (found or {}).get("order", []) if p in todo_set]
    seen = set(ordered)
    ordered += [p for p in todo if p not in seen]
    return [p for p in ordered if current.status.get(p) != "unsure"] + \
        [p for p in ordered if current.status.get(p) == "unsure"]
