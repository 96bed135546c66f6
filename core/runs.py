"""Run folders: one per training, self-describing, never silently lost.

`<ws>/runs/<run_id>/` holds config.json (written first, so every run can be repeated),
status.json, metrics.jsonl, model.safetensors, meta.json, splits.csv, train.log, and later
outputs_<split>.npz / evaluation.json from the trust features. Everything here reads those
files tolerantly: a run still training (half-written last line) or a crashed one (no model)
is listed and described, not an exception.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from core.config import ConfigError, TrainConfig
from core.errors import RunError
from core.jsonfile import read_json as _read_json
from core.jsonfile import read_json_checked, write_json_atomic
from core.run_status import (DIED_MESSAGE, FINISHED, STATUS_FILE, STATUSES, Heartbeat, check_alive, died,
                             pid_alive, read_status, status_text, update_status, write_status)
from core.workspace import subdir, workspace_dir

log = logging.getLogger(__name__)

STRATEGY_SHORT = {"feature-extraction": "fe", "fine-tune": "ft", "full": "full", "two-stage": "2stage"}
CONFIG_FILE, META_FILE = "config.json", "meta.json"
METRICS_FILE, MODEL_FILE, EVALUATION_FILE = "metrics.jsonl", "model.safetensors", "evaluation.json"
SPLITS_FILE, LOG_FILE, STOP_FILE = "splits.csv", "train.log", "STOP"
RESUME_FILE, LAST_MODEL_FILE = "resume.pt", "last.safetensors"  # the last epoch's state, for resuming
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


# ---- small JSON helpers (core.jsonfile: atomic, locked, damage-tolerant) -----------------
def write_json(path: Path, data: Any) -> None:
    """Write atomically and under the file's lock, so a reader never sees half a file."""
    write_json_atomic(path, data)


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is missing or damaged (logged)."""
    return _read_json(path, None)


# ---- creating a run ----------------------------------------------------------------------
def short_backbone(name: str) -> str:
    """A readable short name: tf_efficientnet_lite0 -> lite0, convnext_tiny.fb_in1k -> convnext_tiny."""
    name = name.split(".")[0]
    for prefix in ("tf_", "efficientnet_", "timm/"):
        name = name.removeprefix(prefix)
    return name


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return slug[:limit].strip("-") or "run"


def run_id_for(config: TrainConfig, now: datetime | None = None) -> str:
    now = now or datetime.now()
    label = config.run_name or Path(config.data_path.rstrip("/\\")).stem
    parts = [short_backbone(config.backbone), STRATEGY_SHORT.get(config.strategy, config.strategy), _slug(label)]
    return f"{now:%Y-%m-%d_%H%M}_" + "-".join(_slug(p, 24) for p in parts)


def new_run_dir(config: TrainConfig, workspace: str | os.PathLike | None = None) -> Path:
    """Create a fresh, uniquely named run folder and write config.json into it first."""
    runs = subdir("runs", workspace)
    base = run_id_for(config)
    for attempt in range(1, 1000):
        candidate = runs / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        config.to_json(candidate / CONFIG_FILE)
        write_status(candidate, "queued")
        return candidate
    raise RunError(f"could not create a new run folder in {runs}; remove old runs and try again")


def read_meta(run_dir: Path) -> dict:
    return read_json(Path(run_dir) / META_FILE) or {}


def update_meta(run_dir: Path, **changes: Any) -> dict:
    """Merge `changes` into meta.json under its lock (used by training and by the trust features)."""
    from core.jsonfile import update_json

    return update_json(Path(run_dir) / META_FILE, lambda meta: meta.update(changes))


# ---- reading runs ------------------------------------------------------------------------
def image_size_of(meta: dict) -> int:
    """The square input side a run was trained and validated at (the one reader of it)."""
    size = meta.get("image_size") or meta.get("input_size") or 224
    return int(size[-1]) if isinstance(size, (list, tuple)) else int(size)


def crop_pct_of(meta: dict) -> float:
    """The eval centre-crop fraction a run used; 1.0 (no crop) when absent, as training falls back."""
    return float(meta.get("crop_pct") or 1.0)


def read_metrics(run_dir: Path, kind: str | None = "epoch") -> pd.DataFrame:
    """metrics.jsonl as a DataFrame (only lines of `kind`, or all when None).

    Tolerates a half-written last line, because the UI reads while training appends.
    """
    path = Path(run_dir) / METRICS_FILE
    rows = []
    if path.exists():
        text = path.read_bytes().decode("utf-8", errors="replace")  # a damaged byte loses one line, not the run
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise json.JSONDecodeError("not an object", line, 0)
            except json.JSONDecodeError:
                log.debug("skipping unfinished line %d of %s", number, path)
                continue
            if kind is None or row.get("type") == kind:
                rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class Run:
    run_dir: Path
    config: TrainConfig
    meta: dict
    metrics: pd.DataFrame
    evaluation: dict | None
    status: dict = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names", []))

    def model(self, device: str = "cpu"):
        """Rebuild the timm model (no download: weights="scratch") and load the best weights."""
        from core.weights import create_backbone

        weights = self.run_dir / MODEL_FILE
        if not weights.exists() or not self.class_names:
            raise RunError(f"run {self.run_id} has no trained model (status: {self.status.get('state')}); "
                           "train it again")
        model = create_backbone(self.meta.get("backbone", self.config.backbone), len(self.class_names),
                                weights="scratch")
        state = load_weights(weights, self.run_id)
        try:
            model.load_state_dict(state)
        except (RuntimeError, OSError) as exc:
            raise RunError(f"the model file of run {self.run_id} is damaged ({str(exc).splitlines()[0]}); "
                           "train it again") from exc
        return model.to(device).eval()

    @property
    def from_failed_run(self) -> bool:
        """The model is the last checkpoint of a run that did not finish (it may be undertrained)."""
        return self.status.get("state") in ("failed", "running", "queued")


def load_weights(path: str | os.PathLike, run_id: str = "") -> dict:
    """A safetensors file as a state dict; RunError in plain words when it is truncated or damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        log.warning("cannot load %s: %s", path, exc)
        what = f"the model file of run {run_id}" if run_id else f"the weights file {Path(path).name}"
        raise RunError(f"{what} is damaged or incomplete ({str(exc).splitlines()[0][:120]}); "
                       "train the run again (or resume it if it did not finish)") from None


