"""A long task of the app in a process of its own: it outlives the page that started it (a
reload, a closed tab), and the page only polls the folder the task writes its status into.

    pid = launch(folder, "core.estimate", LOG_FILE)   # python -m core.estimate <folder>, output to job.log

Four jobs run this way and share their folder's status file, their "died" detection and their
failure messages from here: the estimate (core.estimate), the fine-tuned cross-validation
(core.fine_tune_cv), and the Data page's copy check (core.data.copy_check) and reading of a photo
source (core.data.scan_job):

    begin(folder, "core.data.scan_job", request)   # request.json, job.json "running", the process
    read_status(folder)                            # {"state": "none" | "running" | "done" | "failed", ...}
    report = Reporter(folder); report(task="read", done=64, total=50000, progress=0.6)
    finish(folder, pairs=12) / fail(folder, exc)   # in the worker
Training has its own worker and queue (core.jobs).
"""
from __future__ import annotations

import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from core.i18n import Msg
from core.jsonfile import read_json, write_json_atomic

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent  # the repository: `python -m core...` runs from here
REQUEST_FILE = "request.json"
STATUS_FILE = "job.json"  # state, progress, pid (not a run: core.runs names those files)
LOG_FILE = "job.log"
REPORT_EVERY_S = 0.5  # a worker rewrites its status at most this often


def launch(folder: str | os.PathLike, module: str, log_name: str) -> int:
    """`python -m module folder` as a detached process, its output appended to folder/log_name;
    returns its pid."""
    folder = Path(folder)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(folder / log_name, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", module, str(folder)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT), env=env,
                                start_new_session=True, close_fds=True)
    return proc.pid


def begin(folder: str | os.PathLike, module: str, request: dict) -> int:
    """Write the request, mark the job running and start `python -m module folder`; its pid."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / REQUEST_FILE, request)
    started = time.time()
    write_json_atomic(folder / STATUS_FILE, {"state": "running", "task": "start", "progress": 0.0, "pid": None,
                                             "started": started})
    pid = launch(folder, module, LOG_FILE)
    write_json_atomic(folder / STATUS_FILE, {"state": "running", "task": "start", "progress": 0.0, "pid": pid,
                                             "started": started})
    log.info("%s started in %s (pid %d)", module, folder, pid)
    return pid


def read_status(folder: str | os.PathLike) -> dict:
    """The job's status; "failed" (with a message naming its log) when its process is gone
    without finishing (killed, out of memory, the machine restarted)."""
    from core.liveness import pid_alive

    folder = Path(folder)
    status = read_json(folder / STATUS_FILE) or {"state": "none"}
    if status.get("state") == "running" and status.get("pid") and \
            not pid_alive(status["pid"], status.get("started")):
        message = Msg("job.died", log=str(folder / LOG_FILE))
        status = {"state": "failed", "message": str(message), "message_i18n": message.to_json()}
    return status


def request(folder: str | os.PathLike) -> dict:
    return read_json(Path(folder) / REQUEST_FILE) or {}


class Reporter:
    """The worker's progress into the status file, at most every REPORT_EVERY_S (and always the last)."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / STATUS_FILE
        self.base = {"state": "running", "pid": os.getpid(), "started": (read_json(self.path) or {}).get("started")}
        self.last = 0.0

    def __call__(self, final: bool = False, **fields) -> None:
        now = time.monotonic()
        if not final and now - self.last < REPORT_EVERY_S:
            return
        self.last = now
        write_json_atomic(self.path, {**self.base, **fields})


def finish(folder: str | os.PathLike, state: str = "done", **fields) -> None:
    """The worker's last word when it succeeded: its state (done, or stopped when the user asked),
    its peak memory, and `fields`."""
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    write_json_atomic(Path(folder) / STATUS_FILE, {"state": state, "progress": 1.0, "peak_mb": round(peak_mb),
                                                   **fields})


def fail(folder: str | os.PathLike, exc: BaseException) -> int:
    """The worker's last word when it failed; its exit code. A LatihError or an OSError (a
    damaged zip, a folder gone, a full disk) is said as it is; anything else is a bug: the
    traceback goes to the log and the page names the log."""
    from core.errors import LatihError, os_message

    folder = Path(folder)
    if isinstance(exc, LatihError):  # the engine's own words (a Msg), or an older plain line
        message, code = (exc.args[0] if exc.args and isinstance(exc.args[0], Msg) else str(exc)), 2
    elif isinstance(exc, OSError):
        message, code = os_message(exc), 2
    else:
        log.error("the job in %s failed", folder, exc_info=exc)
        message, code = Msg("job.died", log=str(folder / LOG_FILE)), 1
    if code == 2:
        log.error("the job in %s failed: %s", folder, exc)
    write_json_atomic(folder / STATUS_FILE, {"state": "failed", "message": str(message),
                                             "message_i18n": message.to_json() if isinstance(message, Msg) else None})
    return code


__all__ = ["launch", "begin", "read_status", "request", "Reporter", "finish", "fail"]
