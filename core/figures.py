"""Plotly figures for the evaluation page; pure plotly (no streamlit) so the CLI and tests can
build them too. Builders take the dict that `core.evaluate.evaluate_run` returns / writes, and
the language of their titles, axis labels, legends and hover texts (`figure.*` in the catalogue;
default: the process's language, core.i18n)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.i18n import process_lang, tr


def _local(fig: go.Figure, lang: str | None) -> go.Figure:
    """Axis numbers the way of the language: Bahasa Indonesia writes 0,5 and 1.000."""
    if (lang or process_lang()) == "id":
        fig.update_layout(separators=",.")
    return fig


def _split(name: str, lang: str | None) -> str:
    return tr(f"figure.split.{name}", lang) if name in ("train", "val", "test") else str(name)


def confusion_matrix_figure(evaluation: dict, normalized: bool = True, lang: str | None = None) -> go.Figure:
    """Rows = true class, columns = predicted; colour by row share, text shows counts too."""
    m, names = evaluation["metrics"], evaluation["class_names"]
    counts, share = m["confusion_matrix"], m["confusion_matrix_normalized"]
    text = [[f"{c}<br>{100 * s:.0f}%" for c, s in zip(rc, rs)] for rc, rs in zip(counts, share)]
    fig = go.Figure(go.Heatmap(z=share if normalized else counts, x=names, y=names, text=text,
                               texttemplate="%{text}", colorscale="Blues", zmin=0,
                               zmax=1 if normalized else None, showscale=False,
                               hovertemplate=tr("figure.confusion_hover", lang) + "<extra></extra>"))
    fig.update_layout(title=tr("figure.confusion_title", lang, split=_split(evaluation["evaluated_on"], lang)),
                      xaxis_title=tr("figure.predicted", lang), yaxis_title=tr("figure.true", lang),
                      yaxis_autorange="reversed")
    return _local(fig, lang)


def roc_figure(evaluation: dict, lang: str | None = None) -> go.Figure:
    """ROC curve(s) with the screening operating point marked when there is one."""
    fig = go.Figure()
    for name, pts in (evaluation.get("roc") or {}).items():
        if pts:
            fig.add_trace(go.Scatter(x=pts["fpr"], y=pts["tpr"], mode="lines", name=name,
                                     customdata=pts["thresholds"],
                                     hovertemplate=tr("figure.roc_hover", lang)))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=tr("figure.chance", lang),
                             line={"dash": "dot", "color": "grey"}))
    screen = evaluation.get("screening")
    op = screen and screen.get("evaluation")
    if op and op.get("sensitivity") is not None and op.get("specificity") is not None:
        fig.add_trace(go.Scatter(x=[1 - op["specificity"]], y=[op["sensitivity"]], mode="markers",
                                 name=tr("figure.operating_point", lang, threshold=f"{op['threshold']:.3f}"),
                                 marker={"size": 12, "symbol": "x", "color": "red"}))
    fig.update_layout(title=tr("figure.roc_title", lang), xaxis_title=tr("figure.fpr", lang),
                      yaxis_title=tr("figure.tpr", lang), xaxis_range=[0, 1], yaxis_range=[0, 1.02])
    return _local(fig, lang)


def reliability_figure(evaluation: dict, lang: str | None = None) -> go.Figure:
    """Accuracy against confidence per bin, before and after temperature scaling."""
    cal = evaluation["calibration"]
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=tr("figure.perfectly_calibrated", lang),
                               line={"dash": "dot", "color": "grey"}))
    before = tr("figure.ece_before", lang, ece=f"{100 * (cal['ece_before'] or 0):.1f}")
    after = tr("figure.ece_after", lang, t=f"{cal['temperature']:.2f}", ece=f"{100 * (cal['ece_after'] or 0):.1f}")
    for key, label in (("bins_before", before), ("bins_after", after)):
        bins = [b for b in cal[key] if b["count"]]
        fig.add_trace(go.Scatter(x=[b["confidence"] for b in bins], y=[b["accuracy"] for b in bins],
                                 mode="lines+markers", name=label,
                                 customdata=[b["count"] for b in bins],
                                 hovertemplate=tr("figure.reliability_hover", lang)))
    fig.update_layout(title=tr("figure.reliability_title", lang), xaxis_title=tr("figure.confidence", lang),
                      yaxis_title=tr("figure.accuracy", lang), xaxis_range=[0, 1], yaxis_range=[0, 1.02])
    return _local(fig, lang)


def per_class_bar_figure(evaluation: dict, lang: str | None = None) -> go.Figure:
    """Precision, recall and F1 per class, side by side."""
    rows = evaluation["metrics"]["per_class"]
    names = [r["name"] for r in rows]
    fig = go.Figure([go.Bar(name=tr(f"figure.{k}", lang), x=names, y=[r[k] for r in rows])
                     for k in ("precision", "recall", "f1")])
    fig.update_layout(barmode="group", title=tr("figure.per_class_title", lang), yaxis_range=[0, 1],
                      yaxis_title=tr("figure.score", lang))
    return _local(fig, lang)


def curves_figure(metrics_df: pd.DataFrame, keys, run_col: str = "run", x: str = "epoch",
                  lang: str | None = None) -> go.Figure:
    """Training curves of one or several runs (a `run` column overlays them)."""
    fig = go.Figure()
    df = metrics_df if run_col in metrics_df.columns else metrics_df.assign(**{run_col: ""})
    for run, g in df.groupby(run_col, sort=False):
        for key in keys:
            if key in g.columns:
                d = g[[x, key]].dropna()
                fig.add_trace(go.Scatter(x=d[x], y=d[key], mode="lines+markers",
                                         name=f"{run} {tr(f'curve.{key}', lang)}".strip()))
    fig.update_layout(title=", ".join(tr(f"curve.{k}", lang) for k in keys), xaxis_title=tr(f"figure.{x}", lang))
    return _local(fig, lang)
