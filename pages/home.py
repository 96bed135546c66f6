"""Home: what Latih does, start a project (own photos or the bundled sample), reopen one."""
from __future__ import annotations

import datetime as dt

import streamlit as st

from ui import state
from ui.components import frame, go_to, next_step, page_header
from ui.i18n import t
from ui.safe_text import md

GLOSSARY = ("class", "backbone", "feature_extraction", "fine_tuning", "epoch", "validation", "test",
            "sensitivity", "specificity", "threshold", "confidence", "augmentation")

frame()
page_header("home.title", "home.purpose")

project = state.current_project()
if project:
    st.success(t("home.current", name=project["name"]), icon=":material/folder_open:")
    next_step("data" if not project.get("data_path") else "model", "home.continue")

left, right = st.columns(2, gap="large")
with left:
    with st.container(border=True):
        st.subheader(t("home.new_title"))
        st.caption(t("home.new_help"))
        name = st.text_input(t("home.project_name"), key="home_project_name",
                             placeholder=t("home.project_name_placeholder"))
        if st.button(t("home.new_button"), key="home_new_project", type="primary"):
            created = state.new_project(name or t("home.default_name"))
            state.open_project(created["id"])
            go_to("data")

with right:
    with st.container(border=True):
        st.subheader(t("home.sample_title"))
        st.caption(t("home.sample_help"))
        samples = state.sample_datasets()
        if samples:
            sample = st.radio(t("home.sample_pick"), samples, key="home_sample",
                              format_func=lambda s: t(f"sample.{s}") if s in ("leaf", "retina") else s,
                              horizontal=True)
            if st.button(t("home.sample_button"), key="home_start_sample"):
                label = t(f"sample.{sample}") if sample in ("leaf", "retina") else sample
                created = state.new_project(t("home.sample_project_name", name=label),
                                            data_path=str(state.SAMPLE_DIR / sample), source_kind="sample")
                state.open_project(created["id"])
                go_to("data")
        else:
            st.info(t("home.no_sample"))

with st.expander(t("glossary.title"), icon=":material/menu_book:"):
    st.caption(t("glossary.intro"))
    st.markdown("\n".join(f"- {t(f'glossary.{term}')}" for term in GLOSSARY))

st.subheader(t("home.reopen_title"))
projects = state.list_projects()
if not projects:
    st.caption(t("home.no_projects"))
for p in projects[:30]:
    if p.get("damaged"):
        st.warning(t("hardening.damaged_project_home", name=p["id"], problem=p["damaged"]), icon=":material/error:")
        continue
    with st.container(border=True):
        cols = st.columns([4, 3, 2, 2], vertical_alignment="center")
        cols[0].markdown(f"**{md(p['name'])}**")
        when = dt.datetime.fromtimestamp(p.get("updated", 0)).strftime("%Y-%m-%d %H:%M")
        cols[1].caption(t("home.project_meta", when=when, runs=len(p.get("runs", []))))
        cols[2].caption(t("home.has_data") if p.get("data_path") else t("home.no_data"))
        is_open = project is not None and project["id"] == p["id"]
        if cols[3].button(t("home.open_button"), key=f"home_open_{p['id']}", disabled=is_open):
            state.open_project(p["id"])
            st.rerun()
