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

import hashlib
import io
import logging
import os
import re
import shutil
import stat
import tempfile
import warnings
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from core.data.cachedb import CacheDB
from core.diskspace import raise_if_disk_full, require_free
from core.errors import DataError
from core.workspace import is_workspace, subdir

logger = logging.getLogger(__name__)

try:  # HEIC/HEIF (what phones take) through pillow-heif's PIL plugin
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:  # declared in pyproject; without it HEIC photos get a plain message
    HEIF_SUPPORTED = False
    logger.warning("pillow-heif is not installed: HEIC/HEIF photos cannot be read")
HEIF_SUFFIXES = (".heic", ".heif", ".hif")

# Above this many pixels a photo is refused: decoding it could exhaust memory (PIL's own
# default). Tests lower it with monkeypatch.
MAX_PIXELS = 89_478_485

MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_UNCOMPRESSED = 4 * 1024**3
ZIP_BOMB_RATIO = 200
ZIP_BOMB_MIN_SIZE = 10 * 1024**2
# The whole archive: photos barely compress (ratio ~1), so a zip that unpacks to over
# ZIP_TOTAL_MIN_SIZE at more than ZIP_TOTAL_RATIO times its compressed size is a bomb, even
# when each member stays under ZIP_BOMB_MIN_SIZE.
ZIP_TOTAL_RATIO = 50
ZIP_TOTAL_MIN_SIZE = 64 * 1024**2

SCAN_WORKERS = 4  # PIL releases the GIL while decoding, so threads help on 2 cores too
SCAN_VERSION = 1  # bump when what scan() computes changes, to ignore old cache rows

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
IGNORED_NAMES = {"__macosx", "thumbs.db", "desktop.ini", ".ds_store"}
NOT_IMAGE = "not an image"

COLUMNS = ["path", "label", "split", "width", "height", "mode", "sha1", "phash", "readable", "error"]


@dataclass
class PhotoInfo:
    """What scan learns about one file (one row of the table, minus path/label/split)."""

    width: int = 0
    height: int = 0
    mode: str = ""
    sha1: str = ""
    phash: str = ""
    readable: bool = False
    error: str = ""


# ---------------------------------------------------------------- opening photos


def _check_pixel_limit(img: Image.Image) -> None:
    pixels = img.width * img.height
    if pixels > MAX_PIXELS:
        raise DataError(_too_large_message(pixels))


def _too_large_message(pixels: int) -> str:
    return (f"image is too large ({pixels / 1e6:.0f} megapixels): the limit is "
            f"{MAX_PIXELS / 1e6:.0f} megapixels; shrink the photo or remove it")


def _decode(data: bytes, draft_size: int | None = None) -> Image.Image:
    """Open and fully decode image bytes; raise DataError with a plain reason if that fails."""
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that; a bomb must be refused.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            _check_pixel_limit(img)
            if draft_size:
                img.draft("RGB", (draft_size, draft_size))  # JPEG only: decode at reduced scale
            img.load()  # full decode: a truncated file fails here, not later in training
            return img
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(_too_large_message(_pixels_in_message(str(exc)))) from None
    except UnidentifiedImageError:
        if not HEIF_SUPPORTED and data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftypheif"):
            raise DataError("HEIC/HEIF photo (iPhone format) and pillow-heif is not installed: run "
                            "`pip install pillow-heif`, or convert the photo to JPEG") from None
        raise DataError(f"{NOT_IMAGE}: the file's content is not a photo format Latih can read") from None
    except OSError as exc:
        if "truncated" in str(exc).lower():
            raise DataError("file is truncated or damaged: copy it again or remove it") from None
        raise DataError(f"file is damaged or in an unsupported format ({exc}): remove it") from None
    except (SyntaxError, ValueError, EOFError) as exc:  # raised by some PIL decoders on bad data
        raise DataError(f"file is damaged ({exc}): remove it") from None


