"""Evaluate: how good is the model, honestly, on photos it never learned from."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core import figures
from core.runs import load_run
from ui import estimate_ui, explain_ui, operating_point_ui
from ui.components import frame, guard, next_step, page_header, require_project
from ui.i18n import get_lang, num, say, t
from ui.media import thumbnail
from ui.safe_text import md, plotly as plotly_text
from ui.run_pick import pick_run, trained_runs

frame()
page_header("eval.title", "eval.purpose")
project = require_project()
# The estimate comes from the photos alone, so it needs no trained run: first on the page
# while there is none to evaluate, after the run's own figures once there is.
estimate_first = bool(project.get("data_path")) and not trained_runs(project)
if estimate_first:
    estimate_ui.estimate_section(project)
    st.divider()
run_dir = pick_run(project, key="eval_run")

run = None
with guard("load run"):
    run = load_run(run_dir)
if run is None:
    st.stop()
ev = run.evaluation
if not ev:
    st.info(t("eval.no_evaluation"), icon=":material/hourglass_top:")
    next_step("train", "common.go_train")
    st.stop()

operating_point_ui.target_banner(ev)  # a missed target sensitivity, said at the top
split = ev.get("evaluated_on", "test")
sizes = (ev.get("split_sizes") or {}).get(split, {})
st.markdown(t("eval.on_split", split=t(f"split.{split}") if split in ("test", "val", "train") else split,
              n=sizes.get("n", ev["metrics"].get("n", "?"))))
notes = ev.get("notes") or []
coded = ev.get("notes_i18n") if len(ev.get("notes_i18n") or []) == len(notes) else [None] * len(notes)
for note, code in zip(notes, coded):
    st.info(say(code or note), icon=":material/info:")

# ---- headline metrics with 95% intervals -------------------------------------------------------------
metrics, ci = ev["metrics"], ev.get("ci") or {}
rows = []
for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "pr_auc"):
    value = metrics.get(key)
    if value is None:
        continue
    interval = ci.get(key)
    rows.append({t("eval.col_metric"): t(f"metric.{key}"),
                 t("eval.col_value"): num(f"{100 * value:.1f}%"),
                 t("eval.col_interval"): num(f"{100 * interval[0]:.1f}% – {100 * interval[1]:.1f}%") if interval else "–",
                 t("eval.col_meaning"): t(f"metric.{key}.help")})
st.subheader(t("eval.metrics_title"))
st.caption(t("eval.interval_help"))
st.dataframe(pd.DataFrame(rows), hide_index=True, key="eval_metrics_table")

operating_point_ui.render(run_dir, ev)  # the screening threshold: live figures, ROC point, Save

# ---- charts (class names escaped for plotly, which reads <a href> in its labels) -------------------------
ev_plot = {**ev, "class_names": [plotly_text(c) for c in ev["class_names"]],
           "roc": {plotly_text(k): v for k, v in (ev.get("roc") or {}).items()},
           "metrics": {**ev["metrics"], "per_class": [{**r, "name": plotly_text(r["name"])}
                                                      for r in ev["metrics"].get("per_class") or []]}}
tabs = st.tabs([t("eval.tab_confusion"), t("eval.tab_per_class"), t("eval.tab_roc"), t("eval.tab_reliability")])
with tabs[0]:
    st.caption(t("eval.confusion_help"))
    fig = figures.confusion_matrix_figure(ev_plot, lang=get_lang())
    fig.update_layout(title=t("eval.confusion_title"), xaxis_title=t("eval.axis_predicted"),
                      yaxis_title=t("eval.axis_true"))
    st.plotly_chart(fig, key="eval_confusion")
with tabs[1]:
    per_class = pd.DataFrame(metrics["per_class"])
    fig = figures.per_class_bar_figure(ev_plot, lang=get_lang())
    fig.update_layout(title=t("eval.per_class_title"))
    st.plotly_chart(fig, key="eval_per_class")
    table = per_class[["name", "precision", "recall", "f1", "support"]].rename(columns={
        "name": t("eval.col_class"), "precision": t("metric.precision"), "recall": t("metric.recall"),
        "f1": t("metric.f1"), "support": t("eval.col_support")})
    st.dataframe(table.style.format({t("metric.precision"): "{:.1%}", t("metric.recall"): "{:.1%}",
                                     t("metric.f1"): "{:.1%}"}, decimal="," if get_lang() == "id" else "."),
                 hide_index=True, key="eval_per_class_table")
    st.caption(t("eval.per_class_help"))
with tabs[2]:
    st.caption(t("eval.roc_help"))
    fig = figures.roc_figure(ev_plot, lang=get_lang())
    fig.update_layout(title=t("eval.roc_title"), xaxis_title=t("eval.axis_fpr"), yaxis_title=t("eval.axis_tpr"))
    st.plotly_chart(fig, key="eval_roc")
with tabs[3]:
    st.caption(t("eval.reliability_help"))
    if ev.get("calibration"):
        fig = figures.reliability_figure(ev_plot, lang=get_lang())
        fig.update_layout(title=t("eval.reliability_title"), xaxis_title=t("eval.axis_confidence"),
                          yaxis_title=t("eval.axis_accuracy"))
        st.plotly_chart(fig, key="eval_reliability")

# ---- mistakes ---------------------------------------------------------------------------------------------
st.subheader(t("eval.mistakes_title"))
wrong = ev.get("misclassified") or []
if not wrong:
    st.success(t("eval.no_mistakes"), icon=":material/check_circle:")
else:
    st.caption(t("eval.mistakes_help", n=len(wrong)))
    show_cam = st.toggle(t("eval.gradcam"), key="eval_gradcam", help=t("help.gradcam"))
    limit = st.select_slider(t("eval.show_n"), [6, 12, 24, 48], value=12, key="eval_mistakes_n")
    cols = st.columns(6)
    class_names = ev["class_names"]
    for i, item in enumerate(wrong[:limit]):
        with cols[i % 6]:
            caption = t("eval.mistake_caption", predicted=item["predicted"], true=item["true"],
                        conf=f"{100 * item.get('confidence', 0):.0f}")
            image = None
            if show_cam:
                with guard("gradcam"):
                    image = explain_ui.gradcam_overlay(run_dir, item["path"], class_names.index(item["predicted"]))
            if image is None:
                image = thumbnail(item["path"])
            if image is None:
                st.caption(f"{md(Path(item['path']).name)}: {t('common.unreadable')}")
            else:
                st.image(image, caption=caption, width="stretch")

st.divider()
if project.get("data_path") and not estimate_first:
    estimate_ui.estimate_section(project)
    st.divider()
next_step("test", "eval.next")
