"""Small building blocks shared by the pages: headers, next-step links, error guards."""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Iterator

import streamlit as st

from core.errors import LatihError
from ui import state
from ui.i18n import LANGS, t
from ui.safe_text import md

log = logging.getLogger(__name__)

# page file -> (i18n title key, icon, url path). The single list app.py builds navigation from.
PAGES: list[tuple[str, str, str, str]] = [
    ("pages/home.py", "nav.home", ":material/home:", "home"),
    ("pages/data.py", "nav.data", ":material/photo_library:", "data"),
    ("pages/label.py", "nav.label", ":material/label:", "label"),
    ("pages/model.py", "nav.model", ":material/neurology:", "model"),
    ("pages/train.py", "nav.train", ":material/model_training:", "train"),
    ("pages/evaluate.py", "nav.evaluate", ":material/fact_check:", "evaluate"),
    ("pages/test.py", "nav.test", ":material/photo_camera:", "test"),
    ("pages/runs.py", "nav.runs", ":material/history:", "runs"),
]
PAGE_BY_URL = {url: (path, key, icon) for path, key, icon, url in PAGES}


def pages_manager():
    """Streamlit's private PagesManager class, or None in a Streamlit without it.

    The one place that touches it (tests/conftest.py gets it from here). Why there is no
    supported way: Streamlit's documented fix is to rename the `pages/` folder (its legacy
    auto-discovery only looks for that name), and Latih's design keeps `pages/`."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a future Streamlit without it has no v1 fallback to undo
        return None
    return PagesManager if hasattr(PagesManager, "uses_pages_directory") else None


def frame() -> None:
    """First line of every page: make sure the page runs inside app.py's navigation.

    Streamlit treats a `pages/` folder next to the entrypoint as a v1 multipage app until
    `st.navigation` has been called once in the process, so the first run after a server
    start (e.g. a reload of /data) or every AppTest run would execute the page alone,
    without app.py's sidebar (language switch) and page titles. Switch to v2 and run again:
    the URL path of each page equals its file name, so the same page comes back.
    """
    manager = pages_manager()
    if manager is not None and manager.uses_pages_directory:
        manager.uses_pages_directory = False
        st.rerun()
    from ui import access

    if not access.unlocked():  # field mode: a page reached without app.py's password form
        st.stop()


def user_error(exc: BaseException) -> None:
    """Show a failure the person can act on: the engine's one-line message, no traceback."""
    from ui.i18n import say

    message = exc.args[0] if exc.args else ""
    st.error(say(message) if str(exc) else t("common.error_generic"), icon=":material/error:")


@contextlib.contextmanager
def guard(what: str | None = None) -> Iterator[None]:
    """`with guard(): ...` turns LatihError, bad settings and a refused file operation (OSError:
    permission, a missing disk) into st.error instead of a traceback."""
    from core.config import ConfigError

    try:
        yield
    except (LatihError, ConfigError) as exc:
        log.info("user-facing error%s: %s", f" ({what})" if what else "", exc)
        user_error(exc)
    except FileNotFoundError as exc:
        log.info("file not found: %s", exc)
        st.error(t("common.error_missing_file", path=getattr(exc, "filename", "") or str(exc)))
    except OSError as exc:  # a folder the user may not read, a disk unplugged: their words, not a traceback
        from core.errors import os_message
        from ui.i18n import say

        log.warning("file operation failed%s: %r", f" ({what})" if what else "", exc)
        st.error(say(os_message(exc)), icon=":material/error:")


def page_header(title_key: str, purpose_key: str) -> None:
    st.title(t(title_key))
    st.caption(t(purpose_key))


def next_step(url: str, label_key: str, key: str | None = None) -> None:
    """A link to the next page, carrying project and language in the URL."""
    path, title_key, icon = PAGE_BY_URL[url]
    try:
        st.page_link(path, label=t(label_key), icon=icon, query_params=state.link_params())
    except Exception as exc:  # page run outside app.py (no navigation registered)
        log.debug("page_link unavailable: %s", exc)
        st.markdown(f"**→ {t(label_key)}**")


def go_to(url: str) -> None:
    path, _, _ = PAGE_BY_URL[url]
    st.switch_page(path, query_params=state.link_params())


def require_project() -> dict[str, Any]:
    """The open project, or a pointer to Home and stop."""
    project = state.current_project()
    if project is None:
        pid = st.session_state.get(state.PROJECT_KEY)
        problem = state.project_problem(pid) if pid else None
        if problem:
            st.error(t("hardening.damaged_project", name=pid, problem=problem), icon=":material/error:")
        st.info(t("common.no_project"), icon=":material/info:")
        next_step("home", "common.go_home")
        st.stop()
    if state.sync_tab(project):
        st.warning(t("hardening.stale_reloaded"), icon=":material/sync_problem:")
    if project.get("restored_from_backup"):
        st.info(t("hardening.project_restored"), icon=":material/restore:")
    return project


def require_data(project: dict[str, Any]):
    """The project's file table (read once from its source if needed), or a pointer to Data and stop."""
    from ui import data_ops

    if project.get("data_path") and not state.files_table_path(project).exists() \
            and not project.get("pending_read") and not data_ops.read_failed(project):
        # a large set is read in the background (the Data page shows its bar): then no table yet
        with guard("read source"):
            data_ops.read_source(project, project["data_path"], (project.get("source") or {}).get("kind") or "folder")
    df = state.load_files_table(project)
    if df is None or df.empty:
        st.info(t("common.no_data"), icon=":material/info:")
        next_step("data", "common.go_data")
        st.stop()
    return df


def lang_keyed(key: str, options: list) -> dict:
    """key= and index= for a select box whose option labels are translated: one widget per
    language (the browser keeps a widget's option labels while its key stays the same, so a
    language switch showed the old labels until a reload), the choice carried across."""
    lang = state.get_lang()
    chosen = st.session_state.get(f"{key}__choice")
    index = options.index(chosen) if chosen in options else 0

    def remember() -> None:
        st.session_state[f"{key}__choice"] = st.session_state.get(f"{key}.{lang}")

    return {"key": f"{key}.{lang}", "index": index, "on_change": remember}


def sidebar() -> None:
    """Language switch and the open project; drawn on every page by app.py."""
    with st.sidebar:
        current = state.get_lang()
        codes = list(LANGS)
        st.session_state["ui_lang"] = current  # follows project / URL changes
        st.selectbox(
            t("sidebar.language"), codes,
            format_func=lambda c: LANGS[c], key="ui_lang",
            on_change=lambda: state.set_language(st.session_state["ui_lang"]),
        )
        project = state.current_project()
        if project:
            st.caption(t("sidebar.project", name=project["name"]))
            if st.button(t("sidebar.close_project"), key="sidebar_close_project", type="tertiary"):
                state.open_project(None)
                st.rerun()
        else:
            st.caption(t("sidebar.no_project"))
        st.caption(t("sidebar.privacy"))
        from ui import access

        access.show_address()


def run_label(run_dir: str | Path) -> str:
    return Path(run_dir).name


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return t("time.hm", h=h, m=f"{m:02d}")
    if m:
        return t("time.ms", m=m, s=f"{s:02d}")
    return t("time.s", s=s)
