"""Test: try the trained model on new photos (one, many, the camera, or a folder)."""
from __future__ import annotations


import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ui import data_ops, explain_ui, predict_ui, widget_texts
from ui.components import frame, guard, next_step, page_header, require_project
from ui.i18n import t, t_plain
from ui.run_pick import pick_run
from ui.safe_text import md

frame()
page_header("test.title", "test.purpose")
project = require_project()
run_dir = pick_run(project, key="test_run")


def topk_figure(pairs: list[tuple[str, float]]) -> go.Figure:
    pairs = list(reversed(pairs))
    from ui.safe_text import plotly as plotly_text

    fig = go.Figure(go.Bar(x=[p for _, p in pairs], y=[plotly_text(n) for n, _ in pairs], orientation="h",
                           text=[f"{100 * p:.1f}%" for _, p in pairs], textposition="auto",
                           marker_color="#2e7d32"))
    fig.update_layout(height=60 + 40 * len(pairs), margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%", title=t("test.axis_probability")))
    return fig


def show_one(image, name: str, key: str) -> None:
    pred = predict_ui.predict_images(run_dir, [image], top_k=5)[0]
    if pred["error"]:
        st.error(md(f"{name}: {pred['error']}"))
        return
    left, right = st.columns([1, 2])
    with right:
        if pred["abstained"]:
            # Unlike the training photos: no answer as the headline, the guess only below it.
            st.markdown(t("test.no_answer_title"))
            st.warning(t("test.ood_warning"), icon=":material/warning:")
            st.caption(t("test.model_guess", label=pred["label"], conf=f"{100 * pred['confidence']:.0f}"))
        else:
            st.markdown(t("test.verdict", label=pred["label"], conf=f"{100 * pred['confidence']:.0f}"))
        st.plotly_chart(topk_figure(pred["topk"]), key=f"test_topk_{key}")
        show_cam = st.toggle(t("test.gradcam"), key=f"test_gradcam_{key}", help=t("help.gradcam"))
    with left:
        shown = image
        if show_cam:
            with guard("gradcam"):
                shown = explain_ui.overlay_for_image(run_dir, image, None)
        st.image(shown, caption=md(name), width="stretch")


tab_photos, tab_camera, tab_folder = st.tabs([t("test.tab_photos"), t("test.tab_camera"), t("test.tab_folder")])
with tab_photos:
    uploads = widget_texts.file_uploader(t("test.upload_label"), type=data_ops.PHOTO_TYPES,
                               accept_multiple_files=True, key="test_upload", help=t("test.upload_help"))
    images, names = [], []
    for up in uploads or []:
        with guard("open upload"):
            images.append(predict_ui.open_upload(up))
            names.append(up.name)
    if len(images) == 1:
        with guard("predict"):
            show_one(images[0], names[0], "upload")
    elif len(images) > 1:
        with guard("predict"):
            preds = predict_ui.predict_images(run_dir, images, top_k=3)
            table = pd.DataFrame({
                t("test.col_file"): names,
                t("test.col_prediction"): [p["answer"] if not p["abstained"] else t_plain("test.no_answer_short")
                                           for p in preds],
                t("test.col_guess"): [p["label"] for p in preds],
                t("test.col_confidence"): [round(p["confidence"], 4) for p in preds],
                t("test.col_unusual"): [p["ood"] for p in preds],
                t("test.col_top3"): [", ".join(f"{n} {100 * q:.0f}%" for n, q in p["topk"]) for p in preds],
            })
            if any(p["error"] for p in preds):
                table[t("test.col_error")] = [p["error"] or "" for p in preds]
            if any(p["ood"] for p in preds):
                st.warning(t("test.ood_some", n=sum(p["ood"] for p in preds)), icon=":material/warning:")
            st.dataframe(table, hide_index=True, key="test_results_table")
            st.download_button(t("test.download_csv"), table.to_csv(index=False).encode("utf-8"),
                               file_name="latih-predictions.csv", mime="text/csv", key="test_csv_download")
            pick = st.selectbox(t("test.inspect"), range(len(names)), format_func=lambda i: names[i],
                                key="test_inspect")
            show_one(images[pick], names[pick], "inspect")

with tab_camera:
    st.caption(t("test.camera_help"))
    if st.toggle(t("test.camera_on"), key="test_camera_on"):
        shot = widget_texts.camera_input(t("test.camera_label"), key="test_camera")
        if shot is not None:
            with guard("camera"):
                show_one(predict_ui.open_upload(shot), t("test.camera_photo"), "camera")

with tab_folder:
    st.caption(t("test.folder_help"))
    folder = st.text_input(t("test.folder_label"), key="test_folder_path", placeholder="/home/me/new-photos")
    if st.button(t("test.folder_run"), key="test_folder_run", disabled=not folder.strip()):
        with guard("predict folder"):
            with st.spinner(t("test.folder_working")):
                st.session_state["test_folder_result"] = predict_ui.predict_folder(run_dir, folder.strip())
    result = st.session_state.get("test_folder_result")
    if isinstance(result, pd.DataFrame):
        st.dataframe(predict_ui.folder_view(result), hide_index=True, key="test_folder_table")
        st.download_button(t("test.download_csv"), result.to_csv(index=False).encode("utf-8"),
                           file_name="latih-folder-predictions.csv", mime="text/csv", key="test_folder_csv_download")

st.divider()
next_step("runs", "test.next")