def _pixels_in_message(message: str) -> int:
    """PIL says "Image size (400000000 pixels) exceeds limit ..."; 0 if it ever words it otherwise."""
    match = re.search(r"\((\d+) pixels\)", message)
    return int(match.group(1)) if match else 0


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to RGB: transparency composited on white, 16-bit scaled to 8 bits."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        # Full 16-bit range -> 8 bits (65535 / 257 = 255), like every viewer does.
        arr = (np.asarray(img, dtype=np.uint16) // 257).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    elif img.mode in ("I", "F"):
        # 32-bit int/float has no fixed range: stretch this photo's min..max to 0..255.
        arr = np.asarray(img, dtype=np.float64)
        low, high = float(arr.min()), float(arr.max())
        arr = (arr - low) / (high - low) * 255 if high > low else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def _decode_rgb(data: bytes, draft_size: int | None = None) -> tuple[Image.Image, str]:
    """(RGB image with EXIF orientation applied, original PIL mode)."""
    img = _decode(data, draft_size)
    mode = img.mode
    try:
        return to_rgb(ImageOps.exif_transpose(img)), mode
    except (OSError, ValueError, SyntaxError) as exc:  # odd modes (LAB, HSV) or broken EXIF
        raise DataError(f"photo cannot be converted to colour ({mode}: {exc}): save it as JPEG or PNG") from None


def decode_bytes(data: bytes, name: str = "photo", draft_size: int | None = None) -> Image.Image:
    """Photo bytes (an upload) as upright RGB through the same decoder as scanning; DataError if unusable."""
    try:
        return _decode_rgb(data, draft_size)[0]
    except DataError as exc:
        raise DataError(f"{name}: {exc}") from None


def load_image(path: str | os.PathLike, *, draft_size: int | None = None) -> Image.Image:
    """A photo as an RGB PIL image, upright (EXIF), whatever its mode; DataError if unusable.

    `draft_size` lets JPEGs decode at a reduced scale whose sides stay >= draft_size (fast
    for thumbnails and the cache); None decodes at full size.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}; check the file exists") from None
    try:
        return _decode_rgb(data, draft_size)[0]
    except DataError as exc:
        raise DataError(f"{Path(path).name}: {exc}") from None


def perceptual_hash(img: Image.Image) -> str:
    """imagehash.phash as hex, after a cheap box reduction (phash only looks at 32x32 anyway;
    this makes hashing 5x faster on large photos and barely changes the hash)."""
    factor = max(1, min(img.size) // 128)
    return str(imagehash.phash(img.reduce(factor) if factor > 1 else img))


def describe_file(path: str | os.PathLike) -> PhotoInfo:
    """Decode one file and describe it; never raises for a bad file (the row says why)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return PhotoInfo(error=f"cannot read the file ({exc.strerror or exc})")
    info = PhotoInfo(sha1=hashlib.sha1(data).hexdigest())
    try:
        img, info.mode = _decode_rgb(data)
    except DataError as exc:
        logger.info("unreadable photo %s: %s", path, exc)
        info.error = str(exc)
        return info
    except Exception as exc:  # one strange file must not stop the scan of a thousand
        logger.exception("unexpected failure decoding %s", path)
        info.error = f"file could not be read ({type(exc).__name__}: {exc}): remove it"
        return info
    info.width, info.height = img.size
    info.phash = perceptual_hash(img)
    info.readable = True
    return info


# ---------------------------------------------------------------- zip archives


def open_source(path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> Path:
    """The dataset folder for `path`: a folder as is, a .zip safely extracted into the workspace."""
    source = Path(path).expanduser()
    if not source.exists():
        raise DataError(f"{source} does not exist: check the path and try again")
    if source.is_dir():
        return _dataset_root(source.resolve())
    if source.suffix.lower() == ".csv":  # a path,label table (core.data.labelled)
        return source.resolve()
    if source.suffix.lower() != ".zip":
        raise DataError(f"{source.name} is a file, not a folder or a .zip archive: choose the folder of class folders")
    return _dataset_root(_extract_zip(source.resolve(), workspace))


def _extract_zip(archive: Path, workspace) -> Path:
    destination = subdir("datasets", workspace) / f"{archive.stem}-{_file_sha1(archive)[:10]}"
    if destination.is_dir():  # complete: extraction only ever renames a finished temp folder
        return destination
    try:
        with zipfile.ZipFile(archive) as zf:
            members = _safe_members(zf, archive.name)
            require_free(destination.parent, sum(i.file_size for i in members), f"unpacking {archive.name}")
            temp = Path(tempfile.mkdtemp(prefix=".extract-", dir=destination.parent))
            try:
                for info in members:
                    _extract_member(zf, info, temp)
                _publish(temp, destination)
            finally:
                shutil.rmtree(temp, ignore_errors=True)  # already renamed away on success
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error) as exc:
        raise DataError(f"{archive.name} is not a valid zip archive ({exc}): re-create it or choose the folder instead") from None
    except RuntimeError as exc:  # zipfile: "File ... is encrypted, password required for extraction"
        if "password" in str(exc).lower() or "encrypted" in str(exc).lower():
            raise DataError(_password_message(archive.name)) from None
        raise
    return destination


def _publish(temp: Path, destination: Path) -> None:
    try:
        os.rename(temp, destination)
    except OSError:
        if not destination.is_dir():  # another process finishing first is fine; anything else is not
            raise


def _file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe_members(zf: zipfile.ZipFile, archive_name: str) -> list[zipfile.ZipInfo]:
    """The members worth extracting; DataError for anything that could escape or explode."""
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise DataError(f"{archive_name} holds {len(infos):,} files, more than the {MAX_ZIP_MEMBERS:,} allowed: split it into smaller archives")
    total = sum(info.file_size for info in infos)
    if total > MAX_ZIP_UNCOMPRESSED:
        raise DataError(f"{archive_name} would unpack to {total / 1024**3:.1f} GiB, more than the {MAX_ZIP_UNCOMPRESSED / 1024**3:.0f} GiB allowed: use a smaller archive or a folder")
    packed = sum(info.compress_size for info in infos)
    if total > ZIP_TOTAL_MIN_SIZE and total > ZIP_TOTAL_RATIO * max(packed, 1):
        raise DataError(f"{archive_name} looks like a zip bomb: its {packed / 1024**2:.1f} MB would unpack to "
                        f"{total / 1024**2:.0f} MB ({total / max(packed, 1):.0f} times larger; photos barely "
                        "compress); re-create the archive from real photos")
    if any(info.flag_bits & 0x1 for info in infos):
        raise DataError(_password_message(archive_name))
    for info in infos:
        _check_member(info, archive_name)
    return [info for info in infos if not _is_ignored_path(info.filename)]


def _password_message(archive_name: str) -> str:
    return (f"{archive_name} is password-protected: Latih cannot open it; unzip it yourself with the password "
            "and choose the folder, or make the zip again without a password")


def _check_member(info: zipfile.ZipInfo, archive_name: str) -> None:
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in name.split("/"):
        raise DataError(f"{archive_name} is unsafe: it contains the path '{info.filename}' that points outside the archive; re-create the zip from the dataset folder")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DataError(f"{archive_name} is unsafe: '{info.filename}' is a symbolic link; re-create the zip without links")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > ZIP_BOMB_MIN_SIZE and ratio > ZIP_BOMB_RATIO:
        raise DataError(f"{archive_name} looks like a zip bomb: '{info.filename}' expands {ratio:.0f} times; re-create the archive from real photos")


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path) -> None:
    target = (root / info.filename.replace("\\", "/")).resolve()
    if root.resolve() not in target.parents:  # belt and braces after _check_member
        raise DataError(f"refusing to extract '{info.filename}' outside the dataset folder")
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    # zipfile stops at the declared size and checks the CRC, so a lying header cannot overflow.
    try:
        with zf.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except OSError as exc:  # the caller removes the whole temp folder
        raise_if_disk_full(exc, root.parent, info.file_size)
        raise


