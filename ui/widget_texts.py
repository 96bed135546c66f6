"""Streamlit's own texts inside the file uploader and the camera, in the page's language.

st.file_uploader and st.camera_input take our label, help and label_visibility, but draw some
texts of their own in English that no argument changes: the uploader's "Upload" button and its
size line ("1GB per file • JPG, PNG"), the camera's "Take Photo" / "Clear photo" buttons and
"This app would like to use your camera. Learn how to allow access.". In a language other than
English, `file_uploader()` and `camera_input()` below add a small stylesheet scoped to the
widget's key that hides those texts and draws the catalogue's (`widget.*`) in their place
(CSS `content`; the element stays the same, so clicks, keyboard and drag-and-drop work as
before). What remains English: "Uploading..." (shown for a moment while a photo is sent), the
browser's own camera permission prompt and the "x" of a listed file, which has no text.
"""
from __future__ import annotations

import json
import re

import streamlit as st

from ui.i18n import get_lang, t_plain


def _css_text(text: str) -> str:
    """A CSS string literal (JSON's escaping is valid CSS for these characters)."""
    return json.dumps(text.replace("\n", " "), ensure_ascii=False)


def _scope(key: str) -> str:
    return ".st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", key.strip())


def _style(css: str) -> None:
    st.html(f"<style>{css}</style>")


def _size_line(types) -> str:
    limit_mb = int(st.get_option("server.maxUploadSize") or 200)
    size = f"{limit_mb // 1024}GB" if limit_mb % 1024 == 0 else f"{limit_mb}MB"
    names = sorted({str(t).lstrip(".").upper() for t in (types or [])} - {"JPEG", "TIF"})
    return t_plain("widget.size_line", size=size, types=", ".join(names)) if names else \
        t_plain("widget.size_line_any", size=size)


def uploader_css(key: str, types) -> str:
    scope = _scope(key)
    button = f'{scope} [data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"] p'
    size = f'{scope} [data-testid="stFileUploaderDropzoneInstructions"] span'
    return (f"{button}{{font-size:0 !important}}"
            f"{button}::after{{content:{_css_text(t_plain('widget.upload'))};font-size:0.875rem}}"
            f"{size}{{font-size:0 !important}}"
            f"{size}::after{{content:{_css_text(_size_line(types))};font-size:0.875rem}}")


def camera_css(key: str) -> str:
    scope = _scope(key)
    take = f'{scope} button[data-testid="stCameraInputButton"]:not(:has(*))'
    clear = f'{scope} button[data-testid="stCameraInputButton"]:has(*)'
    ask = f'{scope} [data-testid="stCameraInputWebcamComponent"] p'
    return (f"{take}{{font-size:0 !important}}"
            f"{take}::after{{content:{_css_text(t_plain('widget.take_photo'))};font-size:1rem}}"
            f"{clear}{{font-size:0 !important}}"
            f"{clear}::after{{content:{_css_text(t_plain('widget.clear_photo'))};font-size:1rem}}"
            f"{ask}{{font-size:0 !important}}"
            f"{ask}::before{{content:{_css_text(t_plain('widget.camera_ask'))};font-size:1rem}}"
            f"{ask} a::after{{content:{_css_text(t_plain('widget.camera_how'))};font-size:1rem}}")


def file_uploader(label: str, *, key: str, type=None, **kwargs):
    """st.file_uploader with its own texts in the page's language (English: untouched)."""
    if get_lang() != "en":
        _style(uploader_css(key, type))
    return st.file_uploader(label, type=type, key=key, **kwargs)


def camera_input(label: str, *, key: str, **kwargs):
    """st.camera_input with its own texts in the page's language (English: untouched)."""
    if get_lang() != "en":
        _style(camera_css(key))
    return st.camera_input(label, key=key, **kwargs)
