"""Thumbnails and photo grids (small, cached, never the full-size photo sent to the browser)."""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import streamlit as st

from core.errors import LatihError
from ui.i18n import t
from ui.safe_text import md

log = logging.getLogger(__name__)
THUMB = 192


@st.cache_data(max_entries=2000, show_spinner=False)
def thumbnail(path: str, size: int = THUMB) -> np.ndarray | None:
    """A small RGB array of the photo, or None when it cannot be read."""
    from core.data.decode import load_image

    try:
        image = load_image(path)
    except (LatihError, OSError, ValueError) as exc:
        log.info("no thumbnail for %s: %s", path, exc)
        return None
    image.thumbnail((size, size))
    return np.asarray(image.convert("RGB"))


def photo_grid(paths: Sequence[str], captions: Sequence[str] | None = None, columns: int = 6,
               limit: int = 12) -> None:
    paths = list(paths)[:limit]
    if not paths:
        return
    cols = st.columns(columns)
    for i, path in enumerate(paths):
        with cols[i % columns]:
            thumb = thumbnail(path)
            caption = captions[i] if captions is not None else path.rsplit("/", 1)[-1]
            if thumb is None:
                st.caption(f":material/broken_image: {md(caption)}")
                st.caption(t("common.unreadable"))
            else:
                st.image(thumb, caption=md(caption), width="stretch")
