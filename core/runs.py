"""Run folders: the one module that knows what is inside `<ws>/runs/<run_id>/`.

`<ws>/runs/<run_id>/` holds config.json (written first, so every run can be repeated),
status.json, metrics.jsonl, model.safetensors, meta.json, splits.csv, train.log, and later
outputs_<split>.npz / evaluation.json from the trust features. Every other module names these
files through the constants here and reads/writes them through the helpers here (atomic and
locked: core/jsonfile.py underneath). Everything here reads tolerantly: a run still training
(half-written last line) or a crashed one (no model) is described, not an exception.

status.json = {"state": queued|running|done|failed|stopped, "pid", "message", "updated",
"submitted", "started", "heartbeat" (epoch seconds), "epoch", ...}. The training process
refreshes "heartbeat" every HEARTBEAT_S seconds (Heartbeat). A dead "running" run
(core/liveness.py) is recorded as failed with `reason: "died"` and DIED_MESSAGE by
`check_alive`, so every view says "stopped unexpectedly" within a poll.
Listing and deleting runs is core/run_list.py.
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from core.config import ConfigError, TrainConfig
from core.errors import RunError
from core.i18n import Msg
from core.jsonfile import read_json as _read_json
from core.jsonfile import json_problem, read_json_checked, update_json, write_json_atomic
from core.liveness import HEARTBEAT_S, is_dead, now_iso
from core.workspace import subdir, workspace_dir

log = logging.getLogger(__name__)

STRATEGY_SHORT = {"feature-extraction": "fe", "fine-tune": "ft", "full": "full", "two-stage": "2stage"}
CONFIG_FILE, META_FILE, STATUS_FILE = "config.json", "meta.json", "status.json"
METRICS_FILE, MODEL_FILE, EVALUATION_FILE = "metrics.jsonl", "model.safetensors", "evaluation.json"
SPLITS_FILE, LOG_FILE, STOP_FILE = "splits.csv", "train.log", "STOP"
RESUME_FILE, LAST_MODEL_FILE = "resume.pt", "last.safetensors"  # the last epoch's state, for resuming
# The last epoch's weights are one file per epoch (last-e0003.safetensors), named by resume.pt, so
# the state written last always points at a complete pair (core/resume.py). LAST_MODEL_FILE is
# the one name runs saved before paired checkpoints; a resume of such a run still reads it.
LAST_MODEL_EPOCH = re.compile(r"last-e\d{4,}\.safetensors")


def last_model_name(epoch: int) -> str:
    """The file name of the model at the end of `epoch`, for resuming."""
    return f"last-e{int(epoch):04d}.safetensors"


def last_model_files(run_dir: str | os.PathLike) -> list[Path]:
    """Every last-epoch weights file in the run folder (the paired one, leftovers of a crash, the old name)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir()
                  if p.is_file() and (p.name == LAST_MODEL_FILE or LAST_MODEL_EPOCH.fullmatch(p.name)))
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")

STATUSES = ("queued", "running", "done", "failed", "stopped")
FINISHED = ("done", "failed", "stopped")
DIED_MESSAGE = "stopped unexpectedly (its process is gone); resume it from its last checkpoint or start again"
DAMAGED = "damaged"


