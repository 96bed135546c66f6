"""Background training that outlives the browser tab.

The app (or anything else) calls `submit(config)`: the run folder is created at once with
`config.json` and `status.json` = queued, a ticket is put in `<ws>/queue/`, and a detached
worker process is started (`python -m core.jobs worker --workspace WS`, its own session, so a
closed tab, a page reload or even a stopped Streamlit server do not end it; its output goes
to `<ws>/logs/worker.log`).

Only one worker trains at a time per workspace: it holds an exclusive `fcntl.flock` on
`<ws>/queue/worker.lock`; a second worker finds the lock taken and exits. The worker takes the
tickets in submission order, trains each with `core.train.train(config, workspace,
run_dir=run_dir)` (which writes `status.json` running/done/failed/stopped and
`metrics.jsonl`, and stops between batches when `<run>/STOP` exists) and exits when the queue
is empty.

Files:
    <ws>/queue/<time_ns>-<run_id>.json   a waiting ticket {"run_dir": ...}
    <ws>/queue/worker.lock               flock held by the one worker that trains
    <ws>/queue/worker.pid                that worker's pid
    <ws>/queue/current                   run folder being trained now
    <ws>/logs/worker.log                 worker stdout/stderr
    <run>/status.json                    {"state", "pid", "message", "submitted", "started", "updated", ...}
    <run>/STOP                           ask the training to stop (a queued run is just cancelled)
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import errno
import logging
import os
import re
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from core import run_status
from core.config import TrainConfig
from core.errors import Cancelled, LatihError, RunError
from core.jsonfile import read_json, write_json_atomic
from core.run_status import DIED_MESSAGE, FINISHED, STATUSES, now_iso, pid_alive, to_epoch  # noqa: F401 (re-exported)
from core.workspace import subdir, workspace_dir

log = logging.getLogger(__name__)

STATES = STATUSES
LOCK_NAME = "worker.lock"
PID_NAME = "worker.pid"
CURRENT_NAME = "current"
TICKET_SUFFIX = ".json"

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


def _queue_dir(workspace: str | os.PathLike | None) -> Path:
    return subdir("queue", workspace)


def _atomic_write_json(path: Path, data: dict) -> None:
    write_json_atomic(path, data)


def read_status(run_dir: str | os.PathLike) -> dict:
    """The raw contents of `<run>/status.json` ({} when missing or damaged)."""
    return run_status.read_raw(run_dir)[0]


def _update_status(run_dir: Path, **fields: Any) -> dict:
    return run_status.update_status(run_dir, **fields)


_pid_alive = pid_alive


# ---------------------------------------------------------------------------------------
# run folders and tickets
# ---------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:40] or "run"


def _new_run_dir(config: TrainConfig, ws: Path) -> Path:
    """`core.runs.new_run_dir` when it exists (and can target `ws`), else a folder of our own."""
    try:
        from core import runs  # written by another engineer; may not exist yet
    except ImportError:
        runs = None
    if runs is not None and hasattr(runs, "new_run_dir"):
        import inspect

        params = inspect.signature(runs.new_run_dir).parameters
        if "workspace" in params:
            return Path(runs.new_run_dir(config, workspace=ws))
        if ws == workspace_dir(None, create=False):
            return Path(runs.new_run_dir(config))
        log.info("core.runs.new_run_dir takes no workspace; naming the run folder here")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{_slug(config.run_name or config.backbone)}"
    root = subdir("runs", ws)
    for i in range(1000):
        path = root / (base if i == 0 else f"{base}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RunError(f"could not create a new run folder in {root}; remove old runs and try again")


def _tickets(ws: Path) -> list[Path]:
    q = ws / "queue"
    if not q.is_dir():
        return []
    return sorted(p for p in q.iterdir() if p.suffix == TICKET_SUFFIX and p.name[0].isdigit())


def _ticket_data(ticket: Path) -> dict | None:
    data = read_json(ticket)
    if data is None or not isinstance(data.get("run_dir"), str):
        if ticket.exists():
            log.warning("ignoring an unreadable queue ticket %s", ticket)
        return None
    return data


def _ticket_run(ticket: Path) -> Path | None:
    data = _ticket_data(ticket)
    return Path(data["run_dir"]) if data else None


def _ticket_for(run_dir: Path, ws: Path) -> Path | None:
    for ticket in _tickets(ws):
        if ticket.name.endswith(f"-{run_dir.name}{TICKET_SUFFIX}") and _ticket_run(ticket) == run_dir:
            return ticket
    return None


def _workspace_of(run_dir: Path) -> Path:
    """Runs live in <ws>/runs/<id>/."""
    return run_dir.resolve().parent.parent


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
        run_dir = _new_run_dir(config, ws).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        config.to_json(run_dir / "config.json")
    run_dir = Path(run_dir).resolve()
    now = _now()
    fields = {"state": "queued", "pid": None, "message": "waiting for its turn", "submitted": now, "updated": now,
              "group": group, "resume": resume}
    run_status.update_json_fields(run_dir, fields, drop=("reason", "damaged", "heartbeat"))
    (run_dir / "STOP").unlink(missing_ok=True)
    ticket = _queue_dir(ws) / f"{time.time_ns():020d}-{run_dir.name}{TICKET_SUFFIX}"
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
            [sys.executable, "-m", "core.jobs", "worker", "--workspace", str(ws)],
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
    return pid if _pid_alive(pid) else None


def ensure_worker(workspace: str | os.PathLike | None = None, grace_s: float = 10.0) -> bool:
    """Start a worker when runs wait in the queue and none is alive (e.g. after a reboot).

    Tickets younger than `grace_s` are left alone: the worker that submit() started may
    still be starting up."""
    ws = _ws(workspace)
    tickets = _tickets(ws)
    if not tickets or worker_pid(ws) is not None:
        return False
    head = _ticket_data(tickets[0]) or {}
    if head.get("owner_pid") is not None and pid_alive(head["owner_pid"]):
        return False  # a foreground `latih train` trains it when its turn comes
    try:
        age = time.time() - int(tickets[0].name.split("-", 1)[0]) / 1e9
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
    runs = []
    for ticket in _tickets(ws):
        run = _ticket_run(ticket)
        if run is not None:
            runs.append(run)
    return runs


def _current_run(ws: Path) -> Path | None:
    try:
        text = (ws / "queue" / CURRENT_NAME).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return Path(text) if text else None


def active_job(workspace: str | os.PathLike | None = None) -> Path | None:
    """The run training now; if none, the next queued run; None when nothing is going on.

    Pages call this after a reload to reattach to the training in progress.
    """
    ws = _ws(workspace)
    current = _current_run(ws)
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
        raise RunError(f"run folder {run} does not exist; pick a run from the list")
    ws = _workspace_of(run)
    raw = read_status(run)
    state = raw.get("state") or ("done" if (run / "model.safetensors").exists() else "queued")
    if state not in STATES:
        log.warning("unknown state %r in %s/status.json", state, run)
    out: dict[str, Any] = {
        "pid": None, "message": "", "submitted": None, "started": None, "updated": None,
        **raw, "state": state, "run_dir": str(run), "position": None,
    }

    if state == "running":
        checked = run_status.check_alive(run, raw)
        if checked.get("state") != "running":
            out.update(checked)
            out["state"] = checked.get("state", "failed")
        else:
            out["position"] = 0
    elif state == "queued":
        tickets = queue(ws)
        if run in tickets:
            current = _current_run(ws)
            busy = current is not None and current != run and read_status(current).get("state") == "running"
            out["position"] = tickets.index(run) + (1 if busy else 0)
            ensure_worker(ws)
        elif _current_run(ws) == run:
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
        raise RunError(f"run folder {run} does not exist; pick a run from the list")
    state = read_status(run).get("state")
    if state in FINISHED:
        return job_status(run)
    (run / "STOP").touch()
    ticket = _ticket_for(run, _workspace_of(run))
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


# ---------------------------------------------------------------------------------------
# the worker process
# ---------------------------------------------------------------------------------------
def _try_lock(path: Path):
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


def _unlock(fh) -> None:
    import fcntl

    with contextlib.suppress(OSError):
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    fh.close()


FOREGROUND = Path("<foreground>")  # _claim_next: the head of the queue belongs to a `latih train` process


def _claim_next(ws: Path, owner: int | None = None) -> Path | None:
    """Take the oldest ticket off the queue; returns its run folder (None when empty).

    A ticket owned by a live foreground `latih train` (not `owner`) is left for it:
    FOREGROUND is returned and the worker steps aside. One whose owner died is failed."""
    for ticket in _tickets(ws):
        data = _ticket_data(ticket)
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
            _update_status(run, state="failed", reason="died", pid=None,
                           message="the `latih train` that queued this run is gone; resume it or start again")
            continue
        (ws / "queue" / CURRENT_NAME).write_text(str(run), encoding="utf-8")
        if read_status(run).get("state") == "queued":
            _update_status(run, state="running", pid=os.getpid(), started=_now(), heartbeat=time.time(),
                           message="starting")
        try:
            ticket.unlink()
        except FileNotFoundError:
            # stop() cancelled it between our reads: leave it cancelled.
            (ws / "queue" / CURRENT_NAME).write_text("", encoding="utf-8")
            _update_status(run, state="stopped", pid=None, message="cancelled before it started")
            continue
        return run
    return None


def _train_function():
    from core.train import train

    return train


def _run_one(run: Path, ws: Path) -> None:
    if (run / "STOP").exists():
        _update_status(run, state="stopped", pid=None, message="cancelled before it started")
        return
    if not (run / "config.json").exists():
        _update_status(run, state="failed", message="config.json is missing from the run folder")
        return
    log.info("training %s", run)
    try:
        config = TrainConfig.from_json(run / "config.json")
        train = _train_function()
        if read_status(run).get("resume"):
            train(config, workspace=str(ws), run_dir=run, resume=True)
        else:
            train(config, workspace=str(ws), run_dir=run)
    except Cancelled:
        if read_status(run).get("state") not in FINISHED:
            _update_status(run, state="stopped", message="stopped by the user; the best checkpoint is kept")
        log.info("run %s stopped", run)
        return
    except LatihError as exc:
        log.error("run %s failed: %s", run, exc)
        if read_status(run).get("state") not in ("failed", "stopped"):
            _update_status(run, state="failed", message=str(exc))
        return
    except BaseException as exc:  # a bug or a crash: keep the worker alive for the next run
        log.error("run %s failed:\n%s", run, traceback.format_exc())
        if read_status(run).get("state") not in ("failed", "stopped"):
            _update_status(run, state="failed",
                           message=f"training failed ({type(exc).__name__}: {exc}); see train.log or logs/worker.log")
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return
    state = read_status(run).get("state")
    if state not in FINISHED:
        if (run / "STOP").exists():
            _update_status(run, state="stopped", message="stopped by the user; the best checkpoint is kept")
        else:
            _update_status(run, state="done", message="finished")
    log.info("run %s ended: %s", run, read_status(run).get("state"))


def worker(workspace: str | os.PathLike | None = None) -> int:
    """Train queued runs one at a time until the queue is empty. Returns an exit code."""
    ws = _ws(workspace)
    qdir = _queue_dir(ws)
    lock = _try_lock(qdir / LOCK_NAME)
    if lock is None:
        log.info("another worker is training in %s; exiting", ws)
        return 0
    try:
        while True:
            (qdir / PID_NAME).write_text(str(os.getpid()), encoding="utf-8")
            run = _claim_next(ws)
            if run == FOREGROUND:
                log.info("the next run is trained by a `latih train` in the foreground; stepping aside")
                return 0
            if run is not None:
                try:
                    _run_one(run, ws)
                finally:
                    (qdir / CURRENT_NAME).write_text("", encoding="utf-8")
                continue
            # Queue empty: let go of the lock, then look once more. A run submitted while
            # we were letting go started a worker of its own, or is seen here.
            with contextlib.suppress(FileNotFoundError):
                (qdir / PID_NAME).unlink()
            _unlock(lock)
            lock = None
            if not _tickets(ws):
                return 0
            lock = _try_lock(qdir / LOCK_NAME)
            if lock is None:
                return 0  # the new worker has it
    finally:
        if lock is not None:
            with contextlib.suppress(FileNotFoundError):
                if (qdir / PID_NAME).read_text().strip() == str(os.getpid()):
                    (qdir / PID_NAME).unlink()
            _unlock(lock)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.jobs", description="Latih background training worker")
    sub = ap.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="train queued runs one at a time, then exit")
    w.add_argument("--workspace", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s [worker {os.getpid()}] %(levelname)s %(name)s: %(message)s")
    if args.command == "worker":
        return worker(args.workspace)
    return 2


__all__ = ["submit", "submit_once", "enqueue", "resume", "train_in_queue", "active_run_of", "job_status", "stop", "active_job", "queue", "wait", "start_worker",
           "ensure_worker", "worker_pid", "read_status", "worker", "STATES", "FINISHED", "DIED_MESSAGE"]

# Joining the queue (idempotent per project, resume, the foreground CLI) lives in
# core/queue_entry.py; imported when called, because `python -m core.jobs worker` runs this
# file as __main__ and a module-level import would load it a second time, half-initialised.
def submit_once(*args, **kwargs):
    from core.queue_entry import submit_once as entry

    return entry(*args, **kwargs)


def active_run_of(*args, **kwargs):
    from core.queue_entry import active_run_of as entry

    return entry(*args, **kwargs)


def resume(*args, **kwargs):
    from core.queue_entry import resume as entry

    return entry(*args, **kwargs)


def train_in_queue(*args, **kwargs):
    from core.queue_entry import train_in_queue as entry

    return entry(*args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
