"""Finds text shown in Bahasa Indonesia mode that is English or that does not come from id.json.

Used by tests/test_bahasa_everywhere.py (AppTest over every page, and the CLI with LATIH_LANG=id).

A shown string is wrong when
* it is, as a whole, the English catalogue value of a key whose Bahasa value differs, or
* one of its words is in no Bahasa catalogue value (so the text came from somewhere else: an
  English string in core, a hard-coded label, a pandas "None"), once user data (class names, file
  names, folder paths, run ids, backbone names), numbers and ALLOWED words are set aside.

`strings_of_app(at)` collects every string an AppTest run rendered: text elements, widget
labels, help and options, tab and expander labels, image captions, dataframe headers and cells
(a missing value counts as "None", the text Streamlit shows), and a Plotly chart's title, axis
titles, legend, trace names, hover templates, annotations and category labels.
"""
from __future__ import annotations

import json
import re
import string
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EN = json.loads((REPO / "assets" / "i18n" / "en.json").read_text(encoding="utf-8"))
ID = json.loads((REPO / "assets" / "i18n" / "id.json").read_text(encoding="utf-8"))

# Words the same in both languages that may appear in Bahasa text although no catalogue value
# has them, each with its reason. Keep this short: a word that a catalogue value could hold
# belongs in the catalogue.
ALLOWED = {
    "latih": "the product's name",
    "english": "the language switch names each language in its own language",
    "indonesia": "the language switch: 'Bahasa Indonesia' (bahasa is in id.json)",
    "px": "unit (pixels)",
    "mb": "unit (megabytes)", "gb": "unit (gigabytes)",
    "s": "unit (seconds), also 's' of a plural file name split by the tokeniser",
    "onnx": "file format name", "torchscript": "file format name", "csv": "file format name",
    "zip": "file format name", "png": "file extension", "jpg": "file extension", "jpeg": "file extension",
    "bmp": "file format", "gif": "file format", "heic": "file format", "heif": "file format",
    "tiff": "file format", "webp": "file format",
    "e": "scientific notation of a number (1e-4)",
}

_FIELD = re.compile(r"\{[^{}]*\}")
_WORD = re.compile(r"[^\W\d_]+")
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:/[\w.\-+~@%]+)+/?")
_URL = re.compile(r"https?://\S+")
_ICON = re.compile(r":material/[a-z_]+:|:[a-z]+(?:-badge)?\[")  # icons and :color[ / :color-badge[ openers


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def _template_words(text: str) -> set[str]:
    return _words(_FIELD.sub(" ", text))


ID_WORDS = set().union(*(_template_words(v) for v in ID.values()))
# whole English values that must not be shown (keys whose Bahasa differs)
EN_VALUES = {v.strip(): k for k, v in EN.items() if v.strip() != ID.get(k, "").strip() and not _FIELD.search(v)}


def user_words(*names) -> set[str]:
    """The words of user data (class names, file names, folders, run ids) and backbone names."""
    from core.backbones import REGISTRY

    words: set[str] = set()
    for name in names:
        words |= _words(str(name))
    for spec in REGISTRY.values():
        words |= _words(spec.name) | _words(spec.display_name) | _words(spec.family)
    return words


def problems(text: str, allowed_words: set[str]) -> list[str]:
    """Why `text` is not Bahasa from the catalogue ([] when it is). Of a stylesheet, only the
    texts it draws (CSS `content:"..."`, ui/widget_texts.py) are text."""
    text = re.sub(r"<style>(.*?)</style>", lambda m: " ".join(json.loads(f'"{s}"') for s in
                  re.findall(r'content:"((?:[^"\\]|\\.)*)"', m.group(1))), str(text), flags=re.S).strip()
    if not text:
        return []
    if text in EN_VALUES:
        return [f"English catalogue value of {EN_VALUES[text]!r}"]
    cleaned = _PATH.sub(" ", _URL.sub(" ", _ICON.sub(" ", text)))
    stray = sorted(w for w in _words(cleaned) if w not in ID_WORDS and w not in ALLOWED and w not in allowed_words)
    return [f"not in id.json: {', '.join(stray)}"] if stray else []