def resolve_run_dir(run: str | os.PathLike, workspace: str | os.PathLike | None = None) -> Path:
    """Accept a run folder path or a bare run id from `latih runs`."""
    text = str(run)
    path = Path(text).expanduser()
    runs_root = (workspace_dir(workspace, create=False) / "runs").resolve()
    if RUN_ID.fullmatch(text) and ".." not in text:
        by_id = runs_root / text
        if (by_id / CONFIG_FILE).exists():
            return by_id
    # A folder the person names is taken as given; an id is never joined with "/" or "..",
    # so `../../x/runs/X` cannot reach outside the workspace's runs folder.
    if (path / CONFIG_FILE).exists():
        return path.resolve()
    raise RunError(f"no run found at {text[:200]}; give a run id from `latih runs` or a run folder")


def load_run(run_dir: str | os.PathLike, workspace: str | os.PathLike | None = None) -> Run:
    run_dir = resolve_run_dir(run_dir, workspace)
    data, problem = read_json_checked(run_dir / CONFIG_FILE)
    if problem or not isinstance(data, dict):
        raise RunError(f"run {run_dir.name} is damaged: config.json {problem or 'is not a JSON object'}; "
                       "delete this run (the other runs are not affected)")
    try:
        config = TrainConfig.from_dict(data)
    except (ConfigError, TypeError) as exc:
        raise RunError(f"run {run_dir.name} has an unreadable config.json ({exc})") from exc
    return Run(run_dir=run_dir, config=config, meta=read_meta(run_dir), metrics=read_metrics(run_dir),
               evaluation=read_json(run_dir / EVALUATION_FILE), status=check_alive(run_dir))


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
    config, config_problem = read_json_checked(run_dir / CONFIG_FILE)
    config = config if isinstance(config, dict) else {}
    meta, status = read_meta(run_dir), check_alive(run_dir)
    problems = [f"config.json {config_problem}"] if config_problem else []
    if status.get("damaged"):
        problems.append(status["damaged"])
    best = _best_epoch_row(read_metrics(run_dir), meta.get("best_epoch"))
    evaluation = read_json(run_dir / EVALUATION_FILE)
    return {
        "run_id": run_dir.name,
        "created": _created(status, run_dir),
        "data": config.get("data_path"),
        "backbone": config.get("backbone"),
        "strategy": config.get("strategy"),
        "status": status.get("state"),
        "status_text": "damaged" if problems else status_text(status),
        "damaged": "; ".join(problems) or None,
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
    rows = [summarize_run(d) for d in sorted(runs_root.glob("*")) if (d / CONFIG_FILE).exists()] \
        if runs_root.exists() else []
    columns = ["run_id", "created", "data", "backbone", "strategy", "status", "status_text", "damaged", "message",
               "best_epoch", "val_acc",
               "val_f1", "eval_split", "eval_acc", "eval_f1", "wall_s", "run_dir"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["best_epoch"] = frame["best_epoch"].astype("Int64")
    return frame.sort_values("created", ascending=False, ignore_index=True) if rows else frame


def delete_run(run_dir: str | os.PathLike, workspace: str | os.PathLike | None = None) -> None:
    """Delete one run folder; refuses anything that is not a run folder, and a running run."""
    run_dir = resolve_run_dir(run_dir, workspace)
    status = read_status(run_dir)
    status = check_alive(run_dir, status)
    if status.get("state") == "running":
        raise RunError(f"run {run_dir.name} is still training; stop it first")
    shutil.rmtree(run_dir)
    log.info("deleted run %s", run_dir)


__all__ = ["Run", "new_run_dir", "list_runs", "load_run", "delete_run", "read_metrics",
           "write_status", "read_status", "read_meta", "update_meta", "resolve_run_dir", "workspace_dir",
           "write_json", "read_json", "summarize_run", "load_weights", "check_alive", "status_text", "died",
           "update_status", "pid_alive", "Heartbeat", "STATUSES", "FINISHED", "DIED_MESSAGE", "STATUS_FILE"]
