"""Evaluate page: the Estimate section (repeated cross-validation with intervals, the learning
curve and its plain sentence). The work runs in a background process (core.estimate.start);
the page only starts it and polls its status file."""
from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ui.components import guard
from ui.i18n import num, say_status, t

log = logging.getLogger(__name__)


def _data_path(project: dict[str, Any]) -> str:
    from ui.model_info import training_data_path

    return training_data_path(project)


def estimate_job(project: dict[str, Any]):
    """(job folder, its status) for the project's photos and groups."""
    from core.estimate import job_dir, read_job

    folder = job_dir(_data_path(project), project.get("groups") or "")
    return folder, read_job(folder)


def estimate_section(project: dict[str, Any]) -> None:
    from core.estimate import start

    st.subheader(t("estimate.title"))
    st.caption(t("estimate.help"))
    folder, job = estimate_job(project)
    running = job["state"] == "running"
    label = t("estimate.again") if job["state"] == "done" else t("estimate.start")
    if st.button(label, key="estimate_start", type="primary" if job["state"] != "done" else "secondary",
                 disabled=running, icon=":material/query_stats:"):
        with guard("estimate"):
            start(_data_path(project), project.get("groups") or "")
            st.rerun()
    if running:
        _poll(project)
    elif job["state"] == "failed":
        st.error(say_status(job) or t("common.error_generic"))
    elif job["state"] == "done" and job.get("result"):
        show_result(job["result"])
        fine_tune_section(project, job["result"].get("fine_tune_cv_cost") or {})


@st.fragment(run_every=2)
def _poll(project: dict[str, Any]) -> None:
    _, job = estimate_job(project)
    if job["state"] != "running":
        st.rerun()  # the whole page, to show the result
    st.progress(float(job.get("progress") or 0.0),
                text=t("estimate.running", task=t(f"estimate.task.{job.get('task') or 'start'}")))


def _fine_tune_job(project: dict[str, Any]):
    from core.cli_estimate import fine_tune_config
    from core.estimate import read_job
    from core.fine_tune_cv import job_dir

    config = fine_tune_config(_data_path(project), "full", project.get("groups") or "")
    folder = job_dir(config.data_path, config.groups, config.strategy)
    return config, folder, read_job(folder)


def fine_tune_section(project: dict[str, Any], cost: dict) -> None:
    """Cross-validation that really fine-tunes on every fold (core.fine_tune_cv), cost stated first."""
    from core import fine_tune_cv

    st.markdown(f"**{t('estimate.ft.title')}**")
    st.caption(t("estimate.ft.help", n=cost.get("trainings", "?"), minutes=f"{cost.get('seconds', 0) / 60:.0f}"))
    config, folder, job = _fine_tune_job(project)
    if job["state"] == "running":
        _poll_fine_tune(project)
        if st.button(t("estimate.ft.stop"), key="estimate_ft_stop", icon=":material/stop:"):
            with guard("estimate"):
                fine_tune_cv.stop(folder)
                st.rerun()
        return
    if st.button(t("estimate.ft.start"), key="estimate_ft_start", icon=":material/model_training:"):
        with guard("estimate"):
            fine_tune_cv.start(config)
            st.rerun()
    if job["state"] == "failed":
        st.error(say_status(job) or t("common.error_generic"))
    elif job["state"] == "stopped":
        st.caption(t("estimate.ft.stopped"))
    elif job["state"] == "done" and (job.get("result") or {}).get("cross_validation"):
        show_result(job["result"], summary_key="estimate.ft.summary")


@st.fragment(run_every=3)
def _poll_fine_tune(project: dict[str, Any]) -> None:
    _, _, job = _fine_tune_job(project)
    if job["state"] != "running":
        st.rerun()
    st.progress(float(job.get("progress") or 0.0),
                text=t("estimate.ft.running", fold=job.get("fold") or 1, folds=job.get("folds") or "…"))


def photo_advice(project: dict[str, Any]) -> dict | None:
    """The strategy advice of the project's finished estimate (core.advice rules), or None."""
    try:
        _, job = estimate_job(project)
    except OSError as exc:
        log.warning("cannot read the estimate: %s", exc)
        return None
    return (job.get("result") or {}).get("advice") if job["state"] == "done" else None


def recipe_for(strategy: str) -> dict:
    from core.advice import recipe

    return recipe(strategy)


