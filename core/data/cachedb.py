"""Workspace caches in SQLite (scan results, copy thumbnails) are only a speed-up.

When one cannot be opened, read or written (the workspace's disk is full, the file is damaged,
the folder is read-only) Latih logs a warning and carries on without it: the answer is the same,
the next check just reads the photos again. SQLite rolls back the failed write itself, so no
half-written cache or journal file is left behind.
"""
from __future__ import annotations

import contextlib
import logging
import sqlite3
from contextlib import closing
from pathlib import Path

from core.workspace import workspace_dir

logger = logging.getLogger(__name__)


class CacheDB:
    """One SQLite cache file in `<workspace>/cache/`; `with self.use("read") as db:` gives a
    connection (committed on success), or None once the cache has failed and is switched off."""

    def __init__(self, name: str, schema: str, workspace=None):
        self.db_path = workspace_dir(workspace) / "cache" / name
        self.usable = True
        with self.use("opened") as db:
            if db is not None:
                db.execute(schema)

    @contextlib.contextmanager
    def use(self, doing: str):
        if not self.usable:
            yield None
            return
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.db_path, timeout=30)) as db, db:
                yield db
        except (sqlite3.Error, OSError) as exc:
            self.usable = False
            logger.warning("the cache %s could not be %s (%s: %s); carrying on without it, so the next check "
                           "reads these photos again", self.db_path, doing, type(exc).__name__, exc)