def report(strings: list[tuple[str, str]], allowed_words: set[str]) -> list[str]:
    """'where: text -> why' for every wrong string (each distinct text once)."""
    seen, bad = set(), []
    for where, text in strings:
        if text in seen:
            continue
        seen.add(text)
        for why in problems(text, allowed_words):
            bad.append(f"{where}: {text[:160]!r} -> {why}")
    return bad


# ------------------------------------------------------------------ AppTest extraction
TEXT_FIELDS = {"body", "label", "help", "placeholder", "options", "caption", "text", "title", "captions",
               "default_value"}
SKIP_FIELDS = {"id", "form_id", "key", "src", "url", "data", "value", "delta", "format", "icon",
               "page_script_hash", "page_name", "theme", "selection_mode", "use_container_width"}


def _proto_strings(message, where: str, out: list) -> None:
    for field, value in message.ListFields():
        name = field.name
        if name in SKIP_FIELDS:
            continue
        if field.type == field.TYPE_MESSAGE:
            items = [value] if hasattr(value, "ListFields") else list(value)
            for item in items:
                _proto_strings(item, where, out)
        elif field.type == field.TYPE_STRING and name in TEXT_FIELDS:
            items = [value] if isinstance(value, str) else list(value)
            out.extend((f"{where}.{name}", s) for s in items if s)


def _figure_strings(spec: str, where: str, out: list) -> None:
    fig = json.loads(spec)
    layout = fig.get("layout", {})

    def title(obj):
        t = obj.get("title") if isinstance(obj, dict) else None
        return t.get("text") if isinstance(t, dict) else t

    out.append((f"{where}.title", title(layout) or ""))
    for name, axis in layout.items():
        if name.startswith(("xaxis", "yaxis")) and isinstance(axis, dict):
            out.append((f"{where}.{name}.title", title(axis) or ""))
            out.extend((f"{where}.{name}.ticktext", str(s)) for s in axis.get("ticktext", []) or [])
    out.append((f"{where}.legend", title(layout.get("legend", {})) or ""))
    out.extend((f"{where}.annotation", str(a.get("text", ""))) for a in layout.get("annotations", []))
    for trace in fig.get("data", []):
        out.append((f"{where}.trace.name", str(trace.get("name") or "")))
        hover = re.sub(r"%\{[^}]*\}|<[^>]+>", " ", str(trace.get("hovertemplate") or ""))
        out.append((f"{where}.trace.hover", hover))
        for axis in ("x", "y", "text", "labels"):
            values = trace.get(axis)
            if isinstance(values, list):
                out.extend((f"{where}.trace.{axis}", v) for v in values if isinstance(v, str))
            elif isinstance(values, str) and axis in ("text",):
                out.append((f"{where}.trace.{axis}", values))


def _frame_strings(frame, where: str, out: list) -> None:
    import pandas as pd

    out.extend((f"{where}.column", str(c)) for c in frame.columns)
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            for v in values:
                if v is None or (isinstance(v, float) and v != v):
                    out.append((f"{where}.cell[{column}]", "None"))
                elif isinstance(v, str):
                    out.append((f"{where}.cell[{column}]", v))
                elif isinstance(v, (list, tuple)):
                    out.extend((f"{where}.cell[{column}]", str(x)) for x in v)


def strings_of_app(at, page: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []

    def walk(node, path: str) -> None:
        kind = getattr(node, "type", type(node).__name__)
        where = f"{page}/{kind}"
        proto = getattr(node, "proto", None)
        if kind in ("arrow_data_frame", "dataframe", "table"):
            _frame_strings(node.value, where, out)
        elif kind == "plotly_chart":
            _figure_strings(proto.spec, where, out)
        elif proto is not None and hasattr(proto, "ListFields"):
            _proto_strings(proto, where, out)
        for child in (getattr(node, "children", None) or {}).values():
            walk(child, path)

    walk(at._tree, page)
    return out
