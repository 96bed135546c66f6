"""Describing many photos at once, cached: threads over core.data.decode.describe_file, and
the sqlite table `<workspace>/cache/scan.sqlite` keyed by (path, size, mtime) so that scanning
the same folder again is instant."""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

from core.data import decode
from core.data.cachedb import CacheDB
from core.data.decode import PhotoInfo, describe_file

logger = logging.getLogger(__name__)

SCAN_WORKERS = 4  # PIL releases the GIL while decoding, so threads help on 2 cores too
SCAN_VERSION = 1  # bump when what scan() computes changes, to ignore old cache rows

COLUMNS = ["path", "label", "split", "width", "height", "mode", "sha1", "phash", "readable", "error"]


def describe_all(paths: list[str], workspace, use_cache: bool, progress=None) -> list[PhotoInfo]:
    cache = ScanCache(workspace) if use_cache else None
    stats = [_file_key(p) for p in paths]
    known = cache.lookup(paths, stats) if cache else {}
    todo = [p for p in paths if p not in known]
    fresh = {}
    with ThreadPoolExecutor(SCAN_WORKERS) as pool:
        for done, (path, info) in enumerate(zip(todo, pool.map(describe_file, todo)), 1):
            fresh[path] = info
            if progress and (done % 64 == 0 or done == len(todo)):
                progress(done, len(todo))
    if cache:
        cache.store([(p, s, fresh[p]) for p, s in zip(paths, stats) if p in fresh])
    return [known.get(p) or fresh[p] for p in paths]


def _file_key(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except OSError as exc:
        logger.warning("cannot stat %s: %s", path, exc)
        return -1, -1


class ScanCache(CacheDB):
    """sqlite table of PhotoInfo keyed by (path, size, mtime, scan version + pixel limit).
    A cache that cannot be written (full disk, damaged file) is logged and skipped (core.data.cachedb)."""

    def __init__(self, workspace=None):
        super().__init__("scan.sqlite", "CREATE TABLE IF NOT EXISTS scan (path TEXT PRIMARY KEY, size INTEGER, "
                         "mtime INTEGER, version TEXT, width INTEGER, height INTEGER, mode TEXT, sha1 TEXT, "
                         "phash TEXT, readable INTEGER, error TEXT)", workspace)

    @staticmethod
    def _version() -> str:
        return f"{SCAN_VERSION}:{decode.MAX_PIXELS}"

    def lookup(self, paths: list[str], stats: list[tuple[int, int]]) -> dict[str, PhotoInfo]:
        cached = {}
        with self.use("read") as db:
            if db is not None:
                db.execute("CREATE TEMP TABLE wanted (path TEXT PRIMARY KEY)")
                db.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", [(p,) for p in paths])
                cached = {r[0]: r[1:] for r in db.execute(
                    "SELECT s.path, size, mtime, version, width, height, mode, sha1, phash, readable, error "
                    "FROM scan s JOIN wanted w ON s.path = w.path")}
        found = {}
        for path, (size, mtime) in zip(paths, stats):
            row = cached.get(path)
            if row and (row[0], row[1], row[2]) == (size, mtime, self._version()) and size >= 0:
                w, h, mode, sha1, phash, readable, error = row[3:]
                found[path] = PhotoInfo(w, h, mode, sha1, phash, bool(readable), error)
        return found

    def store(self, entries: list[tuple[str, tuple[int, int], PhotoInfo]]) -> None:
        rows = [(p, size, mtime, self._version(), i.width, i.height, i.mode, i.sha1, i.phash, int(i.readable), i.error)
                for p, (size, mtime), i in entries if size >= 0]
        with self.use("written") as db:
            if db is not None:
                db.executemany("INSERT OR REPLACE INTO scan VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