# ---- small JSON helpers (core.jsonfile: atomic, locked, damage-tolerant) -----------------
def write_json(path: Path, data: Any) -> None:
    """Write atomically and under the file's lock, so a reader never sees half a file."""
    write_json_atomic(path, data)


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is missing or damaged (logged)."""
    return _read_json(path, None)


def read_json_required(path: Path) -> dict:
    """The JSON object in a run file that must be there; RunError in plain words when it is
    missing or damaged (the evaluation and the export cannot go on without it)."""
    path = Path(path)
    data, problem = read_json_checked(path)
    if data is None and problem is None:
        raise RunError(Msg("err.run.file_missing", name=path.name, run=path.parent.name))
    if problem or not isinstance(data, dict):
        raise RunError(Msg("err.run.file_damaged", name=path.name, run=path.parent.name, problem=problem or Msg("json.not_object")))
    return data


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
    raise RunError(Msg("err.run.cannot_create", folder=str(runs)))


def read_meta(run_dir: Path) -> dict:
    return read_json(Path(run_dir) / META_FILE) or {}


def update_meta(run_dir: Path, **changes: Any) -> dict:
    """Merge `changes` into meta.json under its lock (used by training and by the trust features)."""
    return update_json(Path(run_dir) / META_FILE, lambda meta: meta.update(changes))


@dataclass(frozen=True)
class RunMeta:
    """meta.json, typed: what training recorded about the model and its preprocessing."""
    class_names: tuple = ()
    backbone: str = ""
    strategy: str = ""
    image_size: int = 224
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    crop_pct: float = 1.0  # no crop when absent, as training falls back
    interpolation: str = "bicubic"
    best_epoch: int | None = None
    temperature: float | None = None
    threshold: float | None = None
    positive_class: str | None = None
    target_sensitivity: float | None = None
    extra: dict = field(default_factory=dict)  # every other key, as written

    @classmethod
    def from_dict(cls, meta: dict) -> "RunMeta":
        names = {f.name for f in fields(cls)} - {"extra"}
        known = names - {"image_size", "crop_pct"}  # these two have one reader each, below
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in meta.items() if k in known and v is not None}
        return cls(**values, image_size=image_size_of(meta), crop_pct=crop_pct_of(meta),
                   extra={k: v for k, v in meta.items() if k not in names})


def read_run_meta(run_dir: Path) -> RunMeta:
    return RunMeta.from_dict(read_meta(run_dir))


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


# ---- status.json: the one writer and reader ------------------------------------------------
def write_status(run_dir: str | os.PathLike, state: str, message: str = "", **extra: Any) -> dict:
    """Merge into status.json under its lock; earlier keys (submitted, started) are kept."""
    if state not in STATUSES:
        raise ValueError(f"unknown run state {state!r}")  # a bug in the caller, not user input
    fields = _with_i18n({"state": state, "message": message, "updated": now_iso(), **extra})
    fields.setdefault("pid", os.getpid())

    def change(data: dict) -> None:
        data.pop("status", None)
        if state != "failed":
            data.pop("reason", None)
        data.update(fields)
        if state == "running":
            data.setdefault("started", now_iso())
            data.setdefault("host", socket.gethostname())
            data["heartbeat"] = time.time()

    return update_json(Path(run_dir) / STATUS_FILE, change)


def _with_i18n(fields: dict) -> dict:
    """A message given as a core.i18n.Msg is also kept as its key and parameters
    ("message_i18n"), so each page shows it in its own language; a plain message clears it."""
    from core.i18n import Msg

    if "message" in fields:
        message = fields["message"]
        fields = {**fields, "message": str(message),
                  "message_i18n": message.to_json() if isinstance(message, Msg) else None}
    return fields


def update_status(run_dir: str | os.PathLike, **fields: Any) -> dict:
    """Merge raw fields (no state check) into status.json, stamping "updated"."""
    fields = _with_i18n(fields)
    def change(data: dict) -> None:
        data.update(fields)
        data["updated"] = now_iso()

    return update_json(Path(run_dir) / STATUS_FILE, change)


def update_json_fields(run_dir: str | os.PathLike, fields: dict, drop: tuple[str, ...] = ()) -> dict:
    """Set `fields` and remove the keys in `drop`, under the lock."""
    def change(data: dict) -> None:
        for key in drop:
            data.pop(key, None)
        data.update(fields)

    return update_json(Path(run_dir) / STATUS_FILE, change)


def read_raw(run_dir: str | os.PathLike) -> tuple[dict, str | None]:
    """(status.json as a dict, None) or ({}, why it is damaged)."""
    data, problem = read_json_checked(Path(run_dir) / STATUS_FILE)
    if problem:
        return {}, json_problem(STATUS_FILE, problem)
    if data is not None and not isinstance(data, dict):
        return {}, json_problem(STATUS_FILE)
    return data or {}, None


def read_status(run_dir: str | os.PathLike) -> dict:
    """status.json with "state" guaranteed ("status" is the same value, for readers using either).

    A damaged status.json reads as failed with `damaged` set to what is wrong (never raises)."""
    data, problem = read_raw(run_dir)
    if problem:
        log.warning("run %s: %s", Path(run_dir).name, problem)
        data = {"state": "failed", "reason": DAMAGED, "damaged": problem,
                "message": Msg("hardening.run_damaged_message", problem=problem)}
    elif not data:
        data = {"message": Msg("hardening.status_missing")}
    data["state"] = data.get("state") or data.get("status") or "failed"
    data["status"] = data["state"]
    return data


def check_alive(run_dir: str | os.PathLike, status: dict | None = None) -> dict:
    """The status, with a dead "running" run recorded as failed (reason "died")."""
    status = status if status is not None else read_status(run_dir)
    if not is_dead(status):
        return status
    pid = status.get("pid")

    def change(data: dict) -> None:
        # Re-checked under the lock: the trainer may have finished between our two looks.
        if data.get("state") == "running" and data.get("pid") == pid and is_dead(data):
            log.warning("run %s: process %s is gone; marking it stopped unexpectedly", Path(run_dir).name, pid)
            data.update(state="failed", reason="died", message=DIED_MESSAGE, updated=now_iso())

    data = update_json(Path(run_dir) / STATUS_FILE, change)
    data["status"] = data.get("state")
    return data


def died(status: dict) -> bool:
    return status.get("state") == "failed" and status.get("reason") == "died"


def state_word(state: Any):
    """A run state as the catalogue says it (a Msg: "waiting", "menunggu"); an unknown one as is."""
    return Msg(f"status.{state}") if state in STATUSES else str(state)


def state_label(state: Any, text: str | None = None):
    """What lists and warnings call a run (a Msg): `text` is status_text's word, so a run whose
    worker died reads "stopped unexpectedly" and a damaged one "damaged"; else its state's word."""
    if text == "stopped unexpectedly":
        return Msg("hardening.status_died")
    if text == DAMAGED:
        return Msg("hardening.status_damaged")
    return state_word(state)


