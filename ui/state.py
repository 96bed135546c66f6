"""Project state that survives a browser reload or an app restart.

A project is `<workspace>/projects/<id>/project.json` (name, data source, excluded files,
split, chosen backbone/strategy/settings, language, runs). The scanned file table is cached
next to it as `files.csv`. The current project id and the language also live in
`st.query_params` (`?project=<id>&lang=id`), so a reload lands on the same project.
Session state only holds the project id and the language of this browser tab.
"""
from __future__ import annotations

import logging
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.errors import LatihError
from core.jsonfile import json_problem, read_json_checked, update_json, write_json_atomic
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

# A new project's settings are TrainConfig's defaults (core.config.default: their one home);
# the app's one deliberate difference is a held-out test split (the CLI trains without one).
SETTING_FIELDS = ("epochs", "head_epochs", "unfreeze_blocks", "lr", "batch_size", "image_size", "augment",
                  "early_stopping_patience", "weights")
NEW_PROJECT_TEST_FRACTION = 0.1


def default_settings() -> dict[str, Any]:
    from core.config import default

    return {name: default(name) for name in SETTING_FIELDS}


def default_split() -> dict[str, Any]:
    from core.config import default

    return {"val_fraction": default("val_fraction"), "test_fraction": NEW_PROJECT_TEST_FRACTION,
            "seed": default("seed")}


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
        "split": default_split(),
        "model": {"backbone": DEFAULT_BACKBONE, "strategy": None},
        "settings": default_settings(),
        "language": i18n.normalise(language or get_lang()),
        "last_run": None,
        "runs": [],
    }
    project_dir(pid).mkdir(parents=True, exist_ok=True)
    save_project(project)
    return project


class StaleProject(LatihError):
    """The project changed on disk (another tab or window) since this tab last read it."""


class Project(dict):
    """A project as read from disk; remembers what it was (`base`) so that update_project can
    write only the top-level keys the caller changed, never stale copies of the others."""

    base: dict[str, Any] | None = None


def _as_project(data: dict[str, Any]) -> Project:
    import copy

    project = Project(data)
    project.base = copy.deepcopy(data)
    return project


SEEN_KEY = "_latih_project_seen"  # session: project id -> the version this tab last showed
BOUND_KEY = "_latih_bound_widgets"  # session: widget keys that show project fields
STALE_FLAG = "_latih_project_stale"


def _project_path(pid: str | None) -> Path | None:
    if not pid:
        return None
    try:
        return project_dir(pid) / PROJECT_FILE
    except ValueError:
        log.warning("ignoring bad project id %r", pid)
        return None


def _backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def project_problem(pid: str) -> str | None:
    """Why a project's file cannot be used (None when it can, possibly from its .bak copy)."""
    path = _project_path(pid)
    if path is None or not path.exists():
        return None
    data, problem = read_json_checked(path)
    if not problem and isinstance(data, dict):
        return None
    backup, backup_problem = read_json_checked(_backup_path(path))
    if isinstance(backup, dict) and not backup_problem:
        return None
    return json_problem("project.json", problem)


def load_project(pid: str | None) -> dict[str, Any] | None:
    """The project, read fresh; a damaged project.json is restored from its last good copy."""
    path = _project_path(pid)
    if path is None or not path.exists():
        return None
    project, problem = read_json_checked(path)
    if problem or not isinstance(project, dict):
        backup, backup_problem = read_json_checked(_backup_path(path))
        if not isinstance(backup, dict) or backup_problem:
            log.error("project %s is damaged (%s) and has no good backup", pid, problem)
            return None
        log.warning("project.json of %s is damaged (%s); restoring its last good copy", pid, problem)
        backup["restored_from_backup"] = time.time()
        write_json_atomic(path, backup)
        project = backup
    # fill keys added in later versions
    project.setdefault("version", 0)
    project.setdefault("excluded", [])
    project.setdefault("runs", [])
    project.setdefault("split", default_split())
    project.setdefault("model", {})
    project.setdefault("settings", {})
    for key, value in default_settings().items():
        project["settings"].setdefault(key, value)
    return _as_project(project)


