"""Train: start the training in the background, watch it live, stop it."""
from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from core import jobs, queue_entry
from core.config import recommend_strategy
from ui import copy_review, data_ops, model_info, progress, state
from ui.components import frame, fmt_seconds, guard, next_step, page_header, require_data, require_project, run_label
from ui.i18n import num, say, say_status, t
from ui.safe_text import md

log = logging.getLogger(__name__)

frame()
page_header("train.title", "train.purpose")
project = require_project()
df = require_data(project)
model = project.get("model") or {}
n_train = model_info.train_count(df, project)
strategy = model.get("strategy") or recommend_strategy(n_train)[0]

# ---- what will be trained ---------------------------------------------------------------------------
with st.container(border=True):
    cols = st.columns([1, 2, 2, 1])
    backbone = model.get("backbone") or model_info.default_backbone()
    # what the Start button will train: the photos' recipe may set fewer epochs than the
    # project's field (the summary used to show 15 while the recipe trained 4)
    epochs = int(model_info.setting(project, "epochs"))
    if model_info.config_problem(project) is None:  # a bad setting is said once, at Start
        epochs = int(model_info.build_config(project, df).epochs)
    for col, label, value, help_key in (
            (cols[0], t("train.summary_photos"), num(f"{int(df['readable'].sum()):,}"), None),
            (cols[1], t("term.backbone"), model_info.display_name(backbone), "help.backbone"),
            (cols[2], t("term.freeze"), t(f"strategy.{strategy}"), "help.freeze"),
            (cols[3], t("term.epoch"), str(epochs), "help.epoch")):
        col.caption(label, help=t(help_key) if help_key else None)
        col.markdown(f"**{value}**")
    next_step("model", "train.change_settings")

blocking = []
copies_pending = False
with guard("copies"):
    # copies across classes or splits block training: until a large set's check is done, the
    # Start button waits for it (the bar refreshes, then the page)
    copies_pending = copy_review.progress_section(project, "train")["state"] != "done"
with guard("check"):
    blocking = [f for f in data_ops.findings(project) if f.severity == "error"]
for finding in blocking:
    st.error(say(finding.message), icon=":material/block:")
if blocking:
    st.warning(t("train.blocked"))
    next_step("data", "common.go_data")
blocking = blocking or copies_pending


# ---- which run to show: this project's last run, reattached after a reload ------------------------
def _status(run_dir: str | None) -> dict | None:
    if not run_dir or not Path(run_dir).is_dir():
        return None
    try:
        return jobs.job_status(run_dir)
    except Exception as exc:  # a damaged status file must not break the page
        log.warning("status of %s unreadable: %s", run_dir, exc)
        return None


run_dir = project.get("last_run")
status = _status(run_dir)
mine_active = status is not None and status["state"] in ("queued", "running")
other_active = None
with guard("active job"):
    active = jobs.active_job()
    if active is not None and (run_dir is None or Path(active).resolve() != Path(run_dir).resolve()):
        other_active = active

if other_active is not None and not mine_active:
    st.info(t("train.other_running", run=run_label(other_active)), icon=":material/hourglass_top:")

def _start(force: bool = False) -> None:
    """Start (or, when this project already trains, join) a run: idempotent per project, so a
    second tab or a stale one cannot start the same training twice."""
    with guard("submit"):
        config = model_info.build_config(project, df)
        new_run, joined = queue_entry.submit_once(config, group=project["id"], force=force)
        state.add_run(project, new_run)
        if joined:
            st.session_state["train_joined"] = new_run.name
        st.rerun()


if st.session_state.pop("train_joined", None):
    st.info(t("hardening.joined_run", run=run_label(project.get("last_run") or "")), icon=":material/link:")
start_cols = st.columns([1, 3], vertical_alignment="center")
if start_cols[0].button(t("train.start"), key="train_start", type="primary", disabled=mine_active or bool(blocking),
                        icon=":material/play_arrow:"):
    _start()
start_cols[1].caption(t("train.start_help"))
if mine_active and not blocking:
    if st.button(t("hardening.start_another"), key="train_start_another", help=t("hardening.start_another_help"),
                 icon=":material/add:"):
        _start(force=True)


# ---- live view ---------------------------------------------------------------------------------------
def device_panel() -> None:
    with guard("device"):
        from ui.device import device_summary

        st.caption(device_summary())


