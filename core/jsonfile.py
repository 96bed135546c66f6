"""The one way Latih writes and reads the JSON files it owns (project.json, status.json,
meta.json, config.json, queue tickets, ...).

Writes are atomic and locked: the text goes to a temp file with a unique name in the same
folder, is flushed to disk, then `os.replace`d over the target, all while holding a
`filelock` lock on `<file>.lock`, so two writers (two browser tabs, the worker and a page)
never interleave and a reader never sees half a file. `update_json` is a locked
read-modify-write. A full disk becomes a plain `DiskFullError` and leaves no temp file.

Readers survive damage: `read_json` returns None (and logs) for a missing, truncated,
non-UTF-8 or non-object file; `read_json_checked` also says why, so a page can show the
file as damaged instead of hiding it.
"""
from __future__ import annotations

import contextlib
import json
import math
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock, Timeout

from core.diskspace import raise_if_disk_full, replace_durably
from core.errors import LatihError, os_reason
from core.i18n import Msg

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 30.0


class DamagedFile(LatihError):
    """A JSON file Latih owns cannot be read (not UTF-8, not JSON, not an object)."""


def lock_for(path: str | os.PathLike) -> FileLock:
    """The lock guarding `path` (a sibling `<name>.lock` file; re-entrant within a thread)."""
    path = Path(path)
    return FileLock(str(path.with_name(path.name + ".lock")), timeout=LOCK_TIMEOUT_S)


def json_safe(obj):
    """Plain JSON types; NaN/inf become None so the file is valid JSON everywhere."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy arrays and scalars
        return json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _dumps(data: Any) -> str:
    return json.dumps(json_safe(data), indent=2, sort_keys=True, default=str) + "\n"


def _write_unlocked(path: Path, data: Any) -> None:
    text = _dumps(data).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the files were always world-readable like any other
        with os.fdopen(fd, "wb") as handle:
            handle.write(text)
        # status.json and project.json are what survive a power cut: data, rename and the folder's
        # entry all reach the disk (core.diskspace.replace_durably)
        replace_durably(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # never leave a partial temp file behind (full disk, Ctrl-C)
        if isinstance(exc, OSError):
            raise_if_disk_full(exc, path.parent, len(text))
        raise


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Replace `path` with `data` as JSON, atomically and under the file's lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        _write_unlocked(path, data)


@contextlib.contextmanager
def _locked(path: Path):
    try:
        with lock_for(path):
            yield
    except Timeout:
        raise LatihError(Msg("err.file.locked", name=path.name, seconds=f"{LOCK_TIMEOUT_S:.0f}")) from None


def read_json_checked(path: str | os.PathLike) -> tuple[Any | None, Msg | None]:
    """(data, None), (None, None) when missing, or (None, why) when the file is damaged: why is
    a catalogue Msg ("is empty", "kosong") that completes a sentence naming the file, so a page
    says it in its own language (json_problem() adds the name)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, Msg("json.unreadable", reason=os_reason(exc))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, Msg("json.not_text")
    if not text.strip():
        return None, Msg("json.empty")
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        # exc.msg ("Expecting ',' delimiter") is the parser's own English, kept as a detail
        return None, Msg("json.invalid", line=exc.lineno, detail=exc.msg)


def json_problem(name: str, problem: Msg | None = None) -> Msg:
    """'<name> <problem>' as one Msg ("status.json is empty"); no problem = not a JSON object."""
    return Msg("json.named", name=name, problem=problem or Msg("json.not_object"))


def read_json(path: str | os.PathLike, default: Any = None, *, want: type | None = dict) -> Any:
    """The JSON in `path`, or `default` when it is missing or damaged (logged as a warning)."""
    data, problem = read_json_checked(path)
    if problem:
        log.warning("%s %s", path, problem)
        return default
    if data is None:
        return default
    if want is not None and not isinstance(data, want):
        log.warning("%s holds a %s, not a %s", path, type(data).__name__, want.__name__)
        return default
    return data


def update_json(path: str | os.PathLike, change: Callable[[dict], dict | None], *,
                default: dict | None = None) -> dict:
    """Locked read-modify-write: `change(data)` edits (or returns) the dict; the result is
    written atomically and returned. A damaged file starts from `default` (logged)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        data = read_json(path, None)
        data = dict(default or {}) if data is None else data
        result = change(data)
        data = data if result is None else result
        _write_unlocked(path, data)
    return data


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line (flushed), turning a full disk into a plain DiskFullError."""
    path = Path(path)
    line = json.dumps(record, default=float) + "\n"
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
    except OSError as exc:
        raise_if_disk_full(exc, path.parent, len(line))
        raise


__all__ = ["write_json_atomic", "read_json", "read_json_checked", "json_problem", "update_json", "append_jsonl", "lock_for",
           "DamagedFile", "LOCK_TIMEOUT_S"]
