"""Is a run's process still alive? Times in status files, pids, and the dead-run rule.

Pure functions over a status dict (no file names: core/runs.py reads and writes status.json).
A "running" status whose process is gone (pid not alive on this host, or no heartbeat for
HEARTBEAT_STALE_S) is dead.
"""
from __future__ import annotations

import socket
import time
from datetime import datetime
from typing import Any

import psutil

HEARTBEAT_S = 2.0
HEARTBEAT_STALE_S = 45.0  # generous: a 2-core machine under load can starve a thread for a while


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
