"""Data: bring labelled photos, see what the engine finds wrong with them, choose the split."""
from __future__ import annotations

from pathlib import Path

import plotly.express as px
import streamlit as st

from core.config import AUGMENT_PRESETS
from ui import copy_review, data_ops, groups_ui, model_info, state, widget_texts
from ui.components import frame, guard, next_step, page_header, require_project
from ui.i18n import has, num, say, t
from ui.media import photo_grid, thumbnail
from ui.safe_text import plotly as plotly_text

frame()
page_header("data.title", "data.purpose")
project = require_project()
has_source = bool(project.get("data_path"))
with guard("read"):  # a large source being read in the background: its bar on top, then its photos
    data_ops.pending_read_section(project)
reading = bool(project.get("pending_read"))

# ---- 1. where the photos come from -----------------------------------------------------------
with st.expander(t("data.source_title"), expanded=not has_source and not reading, icon=":material/upload:"):
    tab_zip, tab_classes, tab_folder = st.tabs([t("data.tab_zip"), t("data.tab_classes"), t("data.tab_folder")])
    with tab_zip:
        st.caption(t("data.zip_help"))
        upload = widget_texts.file_uploader(t("data.zip_label"), type=["zip"], key="data_zip_upload")
        if upload is not None and st.button(t("data.zip_use"), key="data_zip_use", type="primary"):
            with guard("zip"):
                saved = data_ops.save_zip_upload(project, upload)  # to disk 8 MiB at a time, with a bar
                data_ops.read_source(project, saved, "zip")
                st.rerun()
        # A zip too big for a browser upload: read from where it lies, unpacked the same streaming way.
        zip_path = st.text_input(t("data.zip_path_label"), key="data_zip_path", help=t("data.zip_path_help"),
                                 placeholder="/home/me/photos/clinic.zip")
        if st.button(t("data.zip_path_use"), key="data_zip_path_use", disabled=not zip_path.strip()):
            with guard("zip"):
                data_ops.read_source(project, data_ops.local_zip(zip_path), "zip")
                st.rerun()
    with tab_classes:
        st.caption(t("data.classes_help"))
        root = data_ops.class_photos_dir(project)
        with st.form("data_add_class_form", clear_on_submit=True, border=False):
            cols = st.columns([3, 1], vertical_alignment="bottom")
            new_class = cols[0].text_input(t("data.class_name"), key="data_new_class",
                                           placeholder=t("data.class_name_placeholder"))
            if cols[1].form_submit_button(t("data.add_class"), key="data_add_class") and new_class.strip():
                (root / data_ops.safe_name(new_class.strip())).mkdir(parents=True, exist_ok=True)
        classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        for i, name in enumerate(classes):
            folder = root / name
            files = widget_texts.file_uploader(t("data.class_upload", name=name), type=data_ops.PHOTO_TYPES,
                                     accept_multiple_files=True, key=f"data_class_upload_{i}")
            saved_uploads = st.session_state.setdefault("data_saved_uploads", {})  # file_id -> saved path
            for f in files or []:
                if not Path(saved_uploads.get(f.file_id, "")).is_file():  # reruns keep the files: save each once
                    saved_uploads[f.file_id] = str(data_ops.save_upload(f, folder))
            st.caption(t("data.class_count", n=sum(1 for p in folder.iterdir() if p.is_file())))
        if classes and st.button(t("data.classes_use"), key="data_classes_use", type="primary"):
            with guard("classes"):
                data_ops.read_source(project, root, "classes")
                st.rerun()
    with tab_folder:
        st.caption(t("data.folder_help"))
        folder_path = st.text_input(t("data.folder_label"), key="data_folder_path",
                                    placeholder="/home/me/photos/leaves")
        if st.button(t("data.folder_use"), key="data_folder_use", type="primary", disabled=not folder_path.strip()):
            with guard("folder"):
                data_ops.read_source(project, Path(folder_path.strip()).expanduser(), "folder")
                st.rerun()

# ---- unsorted photos and the camera (issue 10): into a class or into the Label page's pool -------
from ui.camera import unsorted_section  # noqa: E402

unsorted_section(project, "data", expanded=not has_source and not reading)


if not has_source:
    if not reading:  # while the first photos are read, the bar above says what happens
        st.info(t("data.no_source"), icon=":material/info:")
    st.stop()