def status_label(status: dict):
    """state_label of a status.json."""
    return state_label(status.get("state"), status_text(status))


def status_text(status: dict) -> str:
    """One word or two for lists: the state, or "stopped unexpectedly" / "damaged"."""
    if died(status):
        return "stopped unexpectedly"
    if status.get("reason") == DAMAGED:
        return DAMAGED
    return str(status.get("state"))


class Heartbeat:
    """`with Heartbeat(run_dir): train...` refreshes status.json's heartbeat every HEARTBEAT_S."""

    def __init__(self, run_dir: str | os.PathLike, interval: float = HEARTBEAT_S):
        self.path = Path(run_dir) / STATUS_FILE
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="latih-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        pid = os.getpid()
        while not self._stop.wait(self.interval):
            try:
                def change(data: dict) -> None:
                    if data.get("state") == "running" and data.get("pid") == pid:
                        data["heartbeat"] = time.time()
                update_json(self.path, change)
            except Exception as exc:  # a missed beat is not worth failing a training for
                log.warning("heartbeat of %s not written: %s", self.path.parent.name, exc)


# ---- one run ------------------------------------------------------------------------------
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
            raise RunError(Msg("err.run.no_model", run=self.run_id, state=str(self.status.get('state'))))
        model = create_backbone(self.meta.get("backbone", self.config.backbone), len(self.class_names),
                                weights="scratch")
        state = load_weights(weights, self.run_id)
        try:
            model.load_state_dict(state)
        except (RuntimeError, OSError) as exc:
            raise RunError(Msg("err.run.model_damaged", run=self.run_id, detail=str(exc).splitlines()[0])) from exc
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
        what = Msg("err.run.weights_of_run", run=run_id) if run_id else Msg("err.run.weights_file", name=Path(path).name)
        raise RunError(Msg("err.run.weights_damaged", what=what, detail=str(exc).splitlines()[0][:120])) from None


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
    raise RunError(Msg("err.run.not_found", text=text[:200]))


def load_run(run_dir: str | os.PathLike, workspace: str | os.PathLike | None = None) -> Run:
    run_dir = resolve_run_dir(run_dir, workspace)
    data, problem = read_json_checked(run_dir / CONFIG_FILE)
    if problem or not isinstance(data, dict):
        raise RunError(Msg("err.run.config_damaged", run=run_dir.name, problem=problem or Msg("json.not_object")))
    try:
        config = TrainConfig.from_dict(data)
    except (ConfigError, TypeError) as exc:
        raise RunError(Msg("err.run.config_unreadable", run=run_dir.name, detail=exc)) from exc
    return Run(run_dir=run_dir, config=config, meta=read_meta(run_dir), metrics=read_metrics(run_dir),
               evaluation=read_json(run_dir / EVALUATION_FILE), status=check_alive(run_dir))

__all__ = ["Run", "RunMeta", "new_run_dir", "load_run", "read_metrics", "write_status", "read_status", "read_raw",
           "read_meta", "read_run_meta", "update_meta", "resolve_run_dir", "write_json", "read_json", "load_weights",
           "check_alive", "status_text", "died", "update_status", "update_json_fields", "Heartbeat", "STATUSES",
           "FINISHED", "DIED_MESSAGE", "CONFIG_FILE", "META_FILE", "STATUS_FILE", "METRICS_FILE", "MODEL_FILE",
           "EVALUATION_FILE", "SPLITS_FILE", "LOG_FILE", "STOP_FILE", "RESUME_FILE", "LAST_MODEL_FILE",
           "last_model_name", "last_model_files", "state_word"]
