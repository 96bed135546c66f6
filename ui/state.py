"""Project state that survives a browser reload or an app restart.

A project is `<workspace>/projects/<id>/project.json` (name, data source, excluded files,
split, chosen backbone/strategy/settings, language, runs). The scanned file table is cached
next to it as `files.csv`. The current project id and the language also live in
`st.query_params` (`?project=<id>&lang=id`), so a reload lands on the same project.
Session state only holds the project id and the language of this browser tab.
"""
from __future__ import annotations

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

from core.workspace import subdir
from ui import i18n

log = logging.getLogger(__name__)

PROJECT_FILE = "project.json"
FILES_TABLE = "files.csv"
PROJECT_KEY = "project_id"
QP_PROJECT = "project"
QP_LANG = "lang"
REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO_ROOT / "assets" / "sample"

DEFAULT_SETTINGS: dict[str, Any] = {
    "epochs": 15,
    "lr": None,
    "batch_size": 32,
    "image_size": None,
    "augment": "light",
    "early_stopping_patience": 5,
    "weights": "pretrained",
}


# ---- project files -----------------------------------------------------------------------
def projects_root() -> Path:
    return subdir("projects")


def project_dir(pid: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,80}", pid or ""):
        raise ValueError(f"bad project id {pid!r}")
    return projects_root() / pid


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
    return slug or "project"


def new_project(name: str, data_path: str | None = None, source_kind: str | None = None,
                language: str | None = None) -> dict[str, Any]:
    from core.config import DEFAULT_BACKBONE

    pid = f"{_slug(name)}-{uuid.uuid4().hex[:6]}"
    now = time.time()
    project: dict[str, Any] = {
        "id": pid,
        "name": name.strip() or "Project",
        "created": now,
        "updated": now,
        "source": {"kind": source_kind, "path": data_path},
        "data_path": data_path,
        "excluded": [],
        "split": {"val_fraction": 0.2, "test_fraction": 0.1, "seed": 0},
        "model": {"backbone": DEFAULT_BACKBONE, "strategy": None},
        "settings": dict(DEFAULT_SETTINGS),
        "language": i18n.normalise(language or get_lang()),
        "last_run": None,
        "runs": [],
    }
    project_dir(pid).mkdir(parents=True, exist_ok=True)
    save_project(project)
    return project


def load_project(pid: str | None) -> dict[str, Any] | None:
    if not pid:
        return None
    try:
        path = project_dir(pid) / PROJECT_FILE
    except ValueError:
        log.warning("ignoring bad project id %r", pid)
        return None
    if not path.exists():
        return None
    try:
        project = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        log.error("cannot read %s: %s", path, exc)
        return None
    # fill keys added in later versions
    project.setdefault("excluded", [])
    project.setdefault("runs", [])
    project.setdefault("split", {"val_fraction": 0.2, "test_fraction": 0.1, "seed": 0})
    project.setdefault("model", {})
    project.setdefault("settings", {})
    for key, value in DEFAULT_SETTINGS.items():
        project["settings"].setdefault(key, value)
    return project


