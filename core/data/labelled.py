"""Photos that are not sorted into class folders: the unlabelled pool and `labels.csv`.

* `scan_loose(folders)`: every photo under some folders (a zip of loose photos, a phone's
  DCIM folder, the camera folder of a project), scanned and checked like a dataset's photos,
  with label "" (not labelled yet). Layout does not matter: subfolders are just walked.
* `scan_csv(path)`: a `path,label` table (as written by `core.labels.write_training_csv`, or by
  hand) read as a dataset: the same columns as `core.data.scan.scan`, so checks, splits and
  `latih train labels.csv` work on it unchanged. Relative paths are relative to the CSV's folder.
"""
from __future__ import annotations

import csv
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

import pandas as pd

from core.data import layout, scan_cache
from core.errors import DataError, os_reason
from core.i18n import Msg

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".heic", ".heif"}


def loose_files(folders: Iterable[str | os.PathLike]) -> list[str]:
    """Files under the folders (hidden and system files left out), each once, sorted."""
    seen: dict[str, None] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            log.warning("unlabelled photo folder %s is gone; skipped", folder)
            continue
        for path in layout.files_under(folder):
            seen.setdefault(str(path.resolve()), None)
    return sorted(seen)


def scan_loose(folders: Iterable[str | os.PathLike], *, workspace=None, use_cache: bool = True) -> pd.DataFrame:
    """One row per file under `folders` with label "" and split ""; unreadable files are rows
    with readable=False and the reason in `error` (like `core.data.scan.scan`)."""
    paths = loose_files(folders)
    infos = scan_cache.describe_all(paths, workspace, use_cache)
    rows = [{"path": p, "label": "", "split": "", **asdict(i)} for p, i in zip(paths, infos)]
    df = pd.DataFrame(rows, columns=scan_cache.COLUMNS).astype({"width": int, "height": int, "readable": bool})
    df.attrs.update(root="", empty_classes=[])
    return df


def read_labels_csv(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(absolute path, label) rows of a labels CSV; DataError with the line when it is malformed."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            if "label" not in fields or not ({"path", "file"} & set(fields)):
                raise DataError(Msg("err.labelled.columns", name=path.name))
            reader.fieldnames = fields
            rows = []
            for number, row in enumerate(reader, 2):
                photo = (row.get("path") or row.get("file") or "").strip()
                label = (row.get("label") or "").strip()
                if not photo or not label:
                    raise DataError(Msg("err.labelled.incomplete_line", name=path.name, number=str(number)))
                full = Path(photo).expanduser()
                rows.append((str(full if full.is_absolute() else (path.parent / full).resolve()), label))
    except UnicodeDecodeError:
        raise DataError(Msg("err.labelled.not_text", name=path.name)) from None
    except OSError as exc:
        raise DataError(Msg("err.labelled.unreadable", path=str(path), reason=os_reason(exc))) from None
    return rows


def scan_csv(path: str | os.PathLike, *, workspace=None, use_cache: bool = True) -> pd.DataFrame:
    """The photos a labels CSV names, as `core.data.scan.scan` would describe a folder of them."""
    path = Path(path).expanduser().resolve()
    rows = read_labels_csv(path)
    if not rows:
        raise DataError(Msg("err.labelled.empty", name=path.name))
    labels: dict[str, str] = {}
    for photo, label in rows:  # the last line about a photo wins
        labels.pop(photo, None)
        labels[photo] = label
    paths = list(labels)
    infos = scan_cache.describe_all(paths, workspace, use_cache)
    df = pd.DataFrame([{"path": p, "label": labels[p], "split": "", **asdict(i)} for p, i in zip(paths, infos)],
                      columns=scan_cache.COLUMNS).astype({"width": int, "height": int, "readable": bool})
    df.attrs.update(root=str(path), empty_classes=[])
    return df
