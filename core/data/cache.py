"""Decoded photos kept on disk as small uint8 arrays, and the torch Dataset that reads them.

Decoding a 3000 px JPEG takes far longer than loading a 256 px array, and training reads
every photo once per epoch, so each photo is decoded once and stored as
`<root>/<sha1[:2]>/<sha1>_<size>.png`: RGB, upright, shrunk so its SHORTER side is `size`
(aspect ratio kept; photos already smaller are stored as they are, never enlarged).

Stored as a lossless PNG (compression level 1), not as a raw uint8 array: the cache grew to
1.6 GB for 200 MB of photos. Lossless on purpose: a quality-95 JPEG was 5x smaller, but it moved
every feature slightly (cosine 0.996), and the labelling journey's suggestions, which depend on
those features, then accepted four wrong labels where the lossless pixels gave none of that
(tests/test_e2e_labelling.py). `get` always returns the pixels as stored.
Pick `size` at least the model's input size divided by its crop_pct (224 / 0.875 = 256):
the transforms then resize/crop from there exactly as they would from the original.
"""
from __future__ import annotations

import io
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from core.data.decode import load_image
from core.errors import DataError
from core.workspace import subdir
from core.i18n import Msg

logger = logging.getLogger(__name__)


def shrink(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is `size` (aspect kept); never enlarges."""
    shorter = min(img.size)
    if shorter <= size:
        return img
    scale = size / shorter
    new_size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    # reducing_gap: PIL first shrinks by an integer factor (fast), then resamples precisely.
    return img.resize(new_size, Image.Resampling.BICUBIC, reducing_gap=3.0)


class ImageCache:
    """get(path, sha1) -> HxWx3 uint8 array, decoded once and then loaded from disk."""

    def __init__(self, root: str | os.PathLike | None = None, size: int = 256):
        self.root = Path(root) if root is not None else subdir("cache") / "images"
        self.size = int(size)
        self.root.mkdir(parents=True, exist_ok=True)

    def file_for(self, sha1: str) -> Path:
        return self.root / sha1[:2] / f"{sha1}_{self.size}.png"

    def get(self, path: str | os.PathLike, sha1: str) -> np.ndarray:
        cached = self.file_for(sha1)
        try:
            used = cached.stat().st_mtime  # one stat: whether it is there, and when it was last used
        except FileNotFoundError:
            used = None
        if used is not None:
            try:
                array = _read(cached.read_bytes())
                _touch(cached, used)
                return array
            except (OSError, ValueError, SyntaxError) as exc:  # half-written by a killed process
                logger.warning("cache file %s is damaged (%s); decoding the photo again", cached, exc)
        encoded = _encode(self.decode(path))
        self._save(cached, encoded)
        return _read(encoded)

    def decode(self, path: str | os.PathLike) -> np.ndarray:
        img = load_image(path, draft_size=self.size)
        return np.ascontiguousarray(np.asarray(shrink(img, self.size), dtype=np.uint8))

    @staticmethod
    def _save(target: Path, encoded: bytes) -> None:
        """Write then rename, so DataLoader workers never read a half-written file."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(suffix=".png", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(encoded)
            os.replace(temp, target)
        except OSError as exc:  # a full disk should slow training down, not stop it
            logger.warning("cannot write cache file %s: %s", target, exc)
            Path(temp).unlink(missing_ok=True)


# The photo cache is a cache: it may not fill a laptop's disk. Past this size the photos used
# longest ago are removed (before a training, never this training's own photos); they are
# decoded again when needed. LATIH_PHOTO_CACHE_MB sets another limit (0: no limit).
DEFAULT_LIMIT_MB = 2048
LIMIT_ENV = "LATIH_PHOTO_CACHE_MB"


def limit_bytes() -> int | None:
    raw = os.environ.get(LIMIT_ENV)
    try:
        mb = float(raw) if raw not in (None, "") else DEFAULT_LIMIT_MB
    except ValueError:
        logger.warning("%s=%r is not a number of megabytes; using %d", LIMIT_ENV, raw, DEFAULT_LIMIT_MB)
        mb = DEFAULT_LIMIT_MB
    return int(mb * 1024 * 1024) if mb > 0 else None


def cache_files(root: Path) -> list[tuple[float, int, Path]]:
    """(last used, bytes, file) of every cached photo under `root`."""
    out = []
    for path in Path(root).glob("*/*.png"):
        try:
            info = path.stat()
        except FileNotFoundError:  # removed by another process meanwhile
            continue
        out.append((info.st_mtime, info.st_size, path))
    return out


def prune(root: str | os.PathLike, limit: int | None, keep: set[str] = frozenset()) -> tuple[int, int]:
    """Remove the photos used longest ago until the cache under `root` holds at most `limit`
    bytes; photos whose sha1 is in `keep` stay. Returns (files removed, bytes freed)."""
    if limit is None:
        return 0, 0
    files = cache_files(Path(root))
    total = sum(size for _, size, _ in files)
    removed = freed = 0
    for _, size, path in sorted(files):
        if total <= limit:
            break
        if path.name.split("_")[0] in keep:
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        total -= size
        removed, freed = removed + 1, freed + size
    if removed:
        logger.info("photo cache %s over %.0f MB: removed %d photos used longest ago (%.0f MB)", root,
                    limit / 2**20, removed, freed / 2**20)
    return removed, freed


CACHE_PNG_LEVEL = 1  # fast to write; higher levels save a few percent more for much more time


TOUCH_AFTER_S = 3600.0


def _touch(path: Path, used: float) -> None:
    """Mark a cached photo as used (its mtime), at most once an hour: the limit removes the
    photos used longest ago first."""
    if time.time() - used <= TOUCH_AFTER_S:
        return
    try:
        os.utime(path)
    except OSError as exc:
        logger.debug("cannot mark %s as used: %s", path, exc)


def _encode(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=CACHE_PNG_LEVEL)
    return buffer.getvalue()


def _read(encoded: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(encoded)) as img:
        img.load()  # raises on a truncated file instead of returning grey rows
        return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


class PhotoDataset(Dataset):
    """(image tensor, class index) for each readable row of df.

    `transform` is an albumentations Compose (called as transform(image=array)["image"]) or any
    callable taking an HxWx3 uint8 array; None returns a CHW uint8 tensor. `cache` None decodes
    the photo every time.
    """

    def __init__(self, df: pd.DataFrame, class_names, transform=None, cache: ImageCache | None = None):
        if callable(class_names) or isinstance(class_names, str):
            raise TypeError("PhotoDataset(df, class_names, transform, cache): class_names must be a list of names")
        self.class_names = list(class_names)
        rows = df[df["readable"].astype(bool)] if "readable" in df else df
        if len(rows) < len(df):
            logger.info("PhotoDataset leaves out %d unreadable photos", len(df) - len(rows))
        unknown = sorted(set(rows["label"]) - set(self.class_names))
        if unknown:
            raise DataError(Msg("err.cache.unknown_labels", labels=', '.join(map(repr, unknown)), classes=str(self.class_names)))
        self.paths = rows["path"].tolist()
        self.sha1s = rows["sha1"].tolist() if "sha1" in rows else [""] * len(rows)
        index = {name: i for i, name in enumerate(self.class_names)}
        self.labels = [index[label] for label in rows["label"]]
        self.transform = transform
        self.cache = cache
        self._keyword_call = _is_albumentations(transform)

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int) -> np.ndarray:
        """The photo as an HxWx3 uint8 array (cached when a cache is given)."""
        if self.cache is not None and self.sha1s[i]:
            return self.cache.get(self.paths[i], self.sha1s[i])
        return np.asarray(load_image(self.paths[i]), dtype=np.uint8)

    def __getitem__(self, i: int):
        array = self.image(i)
        if self.transform is None:
            return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))), self.labels[i]
        if self._keyword_call:
            return self.transform(image=array)["image"], self.labels[i]
        return self.transform(array), self.labels[i]


def _is_albumentations(transform) -> bool:
    return type(transform).__module__.split(".")[0] == "albumentations"
