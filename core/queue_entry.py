"""Entering the training queue: once per project, again to resume, or from the command line.

* `submit_once(config, group)`: Start is idempotent per project (the app passes its project
  id): a queued or running run of that project is joined instead of starting a second one.
* `resume(run_dir)`: a failed or stopped run goes back in the queue and continues from the
  state saved at the end of its last epoch (core/resume.py).
* `train_in_queue(...)`: `latih train` / `latih resume` put their run in the same queue as the
  app, say when others are ahead, and train it in their own process when its turn comes
  (the background worker steps aside for it), so Ctrl-C and the progress bar work as before.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from core import jobs, runs
from core.config import TrainConfig
from core.errors import Cancelled, RunError
from core.job_queue import (CURRENT_NAME, LOCK_NAME, PID_NAME, current_run, queue_dir, ticket_for, tickets, try_lock,
                            unlock, workspace_of)
from core.jobs import enqueue, ensure_worker, job_status, queue
from core.runs import update_status
from core.workspace import workspace_dir
from core.jsonfile import lock_for
from core.i18n import Msg

log = logging.getLogger(__name__)


def active_run_of(group: str, workspace: str | os.PathLike | None = None) -> Path | None:
    """The queued or running run of `group` (a project), if any."""
    ws = workspace_dir(workspace)
    candidates = list(queue(ws))
    current = current_run(ws)
    if current is not None:
        candidates.insert(0, current)
    for run in candidates:
        if not run.is_dir():
            continue
        status = job_status(run)
        if status.get("group") == group and status["state"] in ("queued", "running"):
            return run
    return None


def submit_once(config: TrainConfig, group: str, workspace: str | os.PathLike | None = None,
                force: bool = False) -> tuple[Path, bool]:
    """Start a training for `group` unless one is already queued or running: (run folder, joined).

    Idempotent per project: two tabs pressing Start give one run; `force` queues another."""
    ws = workspace_dir(workspace)
    with lock_for(queue_dir(ws) / "submit"):
        if not force:
            existing = active_run_of(group, ws)
            if existing is not None:
                log.info("project %s already has run %s; joining it", group, existing.name)
                return existing, True
        run_dir = Path(jobs.submit(config, ws))
        runs.update_json_fields(run_dir, {"group": group})
    return run_dir, False


def resume(run_dir: str | os.PathLike) -> Path:
    """Queue a failed or stopped run again; it continues from its last checkpoint."""
    from core.resume import can_resume

    run = Path(run_dir).resolve()
    ok, why = can_resume(run)
    if not ok:
        raise RunError(why)
    ws = workspace_of(run)
    enqueue(None, ws, run_dir=run, resume=True)
    jobs.start_worker(ws)
    return run


def train_in_queue(config: TrainConfig | None, workspace: str | os.PathLike | None = None, callbacks=(),
                   on_wait=None, resume_run: Path | None = None, poll: float = 0.5):
    """Queue the run like the app does, wait for its turn, then train it here (Ctrl-C works
    as usual). `on_wait(position)` is called once when other runs are ahead. Returns the
    TrainResult."""
    from core.errors import DataError

    ws = workspace_dir(workspace)
    if config is not None and not Path(config.data_path).expanduser().exists():
        raise DataError(Msg("err.path_missing", path=str(config.data_path)))
    if resume_run is not None:
        from core.resume import can_resume

        ok, why = can_resume(Path(resume_run))
        if not ok:
            raise RunError(why)
        config = TrainConfig.from_json(Path(resume_run) / runs.CONFIG_FILE)
    run = enqueue(config, ws, run_dir=resume_run, owner_pid=os.getpid(), resume=resume_run is not None)
    qdir = queue_dir(ws)
    told, lock = False, None
    try:
        while True:
            waiting = tickets(ws)
            mine = ticket_for(run, ws)
            if mine is None:
                raise Cancelled("cancelled while waiting in the queue")
            if waiting and waiting[0] == mine:
                lock = try_lock(qdir / LOCK_NAME)
                if lock is not None:
                    break
            else:
                ensure_worker(ws, grace_s=0)
            if not told and on_wait is not None:
                on_wait(waiting.index(mine) + (1 if current_run(ws) else 0))
                told = True
            time.sleep(poll)
    except BaseException:
        ticket = ticket_for(run, ws)
        if ticket is not None:
            ticket.unlink(missing_ok=True)
            update_status(run, state="stopped", pid=None, message="cancelled before it started")
        raise
    try:
        (qdir / PID_NAME).write_text(str(os.getpid()), encoding="utf-8")
        (qdir / CURRENT_NAME).write_text(str(run), encoding="utf-8")
        ticket_for(run, ws).unlink(missing_ok=True)
        from core.train import train

        return train(config, workspace=str(ws), callbacks=callbacks, run_dir=run, resume=resume_run is not None)
    finally:
        (qdir / CURRENT_NAME).write_text("", encoding="utf-8")
        with contextlib.suppress(FileNotFoundError):
            (qdir / PID_NAME).unlink()
        unlock(lock)
        ensure_worker(ws, grace_s=0)  # the queue goes on without anyone watching


__all__ = ["submit_once", "active_run_of", "resume", "train_in_queue"]