# ---------------------------------------------------------------- folder layout


def _is_ignored_path(relative: str) -> bool:
    return any(_is_ignored_name(part) for part in relative.replace("\\", "/").split("/") if part)


def _is_ignored_name(name: str) -> bool:
    return name.startswith(".") or name.lower() in IGNORED_NAMES


def _visible_dirs(folder: Path) -> list[Path]:
    """Subfolders that can hold photos: not hidden, not OS debris, never a Latih workspace."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _is_ignored_name(p.name) and not _skip_workspace(p))


def _skip_workspace(folder: Path) -> bool:
    if is_workspace(folder):
        logger.info("not scanning %s: it is a Latih workspace", folder)
        return True
    return False


def _visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not _is_ignored_name(p.name))


def _dataset_root(folder: Path) -> Path:
    """Step into a lone wrapper folder (`data.zip` -> `data/`) that itself holds folders."""
    while True:
        children = _visible_dirs(folder)
        if (len(children) == 1 and not _visible_files(folder)
                and children[0].name.lower() not in SPLIT_NAMES and _visible_dirs(children[0])):
            folder = children[0]
        else:
            return folder


def _class_folders(root: Path) -> list[tuple[str, str, Path]]:
    """(split, label, folder) for every class folder; split is "" for an unsplit dataset."""
    children = _visible_dirs(root)
    split_dirs = [c for c in children if c.name.lower() in SPLIT_NAMES]
    if not split_dirs:
        found = [("", c.name, c) for c in children]
    else:
        others = [c.name for c in children if c not in split_dirs]
        if others:
            raise DataError(f"{root} mixes split folders ({', '.join(c.name for c in split_dirs)}) with other folders "
                            f"({', '.join(others)}): put every class folder inside train/ and val/, or use no split folders")
        found = [(SPLIT_NAMES[s.name.lower()], c.name, c) for s in split_dirs for c in _visible_dirs(s)]
    if not found:
        raise DataError(f"{root} holds no class folders: put the photos in one subfolder per class "
                        f"(for example {root.name}/healthy/ and {root.name}/diseased/)")
    return found


def _files_under(folder: Path) -> list[Path]:
    files = []
    for current, dirs, names in os.walk(folder):  # does not follow folder links: no loops
        dirs[:] = sorted(d for d in dirs if not _is_ignored_name(d) and not _skip_workspace(Path(current) / d))
        files.extend(Path(current) / n for n in sorted(names) if not _is_ignored_name(n))
    return files


# ---------------------------------------------------------------- scan + cache


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
    for split, label, folder in _class_folders(root):
        files = _files_under(folder)
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
        return f"{SCAN_VERSION}:{MAX_PIXELS}"

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
