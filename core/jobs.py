"""Background training that outlives the browser tab: the queue's public side.

The app (or anything else) calls `submit(config)`: the run folder is created at once with
`config.json` and `status.json` = queued, a ticket is put in `<ws>/queue/` (core/job_queue.py),
and a detached worker process is started (core/worker.py, `python -m core.worker worker
--workspace WS`). `job_status`, `stop`, `wait`, `active_job` and `queue` say where a run
stands. Joining the queue once per project, resuming, and `latih train` in the foreground
are core/queue_entry.py.

Files (besides the queue folder's, see core/job_queue.py):
    <ws>/logs/worker.log                 worker stdout/stderr
    <run>/status.json                    {"state", "pid", "message", "submitted", "started", "updated", ...}
    <run>/STOP                           ask the training to stop (a queued run is just cancelled)
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core import runs
from core.config import TrainConfig
from core.errors import RunError
from core.job_queue import (PID_NAME, TICKET_SUFFIX, current_run, queue_dir, ticket_data, ticket_for, ticket_run, tickets,
                            workspace_of)
from core.jsonfile import write_json_atomic
from core.liveness import now_iso, pid_alive
from core.runs import DIED_MESSAGE, FINISHED, STATUSES
from core.workspace import subdir, workspace_dir
from core.i18n import Msg

log = logging.getLogger(__name__)

STATES = STATUSES

# Popen objects of workers started by this process, reaped by a thread so that a finished
# worker does not linger as a zombie (which would look alive to a pid check).
_children: list[subprocess.Popen] = []


# ---------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------
def _now() -> str:
    return now_iso()


def _ws(workspace: str | os.PathLike | None) -> Path:
    return workspace_dir(workspace)


def read_status(run_dir: str | os.PathLike) -> dict:
    """The raw contents of `<run>/status.json` ({} when missing or damaged)."""
    return runs.read_raw(run_dir)[0]


def _update_status(run_dir: Path, **fields: Any) -> dict:
    return runs.update_status(run_dir, **fields)




# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------
def enqueue(config: TrainConfig | None, workspace: str | os.PathLike | None = None, *, run_dir: Path | None = None,
            group: str | None = None, owner_pid: int | None = None, resume: bool = False) -> Path:
    """Put a run in the queue (a new run folder for `config`, or `run_dir` again to resume it).

    `group` names who the run belongs to (the app's project id) for `submit_once`;
    `owner_pid` marks a run that a foreground `latih train` will train itself when its turn
    comes (the background worker leaves it to that process)."""
    ws = _ws(workspace)
    if run_dir is None:
        run_dir = runs.new_run_dir(config, ws)  # config.json first, status queued
    run_dir = Path(run_dir).resolve()
    now = _now()
    fields = {"state": "queued", "pid": None, "message": "waiting for its turn", "submitted": now, "updated": now,
              "group": group, "resume": resume}
    runs.update_json_fields(run_dir, fields, drop=("reason", "damaged", "heartbeat"))
    (run_dir / runs.STOP_FILE).unlink(missing_ok=True)
    ticket = queue_dir(ws) / f"{time.time_ns():020d}-{run_dir.name}{TICKET_SUFFIX}"
    write_json_atomic(ticket, {"run_dir": str(run_dir), "submitted": now, "owner_pid": owner_pid,
                               "resume": resume})
    log.info("queued %s%s", run_dir, " (resume)" if resume else "")
    return run_dir


def submit(config: TrainConfig, workspace: str | os.PathLike | None = None, group: str | None = None) -> Path:
    """Queue a training run and make sure a background worker is running; returns the run folder.

    The folder exists when this returns, with config.json and status.json = queued.
    """
    run_dir = enqueue(config, workspace, group=group)
    start_worker(workspace)
    return run_dir


def start_worker(workspace: str | os.PathLike | None = None) -> subprocess.Popen:
    """Start a detached worker for `workspace` (it exits at once if another one holds the lock)."""
    ws = _ws(workspace)
    log_path = subdir("logs", ws) / "worker.log"
    env = dict(os.environ)
    # The worker imports `core` from the same checkout as this process.
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core.worker", "worker", "--workspace", str(ws)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=root, env=env, start_new_session=True, close_fds=True,
        )
    _children.append(proc)
    threading.Thread(target=proc.wait, name=f"latih-worker-reaper-{proc.pid}", daemon=True).start()
    return proc


def worker_pid(workspace: str | os.PathLike | None = None) -> int | None:
    """Pid of the live worker of `workspace`, or None."""
    path = _ws(workspace) / "queue" / PID_NAME
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def ensure_worker(workspace: str | os.PathLike | None = None, grace_s: float = 10.0) -> bool:
    """Start a worker when runs wait in the queue and none is alive (e.g. after a reboot).

    Tickets younger than `grace_s` are left alone: the worker that submit() started may
    still be starting up."""
    ws = _ws(workspace)
    waiting = tickets(ws)
    if not waiting or worker_pid(ws) is not None:
        return False
    head = ticket_data(waiting[0]) or {}
    if head.get("owner_pid") is not None and pid_alive(head["owner_pid"]):
        return False  # a foreground `latih train` trains it when its turn comes
    try:
        age = time.time() - int(waiting[0].name.split("-", 1)[0]) / 1e9
    except ValueError:
        age = grace_s
    if age >= grace_s:
        log.info("runs are waiting and no worker is alive; starting one")
        start_worker(ws)
        return True
    return False


def queue(workspace: str | os.PathLike | None = None) -> list[Path]:
    """Runs waiting to train, in the order they will train (the running one is not included)."""
    ws = _ws(workspace)
    waiting = []
    for ticket in tickets(ws):
        run = ticket_run(ticket)
        if run is not None:
            waiting.append(run)
    return waiting


def active_job(workspace: str | os.PathLike | None = None) -> Path | None:
    """The run training now; if none, the next queued run; None when nothing is going on.

    Pages call this after a reload to reattach to the training in progress.
    """
    ws = _ws(workspace)
    current = current_run(ws)
    if current is not None and job_status(current)["state"] == "running":
        return current
    waiting = queue(ws)
    if waiting:
        ensure_worker(ws)
        return waiting[0]
    return None


def job_status(run_dir: str | os.PathLike) -> dict:
    """Where a run stands: a dict with at least

    state     queued | running | done | failed | stopped
    position  queued: how many runs are ahead of it (the training one included); 0 when
              running; None when finished
    pid       the training process (None while queued)
    message   one plain line
    submitted, started, updated   ISO 8601 times (None when unknown)
    run_dir   the folder (str)

    plus whatever else the trainer put in status.json (e.g. epoch). A run marked running
    whose process is gone is reported, and recorded, as failed.
    """
    run = Path(run_dir).resolve()
    if not run.is_dir():
        raise RunError(Msg("err.run.folder_missing", run=str(run)))
    ws = workspace_of(run)
    raw = read_status(run)
    state = raw.get("state") or ("done" if (run / runs.MODEL_FILE).exists() else "queued")
    if state not in STATES:
        log.warning("unknown state %r in %s", state, run / runs.STATUS_FILE)
    out: dict[str, Any] = {
        "pid": None, "message": "", "submitted": None, "started": None, "updated": None,
        **raw, "state": state, "run_dir": str(run), "position": None,
    }

    if state == "running":
        checked = runs.check_alive(run, raw)
        if checked.get("state") != "running":
            out.update(checked)
            out["state"] = checked.get("state", "failed")
        else:
            out["position"] = 0
    elif state == "queued":
        waiting = queue(ws)
        if run in waiting:
            current = current_run(ws)
            busy = current is not None and current != run and read_status(current).get("state") == "running"
            # The worker marks its run running a moment before it removes that run's ticket:
            # the run being trained is counted once, as "busy", not also as a ticket ahead.
            ahead = [r for r in waiting[:waiting.index(run)] if r != current]
            out["position"] = len(ahead) + (1 if busy else 0)
            ensure_worker(ws)
        elif current_run(ws) == run:
            out["position"] = 0  # claimed by the worker, about to start
        else:
            # Queued without a ticket and not being trained: lost (e.g. the worker died
            # while claiming it).
            raw2 = read_status(run)
            if raw2.get("state") == "queued" and worker_pid(ws) is None:
                raw2 = _update_status(run, state="failed", reason="died",
                                      message="the run left the queue without training; resume it or start it again")
                out.update(raw2)
                out["state"] = "failed"
    return out


def stop(run_dir: str | os.PathLike) -> dict:
    """Ask a run to stop. Running: it stops after the current batch, keeping its best
    checkpoint (state becomes stopped). Queued: it is taken out of the queue (stopped).
    Finished: nothing happens. Returns the new job_status."""
    run = Path(run_dir).resolve()
    if not run.is_dir():
        raise RunError(Msg("err.run.folder_missing", run=str(run)))
    state = read_status(run).get("state")
    if state in FINISHED:
        return job_status(run)
    (run / runs.STOP_FILE).touch()
    ticket = ticket_for(run, workspace_of(run))
    if ticket is not None:
        try:
            ticket.unlink()
        except FileNotFoundError:
            ticket = None  # the worker claimed it just now; it will see STOP
    if ticket is not None:
        _update_status(run, state="stopped", message="cancelled before it started")
        log.info("cancelled queued run %s", run)
    else:
        log.info("asked run %s to stop", run)
    return job_status(run)


def wait(run_dir: str | os.PathLike, timeout: float | None = None, poll: float = 0.5) -> dict:
    """Block until the run is finished (or `timeout` seconds pass); returns job_status."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = job_status(run_dir)
        if status["state"] in FINISHED:
            return status
        if deadline is not None and time.monotonic() > deadline:
            return status
        time.sleep(poll)



__all__ = ["submit", "enqueue", "job_status", "stop", "active_job", "queue", "wait", "start_worker",
           "ensure_worker", "worker_pid", "read_status", "STATES", "FINISHED", "DIED_MESSAGE"]
