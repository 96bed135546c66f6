"""Data page: photos that belong together (a patient's two eyes), with a preview of the groups,
the suggestion when names look grouped, and the group_leak finding with a one-click re-split.
Group and file names come from the user's files: shown only as plain text (dataframes, code)."""
from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import streamlit as st

from ui import state
from ui.components import guard
from ui.i18n import num, say, t

log = logging.getLogger(__name__)

CHOICES = ("", "eye-pair", "person", "prefix", "folder", "regex", "csv")


def _table_key(project: dict[str, Any]) -> tuple | None:
    """What the project's photo list is made of (its file version, the left-out photos): the key of
    the cached group computations below, so a rerun of the Data page does not redo them."""
    table = state.files_table_path(project)
    try:
        mtime = table.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    return str(table), mtime, tuple(sorted(project.get("excluded") or []))


@st.cache_data(max_entries=8, show_spinner=False)
def _suggest_cached(key: tuple, _df: pd.DataFrame):
    from core.data.groups import suggest

    return suggest(_df)


@st.cache_data(max_entries=16, show_spinner=False)
def _preview_cached(key: tuple, spec: str, _df: pd.DataFrame):
    from core.data.groups import preview

    return preview(_df, spec)


def _suggest(project: dict[str, Any], df: pd.DataFrame):
    from core.data.groups import suggest

    key = _table_key(project)
    return suggest(df) if key is None else _suggest_cached(key, df)


def _preview(project: dict[str, Any], df: pd.DataFrame, spec: str):
    from core.data.groups import preview

    key = _table_key(project)
    if key is None or spec.startswith("csv:"):  # a groups file can change under the same photo list
        return preview(df, spec)
    return _preview_cached(key, spec, df)


def current_groups(project: dict[str, Any], df: pd.DataFrame) -> pd.Series | None:
    """The patient group per row of df for the project's choice, or None (no groups / a bad spec)."""
    from core.data.groups import assign_groups
    from core.errors import LatihError

    spec = project.get("groups") or ""
    if not spec:
        return None
    try:
        return assign_groups(df, spec)
    except LatihError as exc:
        log.warning("groups %r unusable: %s", spec, exc)
        return None


def groups_section(project: dict[str, Any], df: pd.DataFrame) -> None:
    from core.data.groups import group_leak

    st.subheader(t("groups.title"))
    st.caption(t("groups.help"))
    spec = project.get("groups") or ""
    kind, _, arg = spec.partition(":")
    hint = _suggest(project, df) if not spec else None  # cached per photo list: seconds at 50,000
    if hint is not None:
        st.info(t("groups.suggest", n=f"{hint.n_grouped:,}", groups=f"{hint.n_groups:,}",
                  what=t(f"groups.kind.{hint.spec}")), icon=":material/group:")
        if st.button(t("groups.use_suggestion"), key="groups_use_suggestion"):
            state.update_project(project, groups=hint.spec)
            st.rerun()
    choice = st.selectbox(t("groups.kind_label"), CHOICES, index=CHOICES.index(kind) if kind in CHOICES else 0,
                          format_func=lambda k: t(f"groups.kind.{k or 'none'}"), key="groups_kind")
    new_spec = choice
    if choice == "regex":
        expression = st.text_input(t("groups.regex_label"), value=arg if kind == "regex" else r"^(\d+)_",
                                   key="groups_regex", help=t("groups.regex_help"))
        new_spec = f"regex:{expression}"
    elif choice == "csv":
        path = st.text_input(t("groups.csv_label"), value=arg if kind == "csv" else "", key="groups_csv",
                             help=t("groups.csv_help"))
        new_spec = f"csv:{path.strip()}" if path.strip() else ""
    shown = None
    with guard("groups"):
        shown = _preview(project, df, new_spec) if new_spec else None
    if shown is not None:
        cols = st.columns(3)
        cols[0].metric(t("groups.n_groups"), num(f"{shown.n_groups:,}"))
        cols[1].metric(t("groups.n_grouped"), num(f"{shown.n_grouped:,}"))
        cols[2].metric(t("groups.n_alone"), num(f"{shown.n_alone:,}"))
        if shown.examples:
            st.dataframe(pd.DataFrame({t("groups.col_group"): [g for g, _ in shown.examples],
                                       t("groups.col_files"): [", ".join(files) for _, files in shown.examples]}),
                         hide_index=True, key="groups_preview_table")
        else:
            st.warning(t("groups.no_groups"), icon=":material/warning:")
    if new_spec != spec and (shown is not None or not new_spec):
        if st.button(t("groups.apply"), key="groups_apply", type="primary"):
            state.update_project(project, groups=new_spec, resplit=False)
            st.rerun()
    groups = current_groups(project, df)
    if groups is not None and df["split"].ne("").any() and not project.get("resplit"):
        for finding in group_leak(df, groups):
            st.warning(say(finding.message), icon=":material/warning:")
            if st.button(t("groups.resplit"), key="groups_resplit", type="primary"):
                state.update_project(project, resplit=True)
                st.rerun()
    if project.get("resplit"):
        st.caption(t("groups.resplit_on"))