def advice_note(advice: dict, seconds: float | None = None) -> None:
    """The photos' advice; `seconds`: its time measured on this computer (core.time_estimate),
    which replaces the probe's rough figure when there is one."""
    from core.advice import reason_facts
    from ui.components import fmt_seconds

    facts = reason_facts(advice["probe"], advice["familiarity"], advice["n_train"])
    time = seconds if seconds is not None else advice.get("expected_seconds")
    st.info(t("advice.recommendation", strategy=t(f"strategy.{advice['strategy']}"),
              reason=t(f"advice.{advice['code']}", **facts), time=fmt_seconds(time)),
            icon=":material/recommend:")


def advice_button(project: dict[str, Any]) -> None:
    from core.estimate import start

    _, job = estimate_job(project)
    if job["state"] == "running":
        st.caption(t("advice.running"))
        return
    if st.button(t("advice.probe"), key="advice_probe", help=t("advice.probe_help"), icon=":material/science:"):
        with guard("estimate"):
            start(_data_path(project), project.get("groups") or "")
            st.rerun()


def _pct(value) -> str:
    return "–" if value is None or value != value else num(f"{100 * value:.1f}%")


def _interval(d) -> str:
    if not d or d.get("mean") is None or d["mean"] != d["mean"]:
        return "–"
    return num(f"{100 * d['low']:.1f}% – {100 * d['high']:.1f}%")


def show_result(result: dict, summary_key: str = "estimate.summary") -> None:
    cv = result["cross_validation"]
    st.markdown(t(summary_key, n=f"{result['n_photos']:,}", groups=f"{result['n_groups']:,}",
                  k=cv["n_splits"], r=cv["n_repeats"]))
    rows = []
    for key in ("accuracy", "balanced_accuracy", "auc"):
        d = cv.get(key)
        rows.append({t("eval.col_metric"): t(f"estimate.metric.{key}"),
                     t("eval.col_value"): _pct(d["mean"] if d else None),
                     t("eval.col_interval"): _interval(d)})
    st.table(pd.DataFrame(rows), hide_index=True)  # small: plain HTML (readable, selectable)
    spread = cv["fold_spread"]
    st.caption(t("estimate.spread", low=_pct(spread["min"]), high=_pct(spread["max"]),
                 std=f"{100 * spread['std']:.1f}"))
    recall = pd.DataFrame({t("estimate.col_class"): list(cv["per_class_recall"]),
                           t("estimate.col_recall"): [_pct(d["mean"]) for d in cv["per_class_recall"].values()],
                           t("eval.col_interval"): [_interval(d) for d in cv["per_class_recall"].values()]})
    st.table(recall, hide_index=True)
    curve = result.get("learning_curve")
    if curve:
        st.markdown(f"**{t('estimate.curve_title')}**")
        st.plotly_chart(curve_figure(curve), key="estimate_curve_chart")
        forecast = curve.get("forecast")
        if forecast:
            if forecast["gain_high"] < 1.0:
                st.info(t("estimate.flat"), icon=":material/insights:")
            else:
                st.info(t("estimate.more", low=f"{forecast['gain_low']:.0f}",
                          high=f"{max(forecast['gain_high'], forecast['gain_low'] + 0.5):.0f}"),
                        icon=":material/insights:")
    if result.get("advice"):
        advice_note(result["advice"])
    cost = result.get("fine_tune_cv_cost")
    if cost:
        st.caption(t("estimate.fine_tune_cost", n=cost["trainings"], minutes=f"{cost['seconds'] / 60:.0f}"))


def curve_figure(curve: dict) -> go.Figure:
    import numpy as np

    from core.learning_curve import power_law

    points = curve["points"]
    x = [p["n_train"] for p in points]
    y = [100 * p["accuracy"] for p in points]
    fig = go.Figure(go.Scatter(
        x=x, y=y, mode="markers+lines", name=t("estimate.curve_measured"),
        error_y=dict(type="data", symmetric=False, array=[100 * (p["high"] - p["accuracy"]) for p in points],
                     arrayminus=[100 * (p["accuracy"] - p["low"]) for p in points])))
    if curve.get("fit"):
        grid = np.linspace(min(x), max(x) + 100 * curve["n_classes"], 50)
        fig.add_scatter(x=grid, y=100 * power_law(grid, **curve["fit"]), mode="lines", line=dict(dash="dash"),
                        name=t("estimate.curve_fit"))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=t("estimate.curve_x"),
                      yaxis_title=t("estimate.curve_y"))
    return fig
