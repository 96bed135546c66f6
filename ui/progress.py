"""Read a run's live progress from its files (metrics.jsonl, status.json, config.json) and plot it.

The page never talks to the training process: it only reads what the engine writes, so a
reload, a second tab or an app restart all see the same training.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.liveness import to_epoch
from core.runs import CONFIG_FILE, read_json, read_metrics
from ui.components import fmt_seconds
from ui.i18n import t

log = logging.getLogger(__name__)


def read_events(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(epoch rows, batch rows) from the run's metrics file, read by core.runs (a half-written
    last line is skipped there)."""
    return read_metrics(run_dir, "epoch"), read_metrics(run_dir, "batch")


def read_config(run_dir: str | Path) -> dict[str, Any]:
    return read_json(Path(run_dir) / CONFIG_FILE) or {}



def progress(run_dir: str | Path, status: dict, epochs: pd.DataFrame, batches: pd.DataFrame) -> dict[str, Any]:
    """Fraction done, elapsed and ETA seconds, current epoch of total."""
    config = read_config(run_dir)
    total = int(status.get("epochs_total") or status.get("total_epochs") or config.get("epochs") or 1)
    done_epochs = 0 if epochs.empty else int(epochs["epoch"].max())
    frac = done_epochs / total
    current_epoch = done_epochs
    if not batches.empty:
        last = batches.iloc[-1]
        b_epoch = int(last.get("epoch", done_epochs))
        n_batches = max(int(last.get("n_batches", 1) or 1), 1)
        if b_epoch > done_epochs:
            frac = ((b_epoch - 1) + float(last.get("batch", 0)) / n_batches) / total
            current_epoch = b_epoch
    frac = min(max(frac, 0.0), 1.0)
    started = to_epoch(status.get("started"))
    end = to_epoch(status.get("updated")) if status.get("state") in ("done", "failed", "stopped") else time.time()
    elapsed = (end - started) if started and end else (float(epochs["seconds"].sum()) if "seconds" in epochs else None)
    eta = elapsed * (1 - frac) / frac if elapsed and frac > 0.01 else None
    return {"fraction": frac, "elapsed": elapsed, "eta": eta, "epoch": max(current_epoch, 1 if frac else 0),
            "epochs_total": total}


def curves_figure(epochs: pd.DataFrame, batches: pd.DataFrame) -> go.Figure:
    """Loss and accuracy per epoch (train vs validation), and loss per batch."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=(t("train.chart_loss"), t("train.chart_acc"),
                                                        t("train.chart_batch_loss")))
    if not epochs.empty:
        for col, name, dash in (("train_loss", t("train.series_train"), None), ("val_loss", t("train.series_val"), "dot")):
            if col in epochs:
                fig.add_trace(go.Scatter(x=epochs["epoch"], y=epochs[col], name=f"{name} ({t('train.loss')})",
                                         mode="lines+markers", line=dict(dash=dash)), row=1, col=1)
        for col, name, dash in (("train_acc", t("train.series_train"), None), ("val_acc", t("train.series_val"), "dot")):
            if col in epochs:
                fig.add_trace(go.Scatter(x=epochs["epoch"], y=epochs[col], name=f"{name} ({t('train.accuracy')})",
                                         mode="lines+markers", line=dict(dash=dash)), row=1, col=2)
    if not batches.empty and "loss" in batches:
        n = batches["n_batches"].fillna(1).clip(lower=1) if "n_batches" in batches else 1
        x = (batches["epoch"] - 1) + batches["batch"] / n if "batch" in batches else batches.index
        fig.add_trace(go.Scatter(x=x, y=batches["loss"], name=t("train.series_batch"),
                                 mode="lines+markers" if len(batches) < 60 else "lines",
                                 marker=dict(size=4), line=dict(width=1)), row=1, col=3)
    fig.update_xaxes(title_text=t("train.axis_epoch"))
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def overlay_figure(runs: dict[str, pd.DataFrame], metric: str) -> go.Figure:
    fig = go.Figure()
    for label, epochs in runs.items():
        if not epochs.empty and metric in epochs:
            fig.add_trace(go.Scatter(x=epochs["epoch"], y=epochs[metric], name=label, mode="lines+markers"))
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=t("train.axis_epoch"),
                      yaxis_title=metric, legend=dict(orientation="h", y=-0.2))
    return fig


# ---- truthful progress (issue 11): the phase with its count, an ETA only once stable ------------
def stop_requested(run_dir: str | Path) -> bool:
    """The Stop button was pressed (the engine stops after the current batch, then saves)."""
    from core.runs import STOP_FILE

    return (Path(run_dir) / STOP_FILE).exists()


def live_progress(run_dir: str | Path, status: dict, n_photos: int | None = None):
    """core.run_progress.Progress of a running training, read from its files."""
    from core.run_progress import progress_of, read_events

    config = read_config(run_dir)
    total = int(status.get("epochs_total") or status.get("total_epochs") or config.get("epochs") or 1)
    now = progress_of(read_events(run_dir), total, stopping=stop_requested(run_dir), n_photos=n_photos)
    if status.get("phase") == "evaluation" and now.phase in ("outputs", "epoch", "validation", "stopping"):
        now.phase, now.done, now.total, now.eta = "evaluation", None, None, None  # the engine says so
    return now


def phase_text(p) -> str:
    """'Computing features: 120 of 398 photos (validation photos)' and the like, in the catalogue's words."""
    split = t(f"progress.split.{p.split}") if p.split in ("train", "val", "test") else ""
    key = f"progress.phase.{p.phase}"
    if p.counted:
        text = t(f"{key}.counted", done=f"{p.done:,}", total=f"{p.total:,}", epoch=p.epoch, split=split)
    else:
        text = t(key, epoch=p.epoch, split=split)
    if p.phase_eta is not None and p.counted and p.done < p.total:
        text += " · " + t("progress.phase_eta", eta=fmt_seconds(p.phase_eta))
    return text


def overall_text(p, elapsed: float | None) -> str:
    eta = t("progress.eta", eta=fmt_seconds(p.eta)) if p.eta is not None else t("progress.eta_pending")
    return t("progress.overall", epoch=max(p.epoch, 0), total=p.epochs_total, pct=int(p.fraction * 100),
             elapsed=fmt_seconds(elapsed), eta=eta)


def stopping_seconds(run_dir: str | Path) -> float:
    from core.time_estimate import stopping_seconds as seconds

    try:
        return float(seconds(run_dir))
    except Exception as exc:  # a guess must never break the page
        log.warning("stopping estimate of %s failed: %s", run_dir, exc)
        return 0.0
