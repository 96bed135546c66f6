"""Text from the engine in the user's language, from the same catalogue as the app.

The catalogues are `assets/i18n/{en,id}.json` (flat `{"dotted.key": "text"}` maps). The engine
never decides the language of a page: it returns a `Msg`, a `str` whose value is the text in the
process's language (`LATIH_LANG`, else English, so logs, JSON and old callers keep working) and
which also carries its catalogue key and parameters, so the app renders it again in the language
of each browser session (`render(msg, "id")`). A Msg written to JSON keeps its key with
`to_json()` / `from_json()` (status.json, evaluation.json).

Parameters may themselves be Msgs (a list of names "a.jpg, b.jpg and 3 more"): they are
rendered in the same language.
"""
from __future__ import annotations

import json
import logging
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LANGS = ("en", "id")
DEFAULT_LANG = "en"
ENV = "LATIH_LANG"
CATALOGUE_DIR = Path(__file__).resolve().parent.parent / "assets" / "i18n"


@lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, str]:
    path = CATALOGUE_DIR / f"{lang}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.error("missing i18n catalogue %s", path)
        return {}


def normalise(lang: Any) -> str:
    lang = str(lang or "").strip().lower()[:2]
    return lang if lang in LANGS else DEFAULT_LANG


def process_lang() -> str:
    """The language of this process: `LATIH_LANG` (the CLI, a background job), else English."""
    return normalise(os.environ.get(ENV))


_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?")


def local_number(value: Any, lang: str) -> Any:
    """A number written the English way ("1,234.5", "0.99") in the way of `lang`: Bahasa
    Indonesia groups with "." and writes decimals with "," ("1.234,5", "0,99"). Other values
    (names, paths, versions) are returned as they are."""
    if lang != "id" or not isinstance(value, str) or not _NUMBER.fullmatch(value):
        return value
    return value.replace(",", "\0").replace(".", ",").replace("\0", ".")


_NUMBER_IN_TEXT = re.compile(r"(?<![\w.,])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w.]*\w)")


def local_numbers_in(text: str, lang: str) -> str:
    """Every number in `text` ("28.0% – 72.0%") written the way of `lang` (see local_number)."""
    if lang != "id":
        return text
    return _NUMBER_IN_TEXT.sub(lambda m: local_number(m.group(0), lang), text)


def template(key: str, lang: str) -> str:
    """The catalogue text of `key` in `lang`, English when the language lacks it, the key itself
    (logged) when no catalogue has it. One lookup for the engine and the pages."""
    text = catalogue(lang).get(key)
    if text is None:
        text = catalogue(DEFAULT_LANG).get(key)
    if text is None:
        log.warning("missing i18n key %r", key)
        return key
    return text


def fill(key: str, text: str, values: dict[str, Any]) -> str:
    """`text` formatted with `values`; the bare text (logged) when they don't fit it."""
    if not values:
        return text
    try:
        return text.format(**values)
    except (KeyError, IndexError, ValueError):
        log.warning("bad format arguments for i18n key %r: %s", key, sorted(values))
        return text


def tr(key: str, lang: str | None = None, **params: Any) -> str:
    """The plain text of `key` in `lang` (default: the process's), English when the language lacks it."""
    lang = normalise(lang) if lang else process_lang()
    text = template(key, lang)
    if text == key or not params:
        return text
    return fill(key, text, {k: local_number(render(v, lang), lang) for k, v in params.items()})


class Msg(str):
    """A catalogue text: `str(msg)` is the process-language text, `msg.key`/`msg.params` rebuild it."""

    key: str
    params: dict

    def __new__(cls, key: str, **params: Any) -> "Msg":
        self = super().__new__(cls, tr(key, **params))
        self.key, self.params = key, params
        return self

    @classmethod
    def english(cls, key: str, **params: Any) -> "Msg":
        """A Msg whose plain value is English whatever LATIH_LANG says: for text that is also
        data (a photo's read error kept in the scan table and its cache, matched by prefix)."""
        self = str.__new__(cls, tr(key, DEFAULT_LANG, **params))
        self.key, self.params = key, params
        return self

    def __reduce__(self):  # pickling (st.cache_data) keeps the key and the parameters
        return (_rebuild, (self.key, self.params))

    def __deepcopy__(self, memo):  # dataclasses.asdict deep-copies: keep it a Msg
        return self

    def in_lang(self, lang: str) -> str:
        return tr(self.key, lang, **self.params)

    def to_json(self) -> dict:
        return {"key": self.key, "params": {k: v.to_json() if isinstance(v, Msg) else _plain(v)
                                            for k, v in self.params.items()}}


def _rebuild(key: str, params: dict) -> Msg:
    return Msg(key, **params)


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, bool)) or value is None else str(value)


def msg(key: str, **params: Any) -> Msg:
    return Msg(key, **params)


def from_json(data: Any) -> Msg | None:
    """A Msg from `Msg.to_json()` output, None for anything else."""
    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        return None
    params = {k: (from_json(v) or v) if isinstance(v, dict) else v for k, v in (data.get("params") or {}).items()}
    return Msg(data["key"], **params)


def render(value: Any, lang: str | None = None) -> str:
    """A Msg (or its JSON form) in `lang`; anything else as its plain text."""
    if isinstance(value, Msg):
        return value.in_lang(lang or process_lang())
    if isinstance(value, dict):
        rebuilt = from_json(value)
        if rebuilt is not None:
            return rebuilt.in_lang(lang or process_lang())
    return str(value)


def names(items, shown: int = 3) -> Msg:
    """'a.jpg, b.jpg, c.jpg' or 'a.jpg, b.jpg, c.jpg and 10 more' in the catalogue's words."""
    items = [str(i) for i in items]
    listed = ", ".join(items[:shown])
    if len(items) > shown:
        return Msg("core.names_more", names=listed, n=len(items) - shown)
    return Msg("core.names", names=listed)


def joined(messages: list) -> Msg:
    """Several Msgs as one ("a; b; c"), each rendered in the language of the whole."""
    out = messages[0]
    for nxt in messages[1:]:
        out = Msg("core.joined", first=out, then=nxt)
    return out


def number(n: int) -> str:
    """1,234 in English; numbers stay digits, grouping is shown the English way in both languages."""
    return f"{n:,}"