# ---- 2. read the photos once (sample projects start here) --------------------------------------
table_missing = not state.files_table_path(project).exists()
if table_missing:
    if not project.get("pending_read") and not data_ops.read_failed(project):
        with guard("scan"):
            if not data_ops.read_source(project, project["data_path"],
                                        (project.get("source") or {}).get("kind") or "folder"):
                st.rerun()  # a large set: read in the background, its bar at the top
    project = state.current_project()
    if not state.files_table_path(project).exists():
        st.stop()

df_all = state.load_files_table(project, include_excluded=True)
df = state.load_files_table(project)
excluded = project.get("excluded", [])

st.subheader(t("data.overview_title"))
top = st.columns([3, 1, 1, 1, 1], vertical_alignment="bottom")
top[0].caption(t("data.source_path", path=project["data_path"]))
top[1].metric(t("data.n_photos"), num(f"{len(df):,}"))  # "50.000" under the Bahasa menu
top[2].metric(t("data.n_classes"), num(f"{df['label'].nunique():,}"))
top[3].metric(t("data.n_excluded"), num(f"{len(excluded):,}"), help=t("data.excluded_help"))
if top[4].button(t("data.rescan"), key="data_rescan", help=t("data.rescan_help")):
    state.clear_files_table(project)
    st.rerun()

counts = df.assign(split=df["split"].replace("", t("data.unsplit"))).groupby(["label", "split"]).size() \
    .reset_index(name="photos")
counts["label"] = counts["label"].map(plotly_text)  # plotly reads <a href> in its labels
fig = px.bar(counts, x="label", y="photos", color="split" if df["split"].ne("").any() else None,
             labels={"label": t("data.axis_class"), "photos": t("data.axis_photos"), "split": t("data.axis_split")},
             title=t("data.counts_title"))
fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10))
st.plotly_chart(fig, key="data_counts_chart")

# ---- 3. what the engine found ------------------------------------------------------------------
st.subheader(t("data.findings_title"))
copies_check = {"state": "done"}
with guard("copies"):
    # A large set's copy check runs in the background (about a minute at 50,000 photos): a bar
    # here, the other findings below at once, the copy findings when it is done.
    copies_check = copy_review.progress_section(project, "data")
with guard("check"):
    # Streamlit shows a spinner only after half a second; the result is cached. No show_time:
    # Streamlit writes the elapsed time in English ("1 minute, 2.1 seconds").
    with st.spinner(t("data.checking", n=f"{len(df):,}")):
        found = data_ops.findings(project)
    if not found and copies_check["state"] == "done":
        st.success(t("data.no_findings"), icon=":material/check_circle:")
    elif not found:
        st.caption(t("data.no_findings_yet"))
    for i, finding in enumerate(found):
        show = {"error": st.error, "warning": st.warning}.get(finding.severity, st.info)
        title_key = f"finding.{finding.code}"
        body = say(finding.message)
        show(f"**{t(title_key, n=len(finding.files))}**  \n{body}" if has(title_key) else body,
             icon={"error": ":material/error:", "warning": ":material/warning:"}.get(finding.severity,
                                                                                      ":material/info:"))
        if finding.files:
            with st.expander(t("data.finding_files", n=len(finding.files)), key=f"data_finding_files_{i}"):
                photo_grid(finding.files, captions=[f"{Path(f).parent.name}/{Path(f).name}" for f in finding.files],
                           limit=12)
                if len(finding.files) > 12:
                    st.caption(t("data.more_files", n=len(finding.files) - 12))
        if finding.fix:
            fix_key = f"fix.{finding.fix}"
            label = t(fix_key) if has(fix_key) else t("data.fix_generic")
            if st.button(label, key=f"data_fix_{i}_{finding.code}", help=t("data.fix_help")):
                n = data_ops.exclude(project, df, finding.files)
                st.toast(t("data.fixed", n=n))
                st.rerun()
with guard("copies"):
    copy_review.render(project)
