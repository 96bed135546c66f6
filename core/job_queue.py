"""The queue folder of a workspace: tickets in submission order, the run being trained now,
and the one lock that lets a single worker train at a time.

Files:
    <ws>/queue/<time_ns>-<run_id>.json   a waiting ticket {"run_dir": ...}
    <ws>/queue/worker.lock               flock held by the one worker that trains
    <ws>/queue/worker.pid                that worker's pid
    <ws>/queue/current                   run folder being trained now
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from pathlib import Path

from core.jsonfile import read_json
from core.run_status import now_iso, pid_alive, read_raw, update_status
from core.workspace import subdir

log = logging.getLogger(__name__)

LOCK_NAME = "worker.lock"
PID_NAME = "worker.pid"
CURRENT_NAME = "current"
TICKET_SUFFIX = ".json"


def queue_dir(workspace: str | os.PathLike | None) -> Path:
    return subdir("queue", workspace)



def tickets(ws: Path) -> list[Path]:
    q = ws / "queue"
    if not q.is_dir():
        return []
    return sorted(p for p in q.iterdir() if p.suffix == TICKET_SUFFIX and p.name[0].isdigit())


def ticket_data(ticket: Path) -> dict | None:
    data = read_json(ticket)
    if data is None or not isinstance(data.get("run_dir"), str):
        if ticket.exists():
            log.warning("ignoring an unreadable queue ticket %s", ticket)
        return None
    return data


def ticket_run(ticket: Path) -> Path | None:
    data = ticket_data(ticket)
    return Path(data["run_dir"]) if data else None


def ticket_for(run_dir: Path, ws: Path) -> Path | None:
    for ticket in tickets(ws):
        if ticket.name.endswith(f"-{run_dir.name}{TICKET_SUFFIX}") and ticket_run(ticket) == run_dir:
            return ticket
    return None


def workspace_of(run_dir: Path) -> Path:
    """Runs live in <ws>/runs/<id>/."""
    return run_dir.resolve().parent.parent



def current_run(ws: Path) -> Path | None:
    try:
        text = (ws / "queue" / CURRENT_NAME).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return Path(text) if text else None



def try_lock(path: Path):
    import fcntl

    fh = open(path, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        fh.close()
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fh


def unlock(fh) -> None:
    import fcntl

    with contextlib.suppress(OSError):
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    fh.close()


FOREGROUND = Path("<foreground>")  # claim_next: the head of the queue belongs to a `latih train` process


def claim_next(ws: Path, owner: int | None = None) -> Path | None:
    """Take the oldest ticket off the queue; returns its run folder (None when empty).

    A ticket owned by a live foreground `latih train` (not `owner`) is left for it:
    FOREGROUND is returned and the worker steps aside. One whose owner died is failed."""
    for ticket in tickets(ws):
        data = ticket_data(ticket)
        if data is None:
            with contextlib.suppress(FileNotFoundError):
                if ticket.exists() and ticket.stat().st_size > 0:
                    ticket.rename(ticket.with_suffix(".bad"))
            continue
        run = Path(data["run_dir"])
        holder = data.get("owner_pid")
        if holder is not None and holder != owner:
            if pid_alive(holder):
                return FOREGROUND
            with contextlib.suppress(FileNotFoundError):
                ticket.unlink()
            update_status(run, state="failed", reason="died", pid=None,
                           message="the `latih train` that queued this run is gone; resume it or start again")
            continue
        (ws / "queue" / CURRENT_NAME).write_text(str(run), encoding="utf-8")
        if read_raw(run)[0].get("state") == "queued":
            from core.i18n import Msg

            update_status(run, state="running", pid=os.getpid(), started=now_iso(), heartbeat=time.time(),
                           message=Msg("phase.starting"))
        try:
            ticket.unlink()
        except FileNotFoundError:
            # stop() cancelled it between our reads: leave it cancelled.
            (ws / "queue" / CURRENT_NAME).write_text("", encoding="utf-8")
            update_status(run, state="stopped", pid=None, message="cancelled before it started")
            continue
        return run
    return None