def save_project(project: dict[str, Any]) -> None:
    project["updated"] = time.time()
    folder = project_dir(project["id"])
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (PROJECT_FILE + ".tmp")
    tmp.write_text(json.dumps(project, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, folder / PROJECT_FILE)


def update_project(project: dict[str, Any], **changes: Any) -> dict[str, Any]:
    project.update(changes)
    save_project(project)
    return project


def list_projects() -> list[dict[str, Any]]:
    projects = []
    for path in sorted(projects_root().glob(f"*/{PROJECT_FILE}")):
        project = load_project(path.parent.name)
        if project:
            projects.append(project)
    projects.sort(key=lambda p: p.get("updated", 0), reverse=True)
    return projects


# ---- file table (scan result minus excluded files) ------------------------------------------
def files_table_path(project: dict[str, Any]) -> Path:
    return project_dir(project["id"]) / FILES_TABLE


def save_files_table(project: dict[str, Any], df: pd.DataFrame) -> None:
    """Cache the scan table; its attrs (dataset root, empty class folders) go into project.json."""
    df.to_csv(files_table_path(project), index=False)
    attrs = {k: v for k, v in df.attrs.items() if isinstance(v, (str, int, float, list, type(None)))}
    update_project(project, scan_attrs=attrs)


def load_files_table(project: dict[str, Any], include_excluded: bool = False) -> pd.DataFrame | None:
    path = files_table_path(project)
    if not path.exists():
        return None
    try:
        df = pd.read_csv(path, keep_default_na=False, dtype={"sha1": str, "phash": str, "split": str,
                                                              "label": str, "path": str, "error": str,
                                                              "mode": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        log.error("cannot read %s: %s", path, exc)
        return None
    if "readable" in df.columns:
        df["readable"] = df["readable"].astype(str).str.lower().isin(("true", "1"))
    if not include_excluded and project.get("excluded"):
        df = df[~df["path"].isin(set(project["excluded"]))].reset_index(drop=True)
    df.attrs.update(project.get("scan_attrs") or {})
    return df


def clear_files_table(project: dict[str, Any]) -> None:
    path = files_table_path(project)
    if path.exists():
        path.unlink()


# ---- session <-> query params <-> project ----------------------------------------------------
def get_lang() -> str:
    return i18n.get_lang()


def init_session() -> None:
    """Once per browser session: take project and language from the URL."""
    ss = st.session_state
    if ss.get("_latih_init"):
        return
    ss["_latih_init"] = True
    pid = st.query_params.get(QP_PROJECT)
    project = load_project(pid) if pid else None
    if project:
        ss[PROJECT_KEY] = project["id"]
    lang = st.query_params.get(QP_LANG)
    if lang:
        ss[i18n.SESSION_KEY] = i18n.normalise(lang)
    elif project:
        ss[i18n.SESSION_KEY] = i18n.normalise(project.get("language"))
    else:
        ss.setdefault(i18n.SESSION_KEY, i18n.DEFAULT_LANG)


def current_project() -> dict[str, Any] | None:
    """The open project, read fresh from disk (another tab or the engine may have changed it)."""
    return load_project(st.session_state.get(PROJECT_KEY))


def open_project(pid: str | None) -> None:
    st.session_state[PROJECT_KEY] = pid
    project = load_project(pid)
    if project and project.get("language"):
        st.session_state[i18n.SESSION_KEY] = i18n.normalise(project["language"])
    sync_query_params()


def set_language(lang: str) -> None:
    lang = i18n.normalise(lang)
    st.session_state[i18n.SESSION_KEY] = lang
    project = current_project()
    if project and project.get("language") != lang:
        update_project(project, language=lang)
    sync_query_params()


def link_params() -> dict[str, str]:
    """Query params to carry along on page links (Streamlit clears them on navigation)."""
    params = {QP_LANG: get_lang()}
    pid = st.session_state.get(PROJECT_KEY)
    if pid:
        params[QP_PROJECT] = pid
    return params


def sync_query_params() -> None:
    wanted = link_params()
    current = {k: st.query_params.get(k) for k in (QP_PROJECT, QP_LANG)}
    if QP_PROJECT not in wanted and current.get(QP_PROJECT):
        del st.query_params[QP_PROJECT]
    for key, value in wanted.items():
        if current.get(key) != value:
            st.query_params[key] = value


# ---- runs of a project -------------------------------------------------------------------------
def add_run(project: dict[str, Any], run_dir: str | Path) -> None:
    run_dir = str(Path(run_dir).resolve())
    runs = [r for r in project.get("runs", []) if r != run_dir]
    runs.append(run_dir)
    update_project(project, runs=runs, last_run=run_dir)


def project_runs(project: dict[str, Any]) -> list[str]:
    """Run folders of this project that still exist, newest last."""
    return [r for r in project.get("runs", []) if Path(r).is_dir()]


def forget_run(project: dict[str, Any], run_dir: str | Path) -> None:
    gone = Path(run_dir).resolve()
    runs = [r for r in project.get("runs", []) if Path(r).resolve() != gone]
    last = project.get("last_run")
    if last and Path(last).resolve() == gone:
        last = runs[-1] if runs else None
    update_project(project, runs=runs, last_run=last)


def sample_datasets() -> list[str]:
    if not SAMPLE_DIR.is_dir():
        return []
    return sorted(p.name for p in SAMPLE_DIR.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
