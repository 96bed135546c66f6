"""Grey thumbnails of the centre square of each photo, the input of copy detection
(core/data/copies.py), decoded in threads and cached by sha1 in `<workspace>/cache/thumbs.sqlite`."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from PIL import Image

from core.data.cachedb import CacheDB
from core.errors import DataError

logger = logging.getLogger(__name__)

THUMB = 64                      # side of the grey thumbnail (centre square) for candidates and step 2a
FINE = 128                      # side of the finer thumbnail for step 2b (decoded only for pairs that pass 2a)
THUMB_VERSION = 1               # bump when thumbnail() changes, to ignore old cache rows
WORKERS = 4


def thumbnail(path: str, size: int = THUMB) -> np.ndarray:
    """size x size uint8 grey thumbnail of the photo's centre square (EXIF-upright); DataError if unusable."""
    from core.data.decode import load_image  # late: decode is the heavier module

    return thumbnail_of(load_image(path, draft_size=2 * size), size)


def thumbnail_of(img: Image.Image, size: int = THUMB) -> np.ndarray:
    img = img.convert("L")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.uint8)


class ThumbCache(CacheDB):
    """sqlite table (sha1, version, side) -> thumbnail bytes; skipped (and logged) when it cannot
    be written, e.g. on a full disk (core.data.cachedb)."""

    def __init__(self, workspace=None, size: int = THUMB):
        self.size = size
        super().__init__("thumbs.sqlite", "CREATE TABLE IF NOT EXISTS thumbnails (sha1 TEXT, version INTEGER, "
                         "side INTEGER, data BLOB, PRIMARY KEY (sha1, version, side))", workspace)

    def lookup(self, sha1s: list[str]) -> dict[str, np.ndarray]:
        found = {}
        with self.use("read") as db:
            for start in range(0, len(sha1s), 900) if db is not None else ():  # sqlite's limit on query parameters
                part = sha1s[start:start + 900]
                marks = ",".join("?" * len(part))
                for sha1, data in db.execute(
                        f"SELECT sha1, data FROM thumbnails WHERE version = ? AND side = ? AND sha1 IN ({marks})",
                        [THUMB_VERSION, self.size, *part]):
                    found[sha1] = np.frombuffer(data, dtype=np.uint8).reshape(self.size, self.size)
        return found

    def store(self, items: dict[str, np.ndarray]) -> None:
        with self.use("written") as db:
            if db is not None:
                db.executemany("INSERT OR REPLACE INTO thumbnails VALUES (?, ?, ?, ?)",
                               [(s, THUMB_VERSION, self.size, t.tobytes()) for s, t in items.items()])


def _safe_thumbnail(path: str, size: int = THUMB) -> np.ndarray | None:
    try:
        return thumbnail(path, size)
    except DataError as exc:
        logger.info("no thumbnail for %s: %s", path, exc)
        return None


def thumbnails(df: pd.DataFrame, workspace=None, progress=None, size: int = THUMB) -> tuple[np.ndarray, np.ndarray]:
    """(thumbs (n, size, size) uint8, ok (n,) bool) for the rows of df, from the cache or decoded."""
    n = len(df)
    thumbs = np.zeros((n, size, size), dtype=np.uint8)
    ok = np.zeros(n, dtype=bool)
    sha1s = df["sha1"].astype(str).tolist()
    paths = df["path"].astype(str).tolist()
    cache = ThumbCache(workspace, size)
    known = cache.lookup(sorted({s for s in sha1s if s}))
    todo = {}
    for row, sha1 in enumerate(sha1s):
        if sha1 in known:
            thumbs[row], ok[row] = known[sha1], True
        elif sha1:
            todo.setdefault(sha1, []).append(row)
    fresh = {}
    firsts = [(sha1, paths[rows[0]]) for sha1, rows in todo.items()]
    with ThreadPoolExecutor(WORKERS) as pool:
        for done, ((sha1, _), thumb) in enumerate(zip(firsts, pool.map(_safe_thumbnail, [p for _, p in firsts], [size] * len(firsts))), 1):
            if thumb is not None:
                fresh[sha1] = thumb
                for row in todo[sha1]:
                    thumbs[row], ok[row] = thumb, True
            if progress and (done % 64 == 0 or done == len(firsts)):
                progress(done, len(firsts))
            if len(fresh) >= 4096:
                cache.store(fresh)
                fresh = {}
    if fresh:
        cache.store(fresh)
    return thumbs, ok
