"""Evaluate page: the screening threshold, moved by the clinician after training.

`target_banner(ev)` says plainly, at the top of the page, when the target sensitivity is not
(shown to be) reached. `render(run_dir, ev)` is the section: a slider over every threshold that
changes something on the validation photos, the live sensitivity / specificity / PPV / NPV with
95% intervals and counts on the test and validation photos, the point on the ROC curve, and
Save (core.operating_point.set_threshold), after which Test, `latih predict` and export use it.
The positive class (a folder name) reaches Markdown only through `t`, which escapes it (ui.safe_text);
plain-text places (slider options, table headers, chart labels) use `t_plain`.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import figures
from core import operating_point as op
from ui.components import guard
from ui.i18n import get_lang, num, t, t_plain
from ui.safe_text import plotly as plotly_text

log = logging.getLogger(__name__)

FLASH_KEY = "oppoint_saved"


def _pct(value) -> str:
    return "–" if value is None else num(f"{100 * value:.1f}%")


def _band(ci) -> str:
    return "–" if not ci else num(f"{100 * ci[0]:.1f}% – {100 * ci[1]:.1f}%")


def _split_name(split: str) -> str:
    return t(f"split.{split}") if split in ("test", "val", "train") else split


def _stamp(run_dir: str) -> tuple[float, float]:
    paths = [Path(run_dir) / name for name in ("meta.json", "evaluation.json")]
    return tuple(p.stat().st_mtime if p.exists() else 0.0 for p in paths)


@st.cache_data(max_entries=4, show_spinner=False)
def _scores(run_dir: str, stamp: tuple) -> op.ScreeningScores:
    return op.load_scores(run_dir)


@st.cache_data(max_entries=64, show_spinner=False)
def _figures(run_dir: str, stamp: tuple, threshold: float) -> dict:
    return op.figures_at(_scores(run_dir, stamp), threshold)


# ---- the warning at the top of the page ---------------------------------------------------------
def target_banner(ev: dict | None) -> None:
    """Say so at the top when the sensitivity's 95% interval reaches below the target."""
    short = op.target_shortfall(ev)
    if short is None:
        return
    fmt = dict(target=f"{100 * short['target']:.0f}", split=_split_name(short["split"]),
               sens=f"{100 * short['sensitivity']:.0f}", low=f"{100 * short['low']:.0f}",
               high=f"{100 * short['high']:.0f}")
    if short["point_below"]:
        st.error(t("oppoint.target_missed", **fmt), icon=":material/error:")
    else:
        st.warning(t("oppoint.target_unsure", **fmt), icon=":material/warning:")


# ---- the section ----------------------------------------------------------------------------------
def _option_labels(options: list[float], scores: op.ScreeningScores) -> dict[float, str]:
    """One unique label per threshold: its value and the share of sick validation photos caught."""
    pos = np.sort(scores.scores("val")[scores.truth("val")])
    n_pos = max(1, len(pos))
    for digits in range(3, 10):
        values = [f"{x:.{digits}f}" for x in options]
        if len(set(values)) == len(values):
            break
    caught = [(len(pos) - np.searchsorted(pos, x, side="left")) / n_pos for x in options]
    return {x: t_plain("oppoint.option", threshold=v, sens=f"{100 * c:.0f}") for x, v, c in zip(options, values, caught)}


def _table(fig: dict) -> pd.DataFrame:
    order = [s for s in ("test", "val") if s in fig["splits"]]
    rows = []
    for rate in op.RATES:
        row = {t("oppoint.col_rate"): t(f"oppoint.rate_{rate}")}
        for split in order:
            f = fig["splits"][split]
            row[t_plain("oppoint.col_value", split=_split_name(split))] = _pct(f[rate])
            row[t_plain("oppoint.col_interval", split=_split_name(split))] = _band(f["ci"].get(rate))
        row[t("oppoint.col_meaning")] = t(f"oppoint.rate_{rate}.help")
        rows.append(row)
    return pd.DataFrame(rows)


