"""Two tabs on one project: widgets that write only their own field, and stale tabs.

A widget made with `bind(key, "settings/epochs")` saves only that field when the person
changes it, through `state.change_fields(..., expected_version=<the version this tab showed>)`.
If another tab (or window, or process) changed project.json since, the write is refused
(StaleProject); `sync_tab(project)`, called by `require_project` at every script run, then
gives every bound widget the saved value and the page says the project changed elsewhere.
"""
from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from ui.state import BOUND_KEY, PROJECT_KEY, SEEN_KEY, STALE_FLAG, StaleProject, change_fields, load_project

log = logging.getLogger(__name__)


def bind(widget_key: str, field: str, check=None) -> dict[str, Any]:
    """Keyword arguments for a widget that shows project field `field` ("settings/epochs"): on a change
    by the person, only that field is written, checked against the version this tab showed.
    `check(value)` may return False to leave the change unsaved."""
    ss = st.session_state
    ss.setdefault(BOUND_KEY, {})[widget_key] = field
    return {"key": widget_key, "on_change": _on_bound_change, "args": (widget_key, field, check)}


def _on_bound_change(widget_key: str, field: str, check) -> None:
    ss = st.session_state
    pid = ss.get(PROJECT_KEY)
    project = load_project(pid)
    if project is None:
        return
    value = ss.get(widget_key)
    if check is not None and not check(value):
        return
    try:
        change_fields(project, {field: value}, expected_version=ss.get(SEEN_KEY, {}).get(pid))
    except StaleProject:
        log.info("tab was stale for project %s; %s not saved", pid, field)
        ss[STALE_FLAG] = True


def _field(project: dict[str, Any], field: str) -> Any:
    node: Any = project
    for part in field.split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def sync_tab(project: dict[str, Any]) -> bool:
    """Call once per script run with the project read fresh: when another tab changed it,
    forget this tab's widget values (they show the saved ones again). True if it was stale."""
    ss = st.session_state
    seen = ss.setdefault(SEEN_KEY, {})
    pid, version = project["id"], int(project.get("version") or 0)
    stale = ss.pop(STALE_FLAG, False) or (pid in seen and seen[pid] != version)
    if stale:
        # Give each widget the saved value (the browser keeps a widget's own value unless the
        # server sets it; dropping the key alone would leave the stale value on screen).
        for key, field in ss.get(BOUND_KEY, {}).items():
            value = _field(project, field)
            if value is None:
                ss.pop(key, None)
            else:
                ss[key] = value
        log.info("project %s changed elsewhere (seen %s, now %s); reloaded", pid, seen.get(pid), version)
    seen[pid] = version
    return bool(stale)


__all__ = ["bind", "sync_tab"]
