"""One line about the machine the training runs on (core.device.device_info, cached briefly)."""
from __future__ import annotations

import logging
import time
from typing import Any

from ui.i18n import t

log = logging.getLogger(__name__)
_cache: dict[str, Any] = {"at": 0.0, "info": None}


def device_info() -> dict[str, Any]:
    now = time.monotonic()
    if _cache["info"] is None or now - _cache["at"] > 2.0:
        from core.device import device_info as engine_device_info

        _cache.update(at=now, info=engine_device_info())
    return _cache["info"]


def device_summary() -> str:
    info = device_info()
    util = info.get("utilisation_pct")
    fields = dict(name=info.get("name") or "?", used=_gb(info.get("memory_used_mb")),
                  total=_gb(info.get("memory_total_mb")), util="–" if util is None else f"{float(util):.0f}",
                  threads=info.get("threads") or "?")
    kind = str(info.get("type", "cpu"))
    return t("device.gpu" if kind == "cuda" else "device.mps" if kind == "mps" else "device.cpu", **fields)


def _gb(mb: Any) -> str:
    try:
        return f"{float(mb) / 1024:.1f}"
    except (TypeError, ValueError):
        return "–"
