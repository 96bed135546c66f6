"""Where Latih keeps everything it writes: runs, extracted datasets, caches, projects.

Default: a per-user data folder (`platformdirs.user_data_dir("latih")/workspace`, e.g.
`~/.local/share/latih/workspace` on Linux), so that it can never land inside a photo folder.
The environment variable LATIH_WORKSPACE or an explicit argument (the CLI's --workspace
flag) overrides it. Nothing is written outside this folder.

Every workspace holds a marker file `.latih-workspace`; the dataset scan never enters a
folder that holds one (nor the current workspace itself), so a workspace created inside a
photo folder is never mistaken for a class.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import platformdirs

logger = logging.getLogger(__name__)

ENV_VAR = "LATIH_WORKSPACE"
MARKER = ".latih-workspace"


def default_workspace() -> Path:
    """The per-user default: `<user data dir>/latih/workspace`."""
    return Path(platformdirs.user_data_dir("latih", appauthor=False)) / "workspace"


def describe_default() -> str:
    """For --help: where the workspace is when nothing says otherwise."""
    return f"${ENV_VAR}, else {default_workspace()}"


def workspace_dir(override: str | os.PathLike | None = None, create: bool = True) -> Path:
    raw = override or os.environ.get(ENV_VAR) or default_workspace()
    path = Path(raw).expanduser().resolve()
    if create:
        path.mkdir(parents=True, exist_ok=True)
        marker = path / MARKER
        if not marker.exists():
            from core.diskspace import partial_file  # a full disk: one plain line, no empty marker left

            with partial_file(marker, 4096):
                marker.write_text("Latih workspace: runs, caches and projects. Never scanned as photos.\n",
                                  encoding="utf-8")
    return path


def is_workspace(folder: str | os.PathLike) -> bool:
    """True for a Latih workspace (it holds the marker) or the workspace in use now."""
    folder = Path(folder)
    if (folder / MARKER).exists():
        return True
    current = os.environ.get(ENV_VAR)
    try:
        return bool(current) and folder.resolve() == Path(current).expanduser().resolve()
    except OSError as exc:
        logger.warning("cannot resolve %s: %s", folder, exc)
        return False


def subdir(name: str, override: str | os.PathLike | None = None) -> Path:
    """A named area of the workspace (runs, datasets, cache, projects, queue, weights)."""
    path = workspace_dir(override) / name
    path.mkdir(parents=True, exist_ok=True)
    return path