def _roc(ev: dict, fig: dict, saved: float | None) -> go.Figure:
    # class names become trace names: escaped for plotly, which reads <a href> in its labels
    chart = figures.roc_figure({**ev, "roc": {plotly_text(k): v for k, v in (ev.get("roc") or {}).items()}},
                               lang=get_lang())
    for trace in chart.data:
        if trace.mode == "lines" and list(trace.x) == [0, 1] and list(trace.y) == [0, 1]:
            trace.name = t("oppoint.chance")
        elif trace.mode == "markers":
            trace.name = t_plain("oppoint.point_saved", threshold=f"{saved:.3f}" if saved is not None else "–")
    live = fig["splits"][fig["measured_on"]]
    if live["sensitivity"] is not None and live["specificity"] is not None:
        chart.add_trace(go.Scatter(x=[1 - live["specificity"]], y=[live["sensitivity"]], mode="markers",
                                   name=t_plain("oppoint.point_live", threshold=f"{fig['threshold']:.3f}"),
                                   marker={"size": 14, "symbol": "circle-open", "color": "#2e7d32",
                                           "line": {"width": 3}}))
    chart.update_layout(title=t_plain("oppoint.roc_title", split=_split_name(fig["measured_on"])),
                        xaxis_title=t("eval.axis_fpr"), yaxis_title=t("eval.axis_tpr"))
    return chart


def _counts(fig: dict, positive: str) -> None:
    for split in ("test", "val"):
        f = fig["splits"].get(split)
        if f:
            st.caption(t("oppoint.counts", split=_split_name(split), n=f["n"], n_pos=f["n_positive"],
                         positive=positive, tp=f["tp"], fn=f["fn"], fp=f["fp"], n_neg=f["n"] - f["n_positive"]))


def _history(scores: op.ScreeningScores) -> None:
    if not scores.history:
        return
    with st.expander(t("oppoint.history_title", n=len(scores.history))):
        st.dataframe(pd.DataFrame([{
            t("oppoint.col_when"): e.get("when"),
            t("oppoint.col_where"): t("oppoint.where_cli") if e.get("where") == "cli" else t("oppoint.where_page"),
            t("oppoint.col_old"): "–" if e.get("old") is None else f"{e['old']:.4f}",
            t("oppoint.col_new"): f"{e['new']:.4f}",
            t("oppoint.col_sensitivity"): _pct(e.get("sensitivity")),
            t("oppoint.col_specificity"): _pct(e.get("specificity"))} for e in reversed(scores.history)]),
            hide_index=True, key="oppoint_history_table")


def slider_key(run_dir) -> str:
    """One slider per run, so switching runs never carries a threshold over to another run."""
    return f"oppoint_threshold_{Path(run_dir).name}"


def render(run_dir: str, ev: dict) -> None:
    """The screening-threshold section of the Evaluate page (nothing for non-screening runs)."""
    screen = (ev or {}).get("screening") or {}
    if not screen.get("applied_to_predictions") or not op.is_screening(run_dir):
        return
    scores = None
    stamp = _stamp(run_dir)
    with guard("operating point"):
        scores = _scores(str(run_dir), stamp)
    if scores is None:
        return
    st.subheader(t("oppoint.title"))
    if FLASH_KEY in st.session_state:
        st.success(st.session_state.pop(FLASH_KEY), icon=":material/check_circle:")
    st.caption(t("oppoint.help", positive=scores.positive_class,
                 target=f"{100 * scores.target_sensitivity:.0f}"))
    options = op.candidate_thresholds(scores)
    labels = _option_labels(options, scores)
    saved = scores.threshold
    chosen = st.select_slider(t("oppoint.slider", positive=scores.positive_class), options=options,
                              value=saved if saved in labels else options[0], format_func=labels.get,
                              key=slider_key(run_dir), help=t("oppoint.slider_help"))
    fig = _figures(str(run_dir), stamp, float(chosen))
    if fig["validation_only"]:
        st.warning(t("oppoint.validation_only"), icon=":material/warning:")
    st.dataframe(_table(fig), hide_index=True, key="oppoint_table")
    _counts(fig, scores.positive_class)
    st.plotly_chart(_roc(ev, fig, saved), key="oppoint_roc")
    unchanged = saved is not None and float(chosen) == saved
    if st.button(t("oppoint.save"), key="oppoint_save", type="primary", disabled=unchanged,
                 help=t("oppoint.save_help")):
        done = False
        with guard("save threshold"):
            op.set_threshold(run_dir, float(chosen), source="evaluate page")
            done = True
        if done:
            st.session_state[FLASH_KEY] = t("oppoint.saved", threshold=f"{float(chosen):.4f}")
            st.rerun()
    if unchanged:
        st.caption(t("oppoint.is_saved"))
    _history(scores)
