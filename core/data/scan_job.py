"""Reading a photo source (a folder, a .zip, a labels CSV: core.data.scan.open_source + scan) in a
background process, for a set too large to read inside a page (50,000 photos: 40-80 s on 2
cores). The page starts it, polls it, and adopts the table once it is there:

    folder = start(source)       # a new job each time (the person chose this source now)
    job = read_job(folder)       # {"state", "task": "zip_check" | "unzip" | "read", "done", "total", ...}
    table, attrs = result(folder)  # the scan table as CSV and df.attrs (the dataset root, ...)

The job folders live under `<workspace>/scan_jobs/`; one per source path (a second start for
the same source replaces a finished or failed job; a running one is left to finish). Nothing
of the project changes here: a corrupt zip fails the job, and the project keeps its photos.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from core import background
from core.i18n import Msg

log = logging.getLogger(__name__)

JOBS_DIR = "scan_jobs"
TABLE_FILE = "files.csv"
ATTRS_FILE = "attrs.json"


def job_dir(source: str | os.PathLike, workspace=None) -> Path:
    from core.workspace import subdir

    key = hashlib.sha1(str(Path(source).expanduser().resolve()).encode()).hexdigest()[:12]
    return subdir(JOBS_DIR, workspace) / key


# ---------------------------------------------------------------- one bar for both ways of reading
# Reading a source is three steps: the zip's checksum, its unpacking, then reading each photo.
# The Data page reads a small source inline and a large one here; both say where they stand
# with these two functions, so the bar moves and reads the same either way. 0.9-1.0 is left
# for saving (inline) or adopting (background) the table.
def read_share(task: str, done: int, total: int, zipped: bool) -> float:
    """How far along the bar a reading step is (0-0.9)."""
    fraction = min(1.0, done / max(total, 1))
    if task == "zip_check":
        return 0.1 * fraction
    if task == "unzip":
        return 0.1 + 0.4 * fraction
    if task == "read":  # a folder's bar is all reading
        return 0.5 + 0.4 * fraction if zipped else 0.9 * fraction
    return 0.0


def read_text(task: str, done: int, total: int, done_bytes: int = 0, total_bytes: int = 0) -> Msg:
    """What the bar says of a reading step (for zip_check, done/total are bytes)."""
    from core.diskspace import human

    if task == "zip_check":
        return Msg("data.progress_zip_check", mb=human(done), mb_total=human(total))
    if task == "unzip":
        return Msg("data.progress_unzip", done=f"{done:,}", total=f"{total:,}", mb=human(done_bytes),
                   mb_total=human(total_bytes))
    if task == "read":
        return Msg("data.progress_read", done=f"{done:,}", total=f"{total:,}")
    return Msg("data.progress_open")


def start(source: str | os.PathLike, workspace=None) -> Path:
    """Read `source` in a background process; returns the job's folder (poll it with read_job)."""
    folder = job_dir(source, workspace)
    if read_job(folder)["state"] == "running":
        return folder
    shutil.rmtree(folder, ignore_errors=True)  # a finished or failed read of this source: read it again
    background.begin(folder, "core.data.scan_job", {"source": str(Path(source).expanduser()),
                                                    "workspace": str(workspace) if workspace else None})
    return folder


def read_job(folder: str | os.PathLike) -> dict:
    return background.read_status(folder)


def result(folder: str | os.PathLike) -> tuple[Path, dict]:
    """(the scan table as CSV, its attrs) of a finished job."""
    folder = Path(folder)
    return folder / TABLE_FILE, json.loads((folder / ATTRS_FILE).read_text(encoding="utf-8"))


def file_count(source: str | os.PathLike, limit: int) -> int:
    """How many files `source` holds, counted only up to `limit + 1` (a quick look, no decoding):
    the members of a zip, the files under a folder; 0 for anything else (a labels CSV, a path
    that is not there: open_source says what is wrong with it)."""
    import zipfile

    source = Path(source).expanduser()
    try:
        if source.is_dir():
            n = 0
            for _root, _dirs, files in os.walk(source):
                n += len(files)
                if n > limit:
                    break
            return n
        if source.suffix.lower() == ".zip" and source.is_file():
            with zipfile.ZipFile(source) as zf:
                return sum(1 for info in zf.infolist() if not info.is_dir())
    except (OSError, zipfile.BadZipFile) as exc:  # the real read says what is wrong, in the user's words
        log.info("could not count the files of %s: %s", source, exc)
    return 0


def _worker(folder: Path) -> int:
    from core.data.scan import open_source, scan

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    request = background.request(folder)
    workspace = request.get("workspace")
    report = background.Reporter(folder)

    zipped = str(request["source"]).lower().endswith(".zip")

    def checked(done_bytes: int, total_bytes: int) -> None:  # the zip's SHA-1, before anything is unpacked
        report(task="zip_check", done=done_bytes, total=total_bytes,
               progress=read_share("zip_check", done_bytes, total_bytes, zipped))

    def unpacked(done: int, total: int, done_bytes: int, total_bytes: int) -> None:
        report(final=done == total, task="unzip", done=done, total=total, done_bytes=done_bytes,
               total_bytes=total_bytes, progress=read_share("unzip", done, total, zipped))

    def read(done: int, total: int) -> None:
        report(final=done == total, task="read", done=done, total=total,
               progress=read_share("read", done, total, zipped))

    started = time.perf_counter()
    try:
        root = open_source(request["source"], workspace, progress=unpacked, hashed=checked)
        df = scan(root, workspace=workspace, progress=read)
        tmp = folder / f".{TABLE_FILE}.tmp"
        df.to_csv(tmp, index=False)
        os.replace(tmp, folder / TABLE_FILE)
        attrs = {k: v for k, v in df.attrs.items() if isinstance(v, (str, int, float, list, type(None)))}
        (folder / ATTRS_FILE).write_text(json.dumps(attrs), encoding="utf-8")
    except Exception as exc:  # said on the page (core.background.fail); a bug's traceback goes to the log
        return background.fail(folder, exc)
    seconds = round(time.perf_counter() - started, 1)
    log.info("read %s: %d files in %.1f s", request["source"], len(df), seconds)
    background.finish(folder, photos=int(len(df)), root=str(root), seconds=seconds)
    return 0


if __name__ == "__main__":
    sys.exit(_worker(Path(sys.argv[1])))


__all__ = ["start", "read_job", "result", "job_dir", "file_count", "read_share", "read_text"]
