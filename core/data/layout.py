"""The folder layout of a dataset: class folders, optional train/val/test folders above them,
and what is never scanned (hidden files, OS debris, a Latih workspace)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from core.errors import DataError
from core.workspace import is_workspace
from core.i18n import Msg

logger = logging.getLogger(__name__)

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
IGNORED_NAMES = {"__macosx", "thumbs.db", "desktop.ini", ".ds_store"}


def is_ignored_path(relative: str) -> bool:
    return any(is_ignored_name(part) for part in relative.replace("\\", "/").split("/") if part)


def is_ignored_name(name: str) -> bool:
    return name.startswith(".") or name.lower() in IGNORED_NAMES


def _visible_dirs(folder: Path) -> list[Path]:
    """Subfolders that can hold photos: not hidden, not OS debris, never a Latih workspace."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_ignored_name(p.name) and not _skip_workspace(p))


def _skip_workspace(folder: Path) -> bool:
    if is_workspace(folder):
        logger.info("not scanning %s: it is a Latih workspace", folder)
        return True
    return False


def _visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not is_ignored_name(p.name))


def dataset_root(folder: Path) -> Path:
    """Step into a lone wrapper folder (`data.zip` -> `data/`) that itself holds folders."""
    while True:
        children = _visible_dirs(folder)
        if (len(children) == 1 and not _visible_files(folder)
                and children[0].name.lower() not in SPLIT_NAMES and _visible_dirs(children[0])):
            folder = children[0]
        else:
            return folder


def class_folders(root: Path) -> list[tuple[str, str, Path]]:
    """(split, label, folder) for every class folder; split is "" for an unsplit dataset."""
    children = _visible_dirs(root)
    split_dirs = [c for c in children if c.name.lower() in SPLIT_NAMES]
    if not split_dirs:
        found = [("", c.name, c) for c in children]
    else:
        others = [c.name for c in children if c not in split_dirs]
        if others:
            raise DataError(Msg("err.layout.mixed", root=str(root), splits=', '.join(c.name for c in split_dirs), others=', '.join(others)))
        found = [(SPLIT_NAMES[s.name.lower()], c.name, c) for s in split_dirs for c in _visible_dirs(s)]
    if not found:
        raise DataError(Msg("err.layout.no_classes", root=str(root), name=root.name))
    return found


def files_under(folder: Path) -> list[Path]:
    files = []
    for current, dirs, names in os.walk(folder):  # does not follow folder links: no loops
        dirs[:] = sorted(d for d in dirs if not is_ignored_name(d) and not _skip_workspace(Path(current) / d))
        files.extend(Path(current) / n for n in sorted(names) if not is_ignored_name(n))
    return files

