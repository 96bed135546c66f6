"""Full disks, said plainly: how much room is needed, and where.

Every writer of large or important files (JSON, checkpoints, uploads, extracted zips,
exports) turns ENOSPC / EDQUOT into `DiskFullError` through `raise_if_disk_full`, and
checks room before big writes with `require_free`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from core.errors import FULL_ERRNOS, LatihError
from core.i18n import Msg

log = logging.getLogger(__name__)

MARGIN = 16 * 1024**2  # keep this much free after a big write


class DiskFullError(LatihError):
    """There is not enough free disk space for what Latih must write."""


def human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def free_bytes(folder: str | os.PathLike) -> int:
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def full_message(folder: str | os.PathLike, needed: int | None) -> Msg:
    """What a write that met a full disk tells the person (a Msg: in their language)."""
    try:
        free = human(free_bytes(folder))
    except OSError as exc:
        log.warning("cannot read the free space of %s: %s", folder, exc)
        free = Msg("disk.free_unknown")
    if needed:
        return Msg("err.disk.full", needed=human(needed + MARGIN), folder=str(folder), free=free)
    return Msg("err.disk.full_more", folder=str(folder), free=free)


def raise_if_disk_full(exc: OSError, folder: str | os.PathLike, needed: int | None = None) -> None:
    """Re-raise a full-disk OSError as DiskFullError; return for any other error."""
    if getattr(exc, "errno", None) in FULL_ERRNOS:
        log.error("disk full writing in %s: %s", folder, exc)
        raise DiskFullError(full_message(folder, needed)) from exc


def require_free(folder: str | os.PathLike, needed: int, what: str) -> None:
    """DiskFullError before starting `what` (a Msg: it is said in the user's language) when `folder` has less than needed + a margin free."""
    free = free_bytes(folder)
    if free < needed + MARGIN:
        raise DiskFullError(Msg("err.disk.not_enough", what=what, needed=human(needed + MARGIN), folder=str(folder), free=human(free)))


@contextlib.contextmanager
def partial_file(path: str | os.PathLike, needed: int | None = None):
    """`with partial_file(p): write p` removes p again if the write fails (full disk -> DiskFullError)."""
    path = Path(path)
    try:
        yield path
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            log.info("removed the partial file %s", path)
        if isinstance(exc, OSError):
            raise_if_disk_full(exc, path.parent, needed)
        raise


def replace_durably(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """os.replace(tmp, target) after tmp's bytes are on the disk (fsync), then the folder's entry.

    Why: os.replace alone is atomic against a killed process but not against a power cut: the
    rename can reach the disk before the data, leaving a checkpoint of the right name with
    zeros in it. A clinic's laptop runs out of battery mid-training."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    try:
        folder = os.open(Path(target).parent, os.O_RDONLY)
    except OSError as exc:  # a folder that cannot be opened for reading (some network file systems)
        log.debug("cannot open %s to sync its entry: %s", Path(target).parent, exc)
        return
    try:
        os.fsync(folder)
    except OSError as exc:  # not every file system syncs a folder; the file's own data is on disk
        log.debug("folder sync of %s not supported: %s", Path(target).parent, exc)
    finally:
        os.close(folder)


__all__ = ["DiskFullError", "raise_if_disk_full", "require_free", "partial_file", "free_bytes", "human",
           "full_message", "replace_durably"]
