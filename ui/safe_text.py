"""User-controlled names (class, file, folder, project names, and engine messages that quote
them) shown as plain text, never as Markdown.

Streamlit renders Markdown in st.markdown/caption/error/warning/info/success/toast, button,
tab and expander labels and image captions: a class folder named `![t](http://host/x.png)`
would make the browser fetch that host, `[click](...)` would be a live link, and
`:red[...]`, `$x^2$`, `**bold**` would be drawn. `md(text)` backslash-escapes every ASCII
punctuation character that can start Markdown there (CommonMark allows a backslash before
any of them, so the text reads the same; plain `early_blight` or `a-b.png` stay as they are),
drops bidirectional-override characters (which can make `gpj.exe` look like
`exe.jpg`) and folds line breaks, so the text is shown exactly as written.
`ui.i18n.t` applies it to every value it interpolates.
"""
from __future__ import annotations

import re
from typing import Any

# Bidi embeddings/overrides/isolates and marks: invisible, and they reorder what is shown.
BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c]")
_BREAKS = re.compile(r"[\r\n\t\f\v\u2028\u2029]+")
# Characters that start Markdown anywhere in a line: links and images ([ ] ( ) !), code, emphasis,
# strike-through, LaTeX ($), Streamlit's :colour[...] / :icon: directives (:), HTML and entities
# (< > &), autolinks (: @), tables (|), headings (#). Always escaped.
_ALWAYS = re.compile(r"([\\`*\[\]()!<>$:~|{}#@&^])")
# "_" only makes emphasis at a word boundary; intraword (early_blight) it is plain text.
_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_WWW = re.compile(r"(?i)\b(www)\.")  # GFM turns www.host into a link
_LEADING = re.compile(r"^(\s*)([-+=]|\d+(?=[.)](\s|$)))")  # list items, setext rules at a line start


def plain(text: Any) -> str:
    """The text without bidi controls and line breaks (for places that are already plain text)."""
    return _BREAKS.sub(" ", BIDI_CONTROLS.sub("", str(text)))


def md(text: Any) -> str:
    """`text` escaped so that Streamlit's Markdown shows it literally."""
    out = _ALWAYS.sub(r"\\\1", plain(text))
    out = _UNDERSCORE.sub(r"\\_", out)
    out = _WWW.sub(r"\1\\.", out)
    match = _LEADING.match(out)
    if match:
        if match.group(2)[0].isdigit():  # "1. x" would be a list: escape the dot
            end = match.end()
            out = out[:end] + "\\" + out[end:]
        else:
            out = out[:match.start(2)] + "\\" + out[match.start(2):]
    return out


def plotly(text: Any) -> str:
    """A label for plotly, which reads a small HTML subset (<a href>, <b>) in its texts."""
    return plain(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


__all__ = ["md", "plain", "plotly", "BIDI_CONTROLS"]
