"""Plotly figures for the evaluation page; pure plotly (no streamlit) so the CLI and tests can
build them too. Builders take the dict that `core.evaluate.evaluate_run` returns / writes."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


def confusion_matrix_figure(evaluation: dict, normalized: bool = True) -> go.Figure:
    """Rows = true class, columns = predicted; colour by row share, text shows counts too."""
    m, names = evaluation["metrics"], evaluation["class_names"]
    counts, share = m["confusion_matrix"], m["confusion_matrix_normalized"]
    text = [[f"{c}<br>{100 * s:.0f}%" for c, s in zip(rc, rs)] for rc, rs in zip(counts, share)]
    fig = go.Figure(go.Heatmap(z=share if normalized else counts, x=names, y=names, text=text,
                               texttemplate="%{text}", colorscale="Blues", zmin=0,
                               zmax=1 if normalized else None, showscale=False,
                               hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>"))
    fig.update_layout(title=f"Confusion matrix ({evaluation['evaluated_on']})",
                      xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed")
    return fig


def roc_figure(evaluation: dict) -> go.Figure:
    """ROC curve(s) with the screening operating point marked when there is one."""
    fig = go.Figure()
    for name, pts in (evaluation.get("roc") or {}).items():
        if pts:
            fig.add_trace(go.Scatter(x=pts["fpr"], y=pts["tpr"], mode="lines", name=name,
                                     customdata=pts["thresholds"],
                                     hovertemplate="FPR %{x:.2f}, TPR %{y:.2f}, thr %{customdata:.3f}"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                             line={"dash": "dot", "color": "grey"}))
    screen = evaluation.get("screening")
    op = screen and screen.get("evaluation")
    if op and op.get("sensitivity") is not None and op.get("specificity") is not None:
        fig.add_trace(go.Scatter(x=[1 - op["specificity"]], y=[op["sensitivity"]], mode="markers",
                                 name=f"operating point (thr {op['threshold']:.3f})",
                                 marker={"size": 12, "symbol": "x", "color": "red"}))
    fig.update_layout(title="ROC curve", xaxis_title="false positive rate (1 - specificity)",
                      yaxis_title="true positive rate (sensitivity)", xaxis_range=[0, 1], yaxis_range=[0, 1.02])
    return fig


def reliability_figure(evaluation: dict) -> go.Figure:
    """Accuracy against confidence per bin, before and after temperature scaling."""
    cal = evaluation["calibration"]
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                               line={"dash": "dot", "color": "grey"}))
    for key, label in (("bins_before", f"before (ECE {100 * (cal['ece_before'] or 0):.1f}%)"),
                       ("bins_after", f"after T={cal['temperature']:.2f} (ECE {100 * (cal['ece_after'] or 0):.1f}%)")):
        bins = [b for b in cal[key] if b["count"]]
        fig.add_trace(go.Scatter(x=[b["confidence"] for b in bins], y=[b["accuracy"] for b in bins],
                                 mode="lines+markers", name=label,
                                 customdata=[b["count"] for b in bins],
                                 hovertemplate="confidence %{x:.2f}, accuracy %{y:.2f}, %{customdata} photos"))
    fig.update_layout(title="Reliability: is a 90% confidence right 90% of the time?",
                      xaxis_title="confidence", yaxis_title="accuracy", xaxis_range=[0, 1], yaxis_range=[0, 1.02])
    return fig


def per_class_bar_figure(evaluation: dict) -> go.Figure:
    """Precision, recall and F1 per class, side by side."""
    rows = evaluation["metrics"]["per_class"]
    names = [r["name"] for r in rows]
    fig = go.Figure([go.Bar(name=k, x=names, y=[r[k] for r in rows]) for k in ("precision", "recall", "f1")])
    fig.update_layout(barmode="group", title="Per class", yaxis_range=[0, 1], yaxis_title="score")
    return fig


def curves_figure(metrics_df: pd.DataFrame, keys, run_col: str = "run", x: str = "epoch") -> go.Figure:
    """Training curves of one or several runs (a `run` column overlays them)."""
    fig = go.Figure()
    df = metrics_df if run_col in metrics_df.columns else metrics_df.assign(**{run_col: ""})
    for run, g in df.groupby(run_col, sort=False):
        for key in keys:
            if key in g.columns:
                d = g[[x, key]].dropna()
                fig.add_trace(go.Scatter(x=d[x], y=d[key], mode="lines+markers",
                                         name=f"{run} {key}".strip()))
    fig.update_layout(title=", ".join(keys), xaxis_title=x)
    return fig
