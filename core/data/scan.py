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
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from PIL import ImageFile

from core.data.archives import extract_zip
from core.data.layout import class_folders, dataset_root, files_under
from core.data.scan_cache import COLUMNS, describe_all
from core.errors import DataError
from core.i18n import Msg

logger = logging.getLogger(__name__)


def open_source(path: str | os.PathLike, workspace: str | os.PathLike | None = None, progress=None,
                hashed=None) -> Path:
    """The dataset folder for `path`: a folder as is, a .zip safely extracted into the workspace
    (streamed member by member; `progress` and `hashed` as in core.data.archives.extract_zip)."""
    source = Path(path).expanduser()
    if not source.exists():
        raise DataError(Msg("err.path_missing", path=str(source)))
    if source.is_dir():
        return dataset_root(source.resolve())
    if source.suffix.lower() == ".csv":  # a path,label table (core.data.labelled)
        return source.resolve()
    if source.suffix.lower() != ".zip":
        raise DataError(Msg("err.scan.is_file", name=source.name))
    return dataset_root(extract_zip(source.resolve(), workspace, progress, hashed))



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
    infos = describe_all([r["path"] for r in rows], workspace, use_cache, progress)
    df = pd.DataFrame([{**row, **asdict(info)} for row, info in zip(rows, infos)], columns=COLUMNS)
    df = df.astype({"width": int, "height": int, "readable": bool})
    df.attrs.update(root=str(root), empty_classes=empty)
    return df


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A scan table saved as CSV (the app's files.csv) read back as scan() returned it: every
    text column as text (a class named "NA" or a sha1 of digits stays text), sizes as ints,
    `readable` as bool."""
    df = pd.read_csv(path, keep_default_na=False, dtype=str)
    for col in ("width", "height"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype(int)
    if "readable" in df.columns:
        df["readable"] = df["readable"].astype(str).str.lower().isin(("true", "1"))
    return df
