"""Where Latih keeps everything it writes: runs, extracted datasets, caches, projects.

Default `./workspace`; the environment variable LATIH_WORKSPACE or an explicit argument
(the CLI's --workspace flag) overrides it. Nothing is written outside this folder.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "LATIH_WORKSPACE"


def workspace_dir(override: str | os.PathLike | None = None, create: bool = True) -> Path:
    raw = override or os.environ.get(ENV_VAR) or "workspace"
    path = Path(raw).expanduser().resolve()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def subdir(name: str, override: str | os.PathLike | None = None) -> Path:
    """A named area of the workspace (runs, datasets, cache, projects, queue, weights)."""
    path = workspace_dir(override) / name
    path.mkdir(parents=True, exist_ok=True)
    return path