def _stop(run_dir: str) -> None:
    """on_click: runs before the rerun, so that rerun already says "stopping"."""
    with guard("stop"):
        jobs.stop(run_dir)


n_photos = int(df["readable"].sum())


@st.fragment(run_every=1.0 if mine_active else None)
def live(run_dir: str, was_active: bool) -> None:
    status = _status(run_dir)
    if status is None:
        st.warning(t("train.run_missing"))
        return
    state_name = status["state"]
    epochs, batches = progress.read_events(run_dir)
    info = progress.progress(run_dir, status, epochs, batches)
    st.markdown(t("train.run_heading", run=run_label(run_dir)))
    if state_name == "queued":
        st.info(t("train.queued", position=status.get("position") or 1), icon=":material/hourglass_top:")
    elif state_name == "running":
        now = progress.live_progress(run_dir, status, n_photos)
        if now.stopping:  # at once, from the STOP file: the engine finishes its batch, then saves
            st.warning(t("progress.stopping", seconds=fmt_seconds(progress.stopping_seconds(run_dir))),
                       icon=":material/stop_circle:")
            if now.phase == "outputs" and now.counted:
                st.progress(min(now.done / now.total, 1.0), text=progress.phase_text(now))
        else:
            st.progress(now.fraction, text=progress.overall_text(now, info["elapsed"]))
            if now.counted:
                st.progress(min(now.done / max(now.total, 1), 1.0), text=progress.phase_text(now))
            st.caption(t("train.now", message=t(f"progress.now.{now.phase}")))
        if now.rate:
            st.caption(t("progress.rate", rate=f"{now.rate:,.1f}"))
    elif state_name == "done":
        st.success(t("train.done", time=fmt_seconds(info["elapsed"])), icon=":material/check_circle:")
    elif state_name == "stopped":
        st.warning(t("train.stopped"), icon=":material/stop_circle:")
    elif status.get("reason") == "died":
        st.error(t("hardening.died"), icon=":material/heart_broken:")
    else:
        st.error(t("train.failed", message=say_status(status, plain=True)), icon=":material/error:")
    if status.get("batch_part"):  # core/oom.py: out of GPU memory, the batch now runs in parts
        st.warning(t("speed.batch_halved", part=int(status["batch_part"]), batch=int(status.get("batch_size") or 0)),
                   icon=":material/memory:")
    if status.get("precision_fallback"):
        st.info(t("speed.fp32_fallback"), icon=":material/functions:")
    if state_name in ("failed", "stopped"):
        from core.resume import can_resume

        resumable, _why = can_resume(Path(run_dir))
        if resumable and st.button(t("hardening.resume"), key="train_resume", type="primary",
                                   icon=":material/resume:", help=t("hardening.resume_help")):
            with guard("resume"):
                queue_entry.resume(run_dir)
                st.rerun(scope="app")

    if state_name in ("queued", "running"):
        if not progress.stop_requested(run_dir):  # after Stop the page says "stopping", with no live button
            st.button(t("train.stop"), key="train_stop", icon=":material/stop:", help=t("train.stop_help"),
                      on_click=_stop, args=(run_dir,))
        device_panel()
    if not epochs.empty:
        last = epochs.iloc[-1]
        cols = st.columns(4)
        if "stage" in last and last.get("stage") != "finetune":
            last = last.drop(labels=["images_per_s"], errors="ignore")  # a head on cached features: no photos read
        for col, key, label, fmt in zip(cols, ("val_acc", "val_loss", "val_f1", "images_per_s"),
                                        ("train.metric_val_acc", "train.metric_val_loss", "train.metric_val_f1",
                                         "train.metric_speed"), ("{:.1%}", "{:.3f}", "{:.1%}", "{:.0f}")):
            if key in last and last[key] == last[key]:
                col.metric(t(label), fmt.format(float(last[key])),
                           help=t("train.metric_last_epoch", epoch=int(last.get("epoch", 0))))
    if not epochs.empty or not batches.empty:
        st.plotly_chart(progress.curves_figure(epochs, batches), key="train_curves")
    if was_active and state_name not in ("queued", "running"):
        st.rerun(scope="app")  # stop polling, show the next steps


if run_dir and status is not None:
    st.divider()
    live(run_dir, mine_active)
    if status["state"] == "done":
        next_step("evaluate", "train.next")
elif not blocking:
    device_panel()