def _write(project_id: str, change) -> dict[str, Any]:
    """Locked read-modify-write of project.json: keeps the previous good copy as .bak,
    bumps "version", and tells this tab that it has seen the version it wrote."""
    folder = project_dir(project_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PROJECT_FILE
    before: dict[str, Any] = {}

    def apply(disk: dict) -> dict:
        before["version"] = int(disk.get("version") or 0)
        new = change(dict(disk))
        new["version"] = before["version"] + 1
        new["updated"] = time.time()
        return new

    saved = update_json(path, apply)
    write_json_atomic(_backup_path(path), saved)  # the last good copy, restored if project.json is damaged
    _saw(project_id, saved["version"], previous=before["version"])
    return saved


def _session():
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        return st.session_state if get_script_run_ctx(suppress_warning=True) is not None else None
    except Exception as exc:  # no Streamlit session (engine, tests)
        log.debug("no session: %s", exc)
        return None


def _saw(pid: str, version: int, previous: int | None = None) -> None:
    ss = _session()
    if ss is None:
        return
    seen = ss.setdefault(SEEN_KEY, {})
    # Only a tab that was up to date moves on with its own write; a stale one stays stale.
    if previous is None or seen.get(pid) in (None, previous):
        seen[pid] = version


def save_project(project: dict[str, Any]) -> None:
    """Write the whole project (atomically, locked, with a .bak copy); `project` gets the new version."""
    saved = _write(project["id"], lambda disk: {k: v for k, v in project.items() if k != "restored_from_backup"})
    project.update(version=saved["version"], updated=saved["updated"])
    if isinstance(project, Project):
        import copy

        project.base = copy.deepcopy(saved)


def update_project(project: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Apply `changes` (and any other top-level key the caller changed in `project` since it was
    loaded) onto the project as it is on disk now; keys changed elsewhere meanwhile are kept."""
    project.update(changes)
    base = getattr(project, "base", None)
    if base is None:
        save_project(project)
        return project
    changed = {k for k in project if k != "restored_from_backup" and project[k] != base.get(k)} | set(changes)
    removed = set(base) - set(project)

    def apply(disk: dict) -> dict:
        for key in changed:
            disk[key] = project[key]
        for key in removed:
            disk.pop(key, None)
        return disk

    saved = _write(project["id"], apply)
    project.clear()
    project.update(saved)
    if isinstance(project, Project):
        import copy

        project.base = copy.deepcopy(saved)
    return project


def change_fields(project: dict[str, Any], changes: dict[str, Any], expected_version: int | None = None) -> dict:
    """Write only `changes` ({"settings/epochs": 7, "split/val_fraction": 0.25, ...}) onto the
    project as it is on disk. With `expected_version`, refuse (StaleProject) when the file
    changed since that version: the tab showing it is out of date."""
    def apply(disk: dict) -> dict:
        if expected_version is not None and int(disk.get("version") or 0) != int(expected_version):
            raise StaleProject("this project was changed in another tab or window; the page was reloaded")
        for dotted, value in changes.items():
            *parents, leaf = dotted.split("/")
            node = disk
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return disk

    saved = _write(project["id"], apply)
    project.clear()
    project.update(saved)
    if isinstance(project, Project):
        import copy

        project.base = copy.deepcopy(saved)
    return project


# ---- widgets bound to one project field: ui/tab_sync.py (re-exported for the pages) ----------
from ui.tab_sync import bind, sync_tab  # noqa: E402  (tab_sync imports this module's file functions)


def list_projects() -> list[dict[str, Any]]:
    """Every project, newest first; a damaged one that cannot be restored is listed with
    `damaged` set (and no other keys it could not read), never hiding the others."""
    projects = []
    for path in sorted(projects_root().glob(f"*/{PROJECT_FILE}")):
        pid = path.parent.name
        project = load_project(pid)
        if project:
            projects.append(project)
        elif project_problem(pid):
            projects.append({"id": pid, "name": pid, "damaged": project_problem(pid), "updated": path.stat().st_mtime,
                             "runs": []})
    projects.sort(key=lambda p: p.get("updated", 0), reverse=True)
    return projects


# ---- file table (scan result minus excluded files) ------------------------------------------
def files_table_path(project: dict[str, Any]) -> Path:
    return project_dir(project["id"]) / FILES_TABLE


def save_files_table(project: dict[str, Any], df: pd.DataFrame) -> None:
    """Cache the scan table; its attrs (dataset root, empty class folders) go into project.json."""
    from core.diskspace import partial_file

    path = files_table_path(project)
    tmp = path.with_name(f".{path.name}.tmp")
    with partial_file(tmp):
        df.to_csv(tmp, index=False)
    tmp.replace(path)
    attrs = {k: v for k, v in df.attrs.items() if isinstance(v, (str, int, float, list, type(None)))}
    update_project(project, scan_attrs=attrs)


@st.cache_data(max_entries=4, show_spinner=False)
def _read_files_csv(path: str, mtime_ns: int, size: int) -> pd.DataFrame | None:
    """files.csv parsed once per version of the file (50,000 rows take about 0.6 s; a copy comes
    back from the cache on every rerun of a page), by the engine's reader (core.data.scan.read_table)."""
    from core.data.scan import read_table

    try:
        return read_table(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        log.error("cannot read %s: %s", path, exc)
        return None


def adopt_files_table(project: dict[str, Any], table: Path, attrs: dict, **changes: Any) -> None:
    """Make a scan table written elsewhere in the workspace (a background read,
    core.data.scan_job) the project's, moved rather than parsed and written again; its attrs go
    into project.json with `changes`, as save_files_table does."""
    import shutil

    shutil.move(str(table), str(files_table_path(project)))  # a rename within one workspace
    update_project(project, scan_attrs=attrs, **changes)


def _table_version(project: dict[str, Any]) -> tuple[str, int, int] | None:
    """(path, mtime_ns, size) of the project's files.csv, the key of its parsed copies; None without one."""
    path = files_table_path(project)
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return str(path), info.st_mtime_ns, info.st_size


def load_files_table(project: dict[str, Any], include_excluded: bool = False) -> pd.DataFrame | None:
    version = _table_version(project)
    df = _read_files_csv(*version) if version else None
    if df is None:
        return None
    if not include_excluded and project.get("excluded"):
        df = df[~df["path"].isin(set(project["excluded"]))].reset_index(drop=True)
    df.attrs.update(project.get("scan_attrs") or {})
    return df


def readable_count(project: dict[str, Any]) -> int | None:
    """How many of the project's photos can be read (left-out ones included); None without a
    table. Counted once per version of files.csv: pages ask for it on every rerun."""
    version = _table_version(project)
    return _readable_count(*version) if version else None


@st.cache_data(max_entries=8, show_spinner=False)
def _readable_count(path: str, mtime_ns: int, size: int) -> int | None:
    df = _read_files_csv(path, mtime_ns, size)
    return None if df is None else int(df["readable"].sum())


def scan_attrs_key(project: dict[str, Any]) -> str:
    """The project's scan attrs (the dataset root, ...) as one text: part of a cache key."""
    import json

    return json.dumps(project.get("scan_attrs") or {}, sort_keys=True)


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
