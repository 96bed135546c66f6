"""Runs: every training of this project side by side; compare, keep the best, export, delete."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import streamlit as st

from core.run_list import delete_run, list_runs
from core.runs import read_json, state_label
from ui import progress, state
from ui.components import frame, fmt_seconds, guard, lang_keyed, next_step, page_header, require_project
from ui.i18n import num, say, t

frame()
page_header("runs.title", "runs.purpose")
project = require_project()

show_all = st.toggle(t("runs.show_all"), key="runs_show_all", help=t("runs.show_all_help"))
table = pd.DataFrame()
with guard("list runs"):
    table = list_runs()
if not table.empty and not show_all:
    mine = {str(Path(r).resolve()) for r in project.get("runs", [])}
    table = table[table["run_dir"].map(lambda r: str(Path(r).resolve()) in mine)].reset_index(drop=True)
if table.empty:
    st.info(t("runs.none"), icon=":material/info:")
    next_step("train", "common.go_train")
    st.stop()


def _ci(run_dir: str, key: str) -> list | None:
    ev = read_json(Path(run_dir) / "evaluation.json") or {}
    return (ev.get("ci") or {}).get(key)


def _with_ci(value, band) -> str:
    if value is None or value != value:
        return "–"
    text = f"{100 * value:.1f}%"
    return num(f"{text} ({100 * band[0]:.0f}–{100 * band[1]:.0f}%)" if band else text)


def _status_label(state, text) -> str:
    return say(state_label(state, text), plain=True)


for damaged in table[table["damaged"].notna()].itertuples():
    st.warning(t("hardening.damaged_run", run=damaged.run_id, problem=damaged.damaged), icon=":material/error:")

METRICS = {"eval_acc": ("accuracy", "runs.metric_eval_acc"), "eval_f1": ("macro_f1", "runs.metric_eval_f1"),
           "val_acc": (None, "runs.metric_val_acc"), "val_f1": (None, "runs.metric_val_f1")}
best_metric = st.selectbox(t("runs.best_by"), list(METRICS), format_func=lambda k: t(METRICS[k][1]),
                           **lang_keyed("runs_best_metric", list(METRICS)))
scores = pd.to_numeric(table[best_metric], errors="coerce")
best_index = int(scores.idxmax()) if scores.notna().any() else None

view = pd.DataFrame({
    t("runs.col_best"): ["★" if i == best_index else "" for i in range(len(table))],
    t("runs.col_run"): table["run_id"],
    t("runs.col_when"): [c.strftime("%Y-%m-%d %H:%M") if isinstance(c, (dt.datetime, pd.Timestamp)) else str(c)
                         for c in table["created"]],
    t("runs.col_backbone"): [b if isinstance(b, str) and b else "–" for b in table["backbone"]],  # "–": config unreadable
    t("runs.col_strategy"): [t(f"strategy.{s}") if isinstance(s, str) else "–" for s in table["strategy"]],
    t("runs.col_status"): [_status_label(s, text) for s, text in zip(table["status"], table["status_text"])],
    t("runs.metric_eval_acc"): [_with_ci(v, _ci(r, "accuracy")) for v, r in zip(table["eval_acc"], table["run_dir"])],
    t("runs.metric_eval_f1"): [_with_ci(v, _ci(r, "macro_f1")) for v, r in zip(table["eval_f1"], table["run_dir"])],
    t("runs.metric_val_acc"): [_with_ci(v, None) for v in table["val_acc"]],
    t("runs.col_time"): [fmt_seconds(s) if s == s and s is not None else "–" for s in table["wall_s"]],
})
st.dataframe(view, hide_index=True, key="runs_table")
st.caption(t("runs.table_help"))
if best_index is not None:
    st.success(t("runs.best", run=table.loc[best_index, "run_id"], metric=t(METRICS[best_metric][1])),
               icon=":material/star:")

# ---- compare curves ------------------------------------------------------------------------------------
st.subheader(t("runs.compare_title"))
ids = table["run_id"].tolist()
by_id = dict(zip(table["run_id"], table["run_dir"]))
default = ids[:2] if best_index is None else list(dict.fromkeys([ids[best_index], ids[0]]))
chosen = st.multiselect(t("runs.compare_pick"), ids, default=default, key="runs_compare")
CURVES = ["val_acc", "val_loss", "train_acc", "train_loss", "val_f1"]
curve_metric = st.selectbox(t("runs.curve_metric"), CURVES, format_func=lambda k: t(f"curve.{k}"),
                            **lang_keyed("runs_curve_metric", CURVES))
if chosen:
    curves = {rid: progress.read_events(by_id[rid])[0] for rid in chosen}
    fig = progress.overlay_figure(curves, curve_metric)
    fig.update_layout(yaxis_title=t(f"curve.{curve_metric}"))
    st.plotly_chart(fig, key="runs_curves")

# ---- download / delete -------------------------------------------------------------------------------
st.subheader(t("runs.manage_title"))
left, right = st.columns(2)
with left:
    st.markdown(t("runs.export_title"))
    st.caption(t("runs.export_help"))
    done_ids = [rid for rid in ids if (Path(by_id[rid]) / "model.safetensors").exists()]
    export_id = st.selectbox(t("runs.pick"), done_ids, key="runs_export_pick") if done_ids else None
    if export_id and st.button(t("runs.export"), key="runs_export", icon=":material/package_2:"):
        with guard("export"):
            with st.spinner(t("runs.exporting")):
                from core.export import export_package

                from core.workspace import subdir

                package = Path(export_package(by_id[export_id], subdir("exports") / f"{export_id}.zip",
                                              lang=state.get_lang()))
                st.session_state["runs_package"] = str(package)
    package = st.session_state.get("runs_package")
    if package and Path(package).is_file():
        st.download_button(t("runs.download", name=Path(package).name), Path(package).read_bytes(),
                           file_name=Path(package).name, mime="application/zip", key="runs_download",
                           icon=":material/download:")
with right:
    st.markdown(t("runs.delete_title"))
    delete_id = st.selectbox(t("runs.pick"), ids, key="runs_delete_pick")
    pending = st.session_state.get("runs_delete_pending")
    if pending != delete_id:
        if st.button(t("runs.delete"), key="runs_delete", icon=":material/delete:"):
            st.session_state["runs_delete_pending"] = delete_id
            st.rerun()
    else:
        st.warning(t("runs.delete_confirm_text", run=delete_id), icon=":material/warning:")
        c1, c2 = st.columns(2)
        if c1.button(t("runs.delete_confirm"), key="runs_delete_confirm", type="primary"):
            st.session_state.pop("runs_delete_pending", None)
            with guard("delete"):
                delete_run(by_id[delete_id])
                state.forget_run(project, by_id[delete_id])
                st.toast(t("runs.deleted", run=delete_id))
                st.rerun()
        if c2.button(t("runs.delete_cancel"), key="runs_delete_cancel"):
            st.session_state.pop("runs_delete_pending", None)
            st.rerun()

st.divider()
next_step("data", "runs.next")
