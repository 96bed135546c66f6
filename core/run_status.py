"""Where a run stands: the one home of `<run>/status.json`, its heartbeat and liveness.

status.json = {"state": queued|running|done|failed|stopped, "pid", "message", "updated",
"submitted", "started", "heartbeat" (epoch seconds), "epoch", ...}. The training process
refreshes "heartbeat" every HEARTBEAT_S seconds from a thread. A run whose state is
"running" but whose process is gone (pid not alive on this machine, or no heartbeat for
HEARTBEAT_STALE_S) is dead: `check_alive` records it as failed with `reason: "died"` and
the message DIED_MESSAGE, so the CLI, the Runs page and the Train page all say
"stopped unexpectedly" within a poll, and it can be resumed from its last checkpoint.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from core.jsonfile import read_json_checked, update_json

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "done", "failed", "stopped")
FINISHED = ("done", "failed", "stopped")
STATUS_FILE = "status.json"
HEARTBEAT_S = 2.0
HEARTBEAT_STALE_S = 45.0  # generous: a 2-core machine under load can starve a thread for a while
DIED_MESSAGE = "stopped unexpectedly (its process is gone); resume it from its last checkpoint or start again"
DAMAGED = "damaged"


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def to_epoch(value: Any) -> float | None:
    """A time written as epoch seconds or ISO 8601 -> epoch seconds (None if unreadable)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def pid_alive(pid: Any, not_before: float | None = None) -> bool:
    """True if process `pid` exists, is not a zombie and (when known) started before `not_before`."""
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if not_before is not None and proc.create_time() > not_before + 2.0:
            return False  # the pid was reused by a newer process
        return True
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError, TypeError):
        return False


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
        return {}, f"status.json {problem}"
    if data is not None and not isinstance(data, dict):
        return {}, "status.json is not a JSON object"
    return data or {}, None


def read_status(run_dir: str | os.PathLike) -> dict:
    """status.json with "state" guaranteed ("status" is the same value, for readers using either).

    A damaged status.json reads as failed with `damaged` set to what is wrong (never raises)."""
    data, problem = read_raw(run_dir)
    if problem:
        log.warning("run %s: %s", Path(run_dir).name, problem)
        data = {"state": "failed", "reason": DAMAGED, "damaged": problem,
                "message": f"{problem}: this run's files are damaged; delete the run or train again"}
    elif not data:
        data = {"message": "status.json missing"}
    data["state"] = data.get("state") or data.get("status") or "failed"
    data["status"] = data["state"]
    return data


def is_dead(status: dict) -> bool:
    """A "running" status whose process is gone (pid check on this host, else the heartbeat)."""
    if status.get("state") != "running":
        return False
    pid = status.get("pid")
    same_host = status.get("host") in (None, socket.gethostname())
    if same_host and pid is not None and not pid_alive(pid, to_epoch(status.get("started"))):
        return True
    beat = to_epoch(status.get("heartbeat"))
    return beat is not None and time.time() - beat > HEARTBEAT_STALE_S


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


__all__ = ["STATUSES", "FINISHED", "DIED_MESSAGE", "HEARTBEAT_S", "HEARTBEAT_STALE_S", "write_status",
           "update_status", "update_json_fields", "read_status", "read_raw", "check_alive", "is_dead", "died", "status_text",
           "pid_alive", "to_epoch", "now_iso", "Heartbeat"]
