"""Unpacking a .zip dataset safely: no path escapes, no links, no zip bombs, no half-written
folder (extraction renames a finished temp folder into `<workspace>/datasets/`).

Bounded memory at any size: the zip is read from disk member by member, each member streamed
to its file with shutil.copyfileobj (1 MiB at a time), never read whole; `progress(done, total,
bytes_done, bytes_total)` is called after each member, and `hashed(bytes_done, bytes_total)`
while the archive's SHA-1 (which names its folder) is read, HASH_CHUNK at a time. The real bounds are the free disk
(checked against the total uncompressed size before anything is written) and the ceilings below,
sized for a clinic's 50,000-photo set."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

from core.data.layout import is_ignored_path
from core.diskspace import raise_if_disk_full, require_free
from core.errors import DataError
from core.workspace import subdir
from core.i18n import Msg

logger = logging.getLogger(__name__)

MAX_ZIP_MEMBERS = 500_000  # 50,000 photos ten times over (plus folders)
MAX_ZIP_UNCOMPRESSED = 256 * 1024**3  # free disk is checked too: the usual bound
ZIP_BOMB_RATIO = 200
ZIP_BOMB_MIN_SIZE = 10 * 1024**2
# The whole archive: photos barely compress (ratio ~1), so a zip that unpacks to over
# ZIP_TOTAL_MIN_SIZE at more than ZIP_TOTAL_RATIO times its compressed size is a bomb, even
# when each member stays under ZIP_BOMB_MIN_SIZE.
ZIP_TOTAL_RATIO = 50
ZIP_TOTAL_MIN_SIZE = 64 * 1024**2
HASH_CHUNK = 8 * 1024**2  # a 5 GB zip is read for its SHA-1 in 640 steps, each one a progress call


# What zipfile raises for a damaged or truncated archive (a CRC mismatch, a cut-off member, a
# missing central directory). The caller's project keeps its old dataset: nothing is published.
_BROKEN = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error, struct.error)


def extract_zip(archive: Path, workspace, progress=None, hashed=None) -> Path:
    """The extracted dataset folder of `archive` (unpacked once; an archive's sha1 names it).

    `progress(members_done, members_total, bytes_done, bytes_total)`, when given, is called
    before the first member and after each one; `hashed(bytes_done, bytes_total)`, when given,
    while the archive is read for its SHA-1 (seconds for a zip of gigabytes). DataError for an unsafe, corrupt or truncated
    zip (nothing is left behind: the temp folder is removed), DiskFullError when it cannot fit."""
    destination = subdir("datasets", workspace) / f"{archive.stem}-{_file_sha1(archive, hashed)[:10]}"
    if destination.is_dir():  # complete: extraction only ever renames a finished temp folder
        return destination
    try:
        with zipfile.ZipFile(archive) as zf:
            members = _safe_members(zf, archive.name)
            require_free(destination.parent, sum(i.file_size for i in members), Msg("disk.what.unpack", name=archive.name))
            temp = Path(tempfile.mkdtemp(prefix=".extract-", dir=destination.parent))
            try:
                total_bytes, done_bytes = sum(i.file_size for i in members), 0
                if progress is not None:
                    progress(0, len(members), 0, total_bytes)
                for k, info in enumerate(members, 1):
                    try:
                        _extract_member(zf, info, temp)
                    except _BROKEN as exc:  # this member's bytes are damaged or cut off
                        logger.warning("%s: member %s unreadable: %r", archive.name, info.filename, exc)
                        raise DataError(Msg("err.zip.corrupt", name=archive.name, member=info.filename)) from None
                    done_bytes += info.file_size
                    if progress is not None:
                        progress(k, len(members), done_bytes, total_bytes)
                _publish(temp, destination)
            finally:
                shutil.rmtree(temp, ignore_errors=True)  # already renamed away on success
    except _BROKEN as exc:  # no readable table of contents: not a zip, or cut off before its end
        logger.warning("%s: not a readable zip: %r", archive.name, exc)
        raise DataError(Msg("err.zip.unreadable", name=archive.name)) from None
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


def _file_sha1(path: Path, hashed=None) -> str:
    digest, total, done = hashlib.sha1(), path.stat().st_size, 0
    with open(path, "rb") as handle:
        if hashed is not None:
            hashed(0, total)
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if hashed is not None:
                hashed(done, total)
    return digest.hexdigest()


def _safe_members(zf: zipfile.ZipFile, archive_name: str) -> list[zipfile.ZipInfo]:
    """The members worth extracting; DataError for anything that could escape or explode."""
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise DataError(Msg("err.zip.too_many", name=archive_name, n=f"{len(infos):,}", limit=f"{MAX_ZIP_MEMBERS:,}"))
    total = sum(info.file_size for info in infos)
    if total > MAX_ZIP_UNCOMPRESSED:
        raise DataError(Msg("err.zip.too_big", name=archive_name, size=f"{total / 1024**3:.1f}", limit=f"{MAX_ZIP_UNCOMPRESSED / 1024**3:.0f}"))
    packed = sum(info.compress_size for info in infos)
    if total > ZIP_TOTAL_MIN_SIZE and total > ZIP_TOTAL_RATIO * max(packed, 1):
        raise DataError(Msg("err.zip.bomb", name=archive_name, packed=f"{packed / 1024**2:.1f}", total=f"{total / 1024**2:.0f}", ratio=f"{total / max(packed, 1):.0f}"))
    if any(info.flag_bits & 0x1 for info in infos):
        raise DataError(_password_message(archive_name))
    for info in infos:
        _check_member(info, archive_name)
    return [info for info in infos if not is_ignored_path(info.filename)]


def _password_message(archive_name: str) -> str:
    return Msg("err.zip.password", name=archive_name)


def _check_member(info: zipfile.ZipInfo, archive_name: str) -> None:
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in name.split("/"):
        raise DataError(Msg("err.zip.outside", name=archive_name, member=info.filename))
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DataError(Msg("err.zip.symlink", name=archive_name, member=info.filename))
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > ZIP_BOMB_MIN_SIZE and ratio > ZIP_BOMB_RATIO:
        raise DataError(Msg("err.zip.bomb_member", name=archive_name, member=info.filename, ratio=f"{ratio:.0f}"))


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path) -> None:
    target = (root / info.filename.replace("\\", "/")).resolve()
    if root.resolve() not in target.parents:  # belt and braces after _check_member
        raise DataError(Msg("err.zip.refuse_outside", member=info.filename))
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