if excluded:
    with st.expander(t("data.excluded_title", n=len(excluded))):
        st.caption(t("data.excluded_help"))
        listed = excluded[:data_ops.LIST_LIMIT]  # a summary, never 50,000 rows sent to the browser
        st.dataframe({t("data.col_file"): data_ops.short_paths(listed, project.get("data_path"), df_all)},
                     hide_index=True)
        if len(excluded) > len(listed):
            st.caption(t("data.excluded_more", shown=f"{len(listed):,}", n=f"{len(excluded):,}"))
        if st.button(t("data.restore"), key="data_restore_excluded"):
            state.update_project(project, excluded=[], copy_decisions={})
            st.rerun()

# ---- 4. sample photos: one class at a time, a page of SAMPLE_PAGE photos (bounded at any set size) ----
st.subheader(t("data.samples_title"))
labels = sorted(df["label"].unique())
if labels:
    cols = st.columns([3, 1], vertical_alignment="bottom")
    label = cols[0].selectbox(t("data.sample_class"), labels, key="data_sample_class")  # options: plain text
    paths = data_ops.class_photos(df, label)
    pages = max(1, -(-len(paths) // data_ops.SAMPLE_PAGE))
    page = int(cols[1].number_input(t("data.sample_page", n=pages), 1, pages, 1, key=f"data_sample_page_{labels.index(label)}",
                                    disabled=pages == 1))
    photo_grid(data_ops.page_of(paths, page), limit=data_ops.SAMPLE_PAGE)
    st.caption(t("data.sample_caption", n=f"{int((df['label'] == label).sum()):,}", page=page, pages=pages))

# ---- 5. photos that belong together (patients), then the split -----------------------------------------
groups_ui.groups_section(project, df)
st.subheader(t("data.split_title"))
st.caption(t("data.split_help"))
already_split = df["split"].ne("").all() and not project.get("resplit")
if already_split:
    st.info(t("data.split_existing"), icon=":material/info:")
cols = st.columns(2)
val_share, test_share = (float(model_info.setting(project, "val_fraction")),
                         float(model_info.setting(project, "test_fraction")))
val_fraction = cols[0].slider(t("data.val_fraction"), 0.05, 0.4, val_share, 0.05, help=t("help.validation"),
                              disabled=already_split,
                              **state.bind("data_val_fraction", "split/val_fraction",
                                           check=lambda v: v + test_share < 0.9))
test_fraction = cols[1].slider(t("data.test_fraction"), 0.0, 0.4, test_share, 0.05, help=t("help.test_split"),
                               disabled=already_split,
                               **state.bind("data_test_fraction", "split/test_fraction",
                                            check=lambda v: val_share + v < 0.9))
if val_fraction + test_fraction >= 0.9:
    st.warning(t("data.split_too_big"))
if test_fraction == 0 and not already_split:
    st.caption(t("data.no_test_note"))
with guard("split"):
    table = data_ops.project_split_preview(project, val_fraction, test_fraction,
                                           int(model_info.setting(project, "seed")))
    st.dataframe(table, key="data_split_table")
    if copies_check["state"] != "done":
        st.caption(t("data.split_before_copies"))

# ---- 6. augmentation preview -------------------------------------------------------------------------
st.subheader(t("data.augment_title"))
st.caption(t("help.augmentation"))
cols = st.columns([2, 2, 1])
preset = cols[0].selectbox(t("data.augment_preset"), AUGMENT_PRESETS,
                           index=AUGMENT_PRESETS.index(model_info.setting(project, "augment")),
                           format_func=lambda p: t(f"augment.{p}"), help=t("help.augmentation"),
                           **state.bind("data_aug_preset", "settings/augment"))
readable = df[df["readable"]]
if not readable.empty:
    label = cols[1].selectbox(t("data.augment_class"), labels, key="data_aug_class")
    pool = readable.loc[readable["label"] == label, "path"].tolist() or readable["path"].tolist()
    index = int(cols[2].number_input(t("data.augment_photo"), 1, len(pool), 1, key="data_aug_photo")) - 1
    with guard("augment"):
        from core.augment import preview
        from core.data.decode import load_image

        image = load_image(pool[index], draft_size=448)
        image.thumbnail((448, 448))
        shots = preview(image, preset, image_size=160, n=8, seed=0)
        st.image([thumbnail(pool[index], 160)] + list(shots),
                 caption=[t("data.augment_original")] + [t("data.augment_variant", i=i + 1) for i in range(len(shots))],
                 width=140)

st.divider()
next_step("model", "data.next")
