"""Photos left out on purpose: read a list of them (`latih train --exclude list.txt`).

One path per line, absolute or relative to the dataset folder; blank lines and lines that
start with # are ignored. A pairs CSV written by `latih data check --pairs` with a column
`leave_out` (file paths) is read too, so a reviewed table can be fed back as it is.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

from core.errors import DataError, os_reason
from core.i18n import Msg

logger = logging.getLogger(__name__)


def read_list(path: str | Path, root: str | Path) -> tuple[str, ...]:
    """Absolute paths of the photos listed in `path` (see the module docstring), sorted."""
    source = Path(path).expanduser()
    try:
        text = source.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(Msg("err.exclude.unreadable", source=str(source), reason=os_reason(exc))) from None
    lines = text.splitlines()
    if lines and "leave_out" in next(csv.reader([lines[0]])):
        entries = [row.get("leave_out", "") for row in csv.DictReader(lines)]
    else:
        entries = lines
    root = Path(root)
    out = set()
    for entry in entries:
        entry = (entry or "").strip()
        if not entry or entry.startswith("#"):
            continue
        file = Path(entry).expanduser()
        out.add(str(file if file.is_absolute() else (root / file).resolve()))
    logger.info("exclude list %s: %d photos", source, len(out))
    return tuple(sorted(out))
