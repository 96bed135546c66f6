"""The runs of a workspace: one summary row per run for the Runs page and `latih runs`, and
deleting a run (never a running one). Reads run folders only through core/runs.py."""
from __future__ import annotations

import logging
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from core import runs
from core.errors import RunError
from core.jsonfile import json_problem, read_json_checked
from core.workspace import workspace_dir
from core.i18n import Msg, joined

log = logging.getLogger(__name__)


def _best_epoch_row(metrics: pd.DataFrame, best_epoch: int | None) -> dict:
    if metrics.empty or "epoch" not in metrics:
        return {}
    if best_epoch is not None and (metrics["epoch"] == best_epoch).any():
        return metrics[metrics["epoch"] == best_epoch].iloc[-1].to_dict()
    if "val_acc" in metrics and metrics["val_acc"].notna().any():
        return metrics.loc[metrics["val_acc"].idxmax()].to_dict()
    return {}


def _headline(evaluation: dict | None, key: str) -> float | None:
    """Pull one headline number out of evaluation.json, whatever its nesting ({value: ...} or a float)."""
    if not evaluation:
        return None
    for container in (evaluation.get("metrics"), evaluation):
        if isinstance(container, dict) and key in container:
            value = container[key]
            if isinstance(value, dict):
                value = value.get("value", value.get("point"))
            if isinstance(value, (int, float)):
                return float(value)
    return None


def _created(status: dict, run_dir: Path) -> datetime:
    for key in ("started", "submitted"):
        try:
            return datetime.fromisoformat(str(status[key])).replace(tzinfo=None)
        except (KeyError, ValueError):
            continue
    return datetime.fromtimestamp(run_dir.stat().st_mtime)


def summarize_run(run_dir: Path) -> dict:
    """One row for the runs table; never raises for a damaged run (it is shown as such)."""
    config, config_problem = read_json_checked(run_dir / runs.CONFIG_FILE)
    config = config if isinstance(config, dict) else {}
    meta, status = runs.read_meta(run_dir), runs.check_alive(run_dir)
    problems = [json_problem(runs.CONFIG_FILE, config_problem)] if config_problem else []
    if status.get("damaged"):
        problems.append(status["damaged"])
    best = _best_epoch_row(runs.read_metrics(run_dir), meta.get("best_epoch"))
    evaluation = runs.read_json(run_dir / runs.EVALUATION_FILE)
    return {
        "run_id": run_dir.name,
        "created": _created(status, run_dir),
        "data": config.get("data_path"),
        "backbone": config.get("backbone"),
        "strategy": config.get("strategy"),
        "status": status.get("state"),
        "status_text": "damaged" if problems else runs.status_text(status),
        "damaged": joined(problems) if problems else None,
        "message": status.get("message"),
        "best_epoch": _as_int(meta.get("best_epoch")),
        "val_acc": best.get("val_acc"),
        "val_f1": best.get("val_f1"),
        "eval_split": (evaluation or {}).get("evaluated_on"),
        "eval_acc": _headline(evaluation, "accuracy"),
        "eval_f1": _headline(evaluation, "macro_f1"),
        "wall_s": meta.get("wall_s"),
        "run_dir": str(run_dir),
    }


def _as_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def list_runs(workspace: str | os.PathLike | None = None) -> pd.DataFrame:
    """All runs in the workspace, newest first."""
    runs_root = workspace_dir(workspace, create=False) / "runs"
    rows = [summarize_run(d) for d in sorted(runs_root.glob("*")) if (d / runs.CONFIG_FILE).exists()] \
        if runs_root.exists() else []
    columns = ["run_id", "created", "data", "backbone", "strategy", "status", "status_text", "damaged", "message",
               "best_epoch", "val_acc",
               "val_f1", "eval_split", "eval_acc", "eval_f1", "wall_s", "run_dir"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["best_epoch"] = frame["best_epoch"].astype("Int64")
    # pandas would store these as plain str: kept as objects, a Msg stays a Msg, so each page
    # says why a run is damaged (and its status message) in its own language
    for column in ("damaged", "message"):
        frame[column] = pd.Series([row[column] for row in rows], index=frame.index, dtype=object)
    return frame.sort_values("created", ascending=False, ignore_index=True) if rows else frame


def delete_run(run_dir: str | os.PathLike, workspace: str | os.PathLike | None = None) -> None:
    """Delete one run folder; refuses anything that is not a run folder, and a running run."""
    run_dir = runs.resolve_run_dir(run_dir, workspace)
    status = runs.check_alive(run_dir, runs.read_status(run_dir))
    if status.get("state") == "running":
        raise RunError(Msg("err.run.still_training", run=run_dir.name))
    shutil.rmtree(run_dir)
    log.info("deleted run %s", run_dir)
