"""Find the photos of a dataset and describe each one in a table.

A dataset is a folder (or a .zip of one) in one of two layouts:
    <root>/<class>/...photos...                      (unsplit)
    <root>/{train,val,test}/<class>/...photos...     (already split; `valid`/`validation` = val)
Photos may sit in subfolders of a class folder. Hidden files and folders, OS debris (__MACOSX,
.DS_Store, Thumbs.db, desktop.ini) and any Latih workspace (a folder holding `.latih-workspace`)
are never scanned.

`scan` decodes every photo fully (so truncated files are caught), hashes it (sha1 of the
bytes, perceptual hash of the pixels) and caches the result per (path, size, mtime) in
`<workspace>/cache/scan.sqlite`, so scanning the same folder again is instant.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from PIL import ImageFile

from core.data import decode
from core.data.archives import extract_zip
from core.data.cachedb import CacheDB
from core.data.decode import PhotoInfo, describe_file
from core.data.layout import class_folders, dataset_root, files_under
from core.errors import DataError

logger = logging.getLogger(__name__)

SCAN_WORKERS = 4  # PIL releases the GIL while decoding, so threads help on 2 cores too
SCAN_VERSION = 1  # bump when what scan() computes changes, to ignore old cache rows

COLUMNS = ["path", "label", "split", "width", "height", "mode", "sha1", "phash", "readable", "error"]


def open_source(path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> Path:
    """The dataset folder for `path`: a folder as is, a .zip safely extracted into the workspace."""
    source = Path(path).expanduser()
    if not source.exists():
        raise DataError(f"{source} does not exist: check the path and try again")
    if source.is_dir():
        return dataset_root(source.resolve())
    if source.suffix.lower() == ".csv":  # a path,label table (core.data.labelled)
        return source.resolve()
    if source.suffix.lower() != ".zip":
        raise DataError(f"{source.name} is a file, not a folder or a .zip archive: choose the folder of class folders")
    return dataset_root(extract_zip(source.resolve(), workspace))



def scan(path: str | os.PathLike, *, workspace: str | os.PathLike | None = None,
         use_cache: bool = True, progress=None) -> pd.DataFrame:
    """One row per file of the dataset at `path` (folder, .zip or labels .csv); see the module docstring.

    `df.attrs["root"]` is the dataset folder and `df.attrs["empty_classes"]` lists class folders
    holding no files (as "label", or "split/label" for a split dataset).
    `progress(done, total)`, when given, is called as photos are read (for a progress bar).
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        logger.warning("PIL LOAD_TRUNCATED_IMAGES is on somewhere: truncated photos will not be detected")
    root = open_source(path, workspace)
    if root.is_file():  # labels.csv: photos named with their class, kept where they are
        from core.data.labelled import scan_csv

        return scan_csv(root, workspace=workspace, use_cache=use_cache)
    rows, empty = [], []
    for split, label, folder in class_folders(root):
        files = files_under(folder)
        if not files:
            empty.append(f"{split}/{label}" if split else label)
        rows.extend({"path": str(f), "label": label, "split": split} for f in files)
    infos = _describe_all([r["path"] for r in rows], workspace, use_cache, progress)
    df = pd.DataFrame([{**row, **asdict(info)} for row, info in zip(rows, infos)], columns=COLUMNS)
    df = df.astype({"width": int, "height": int, "readable": bool})
    df.attrs.update(root=str(root), empty_classes=empty)
    return df


def _describe_all(paths: list[str], workspace, use_cache: bool, progress=None) -> list[PhotoInfo]:
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
