"""The copy check (core.data.copies.find_pairs) of a saved photo table, in a background process.

At 50,000 photos the check takes about a minute on 2 cores: a page must not spend it inside its
script (a click elsewhere would interrupt it, and the page would show nothing meanwhile). The
Data page starts the check, polls it, and reads the pairs once they are there:

    folder = start(table)        # the scan table saved as CSV (the app's files.csv)
    job = read_job(folder)       # {"state": "none" | "running" | "done" | "failed", "progress", "task", ...}
    pairs = read_pairs(folder)   # core.data.copies.PAIR_COLUMNS, once done

One folder per table file and version (its path, size and mtime), under
`<workspace>/copy_checks/`: a rescan rewrites the table, so it gets a check of its own, and
start() removes the older checks of that table (stopping one still running). The thumbnails the
check decodes are cached by sha1 in the workspace, as for any other caller of find_pairs.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pandas as pd

from core import background

log = logging.getLogger(__name__)

JOBS_DIR = "copy_checks"
STATUS_FILE = background.STATUS_FILE
LOG_FILE = background.LOG_FILE
PAIRS_FILE = "pairs.csv"


def _table_keys(table: Path) -> tuple[str, str]:
    info = table.stat()
    where = hashlib.sha1(str(table.expanduser().resolve()).encode()).hexdigest()[:12]
    version = hashlib.sha1(f"{info.st_size}|{info.st_mtime_ns}".encode()).hexdigest()[:8]
    return where, version


def job_dir(table: str | os.PathLike, workspace=None) -> Path:
    """The check's folder for this version of the table (the folder need not exist yet)."""
    from core.workspace import subdir

    where, version = _table_keys(Path(table))
    return subdir(JOBS_DIR, workspace) / f"{where}-{version}"


def start(table: str | os.PathLike, workspace=None) -> Path:
    """Start the check of `table` in a background process, unless it is running or done; returns
    its folder (poll it with read_job). A check that failed is started again."""
    table = Path(table)
    folder = job_dir(table, workspace)
    if read_job(folder)["state"] in ("running", "done"):
        return folder
    _forget_older_checks(folder)
    (folder / PAIRS_FILE).unlink(missing_ok=True)
    background.begin(folder, "core.data.copy_check", {"table": str(table.resolve()),
                                                      "workspace": str(workspace) if workspace else None})
    return folder


def read_job(folder: str | os.PathLike) -> dict:
    """The check's status (core.background.read_status): none, running (task, progress), done
    (pairs, seconds, peak_mb) or failed (message)."""
    return background.read_status(folder)


def read_pairs(folder: str | os.PathLike) -> pd.DataFrame:
    """The confirmed pairs a finished check wrote (PAIR_COLUMNS; names stay text, "NA" included)."""
    from core.data.copies import read_pairs_csv

    return read_pairs_csv(Path(folder) / PAIRS_FILE)


def _forget_older_checks(folder: Path) -> None:
    """Remove the other versions' checks of the same table, stopping any still running."""
    where = folder.name.split("-")[0]
    for old in folder.parent.glob(f"{where}-*"):
        if old == folder or not old.is_dir():
            continue
        status = read_job(old)
        if status.get("state") == "running" and status.get("pid"):
            try:
                os.killpg(int(status["pid"]), signal.SIGTERM)  # launched in a session of its own
                log.info("stopped the copy check of an older table in %s", old)
            except (ProcessLookupError, PermissionError) as exc:
                log.warning("could not stop the copy check in %s: %s", old, exc)
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- the background process
def run_check(table: str | os.PathLike, workspace=None, progress=None, df: pd.DataFrame | None = None) -> pd.DataFrame:
    """find_pairs on the readable photos of a saved table (what the worker runs, and the page for
    a small set); `df`: that table already parsed."""
    from core.data.copies import find_pairs
    from core.data.scan import read_table

    df = read_table(table) if df is None else df
    readable = df[df["readable"]].reset_index(drop=True)
    return find_pairs(readable, workspace=workspace, progress=progress)


def _worker(folder: Path) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    request = background.request(folder)
    report = background.Reporter(folder)

    def progress(task: str, done: int, total: int) -> None:
        # thumbnails are the first ~half of the work, comparing candidates the rest
        share = done / max(total, 1)
        report(final=done >= total, task=task, done=done, total=total,
               progress=round(0.5 * share if task == "thumbnails" else 0.5 + 0.5 * share, 4))

    started = time.perf_counter()
    try:
        pairs = run_check(request["table"], request.get("workspace"), progress)
        tmp = folder / f".{PAIRS_FILE}.tmp"
        pairs.to_csv(tmp, index=False)
        os.replace(tmp, folder / PAIRS_FILE)
    except Exception as exc:  # said on the page (core.background.fail); a bug's traceback goes to the log
        return background.fail(folder, exc)
    seconds = round(time.perf_counter() - started, 1)
    log.info("copy check done: %d pairs in %.1f s", len(pairs), seconds)
    background.finish(folder, pairs=int(len(pairs)), seconds=seconds)
    return 0


if __name__ == "__main__":
    sys.exit(_worker(Path(sys.argv[1])))


__all__ = ["start", "read_job", "read_pairs", "job_dir", "run_check"]
