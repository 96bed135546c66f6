"""Unsorted photos into a project: a zip or folder of loose photos, or the camera.

`unsorted_section(project, prefix)` is one self-contained block used by the Data page and the
Label page: photos go into the unlabelled pool, or (camera) straight into a chosen class.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import streamlit as st

from ui import data_ops, labelling, state, widget_texts
from ui.components import guard
from ui.i18n import t

log = logging.getLogger(__name__)

POOL = "__pool__"
NEW = "__new__"


def unsorted_section(project: dict[str, Any], prefix: str, expanded: bool = False) -> None:
    with st.expander(t("camera.section_title"), expanded=expanded, icon=":material/photo_camera:"):
        st.caption(t("camera.section_help"))
        if labelling.pool_folders(project):
            from ui.components import next_step

            next_step("label", "camera.go_label")
        tab_camera, tab_zip, tab_folder = st.tabs([t("camera.tab_camera"), t("camera.tab_zip"),
                                                   t("camera.tab_folder")])
        with tab_camera:
            camera_block(project, prefix)
        with tab_zip:
            upload = widget_texts.file_uploader(t("camera.zip_label"), type=["zip"], key=f"{prefix}_pool_zip")
            if upload is not None and st.button(t("camera.zip_use"), key=f"{prefix}_pool_zip_use"):
                with guard("pool zip"):
                    saved = data_ops.save_upload(upload, data_ops.uploads_dir(project))
                    n = labelling.add_pool_source(project, saved)
                    saved.unlink(missing_ok=True)  # extracted into the workspace
                    st.toast(t("camera.pool_added", n=n))
                    st.rerun()
        with tab_folder:
            folder = st.text_input(t("camera.folder_label"), key=f"{prefix}_pool_folder",
                                   placeholder="/home/me/Pictures/field-2026-05")
            if st.button(t("camera.folder_use"), key=f"{prefix}_pool_folder_use", disabled=not folder.strip()):
                with guard("pool folder"):
                    n = labelling.add_pool_source(project, Path(folder.strip()))
                    st.toast(t("camera.pool_added", n=n))
                    st.rerun()


def _classes(project: dict[str, Any]) -> list[str]:
    names = list(labelling.label_log(project).state().classes)
    table = state.load_files_table(project) if project.get("data_path") else None
    if table is not None and "label" in table:
        names += [c for c in sorted(set(table["label"]) - {""}) if c not in names]
    return names


def camera_block(project: dict[str, Any], prefix: str) -> None:
    st.caption(t("camera.help"))
    classes = _classes(project)
    options = [POOL, *classes, NEW]
    labels = {POOL: t("camera.to_pool"), NEW: t("camera.to_new")}
    target = st.selectbox(t("camera.target"), options, key=f"{prefix}_camera_target",
                          format_func=lambda o: labels.get(o, o))
    name = None
    if target == NEW:
        name = st.text_input(t("camera.new_class"), key=f"{prefix}_camera_new_class")
    shot = widget_texts.camera_input(t("camera.take"), key=f"{prefix}_camera")
    if shot is None:
        return
    seen_key = f"{prefix}_camera_saved"
    if st.session_state.get(seen_key) == shot.file_id:  # the same shot on a later rerun
        return
    with guard("camera"):
        chosen = None if target == POOL else (name if target == NEW else target)
        if target == NEW:
            from core.labels import check_class_name

            chosen = check_class_name(name or "")
        suffix = ".png" if (shot.type or "").endswith("png") else ".jpg"
        path = labelling.save_camera_photo(project, shot.getvalue(), chosen, suffix)
        st.session_state[seen_key] = shot.file_id
        st.success(t("camera.saved_class", name=labelling.plain(chosen)) if chosen else t("camera.saved_pool"),
                   icon=":material/check_circle:")
        log.info("camera photo %s stored", path.name)
