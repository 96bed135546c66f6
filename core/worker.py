"""The background worker process: trains the queued runs of a workspace one at a time.

Started detached by core.jobs.start_worker as `python -m core.worker worker --workspace WS`
(its own session, so a closed tab or a stopped Streamlit server do not end it; its output
goes to `<ws>/logs/worker.log`). It holds the queue lock (core/job_queue.py) while it trains,
takes the tickets in submission order, trains each with `core.train.train(config, workspace,
run_dir=run_dir)` and exits when the queue is empty.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from pathlib import Path

from core.config import TrainConfig
from core.errors import Cancelled, LatihError
from core.job_queue import CURRENT_NAME, FOREGROUND, LOCK_NAME, PID_NAME, claim_next, queue_dir, tickets, try_lock, unlock
from core.run_status import FINISHED, read_raw, update_status
from core.workspace import workspace_dir

log = logging.getLogger(__name__)


def read_status(run_dir) -> dict:
    return read_raw(run_dir)[0]


def _train_function():
    from core.train import train

    return train


def _run_one(run: Path, ws: Path) -> None:
    if (run / "STOP").exists():
        update_status(run, state="stopped", pid=None, message="cancelled before it started")
        return
    if not (run / "config.json").exists():
        update_status(run, state="failed", message="config.json is missing from the run folder")
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
            update_status(run, state="stopped", message="stopped by the user; the best checkpoint is kept")
        log.info("run %s stopped", run)
        return
    except LatihError as exc:
        log.error("run %s failed: %s", run, exc)
        if read_status(run).get("state") not in ("failed", "stopped"):
            update_status(run, state="failed", message=str(exc))
        return
    except BaseException as exc:  # a bug or a crash: keep the worker alive for the next run
        log.error("run %s failed:\n%s", run, traceback.format_exc())
        if read_status(run).get("state") not in ("failed", "stopped"):
            update_status(run, state="failed",
                           message=f"training failed ({type(exc).__name__}: {exc}); see train.log or logs/worker.log")
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return
    state = read_status(run).get("state")
    if state not in FINISHED:
        if (run / "STOP").exists():
            update_status(run, state="stopped", message="stopped by the user; the best checkpoint is kept")
        else:
            update_status(run, state="done", message="finished")
    log.info("run %s ended: %s", run, read_status(run).get("state"))


def worker(workspace: str | os.PathLike | None = None) -> int:
    """Train queued runs one at a time until the queue is empty. Returns an exit code."""
    ws = workspace_dir(workspace)
    qdir = queue_dir(ws)
    lock = try_lock(qdir / LOCK_NAME)
    if lock is None:
        log.info("another worker is training in %s; exiting", ws)
        return 0
    try:
        while True:
            (qdir / PID_NAME).write_text(str(os.getpid()), encoding="utf-8")
            run = claim_next(ws)
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
            unlock(lock)
            lock = None
            if not tickets(ws):
                return 0
            lock = try_lock(qdir / LOCK_NAME)
            if lock is None:
                return 0  # the new worker has it
    finally:
        if lock is not None:
            with contextlib.suppress(FileNotFoundError):
                if (qdir / PID_NAME).read_text().strip() == str(os.getpid()):
                    (qdir / PID_NAME).unlink()
            unlock(lock)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.worker", description="Latih background training worker")
    sub = ap.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="train queued runs one at a time, then exit")
    w.add_argument("--workspace", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s [worker {os.getpid()}] %(levelname)s %(name)s: %(message)s")
    if args.command == "worker":
        return worker(args.workspace)
    return 2



if __name__ == "__main__":
    raise SystemExit(main())
