"""All user-facing text of the app, in English and Bahasa Indonesia.

Catalogues live in `assets/i18n/{en,id}.json` as flat `{"dotted.key": "text"}` maps.
`t(key, **fmt)` returns the text in the current language (session state `lang`), falling
back to English, then to the key itself (logged) so a missing text never breaks a page.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

LANGS: dict[str, str] = {"en": "English", "id": "Bahasa Indonesia"}
DEFAULT_LANG = "en"
from core.i18n import CATALOGUE_DIR  # noqa: F401  (one home of the catalogues)
from core.i18n import fill, template
SESSION_KEY = "lang"


def catalogue(lang: str) -> dict[str, str]:
    """The one catalogue loader, shared with the engine (core.i18n)."""
    from core.i18n import catalogue as load

    return load(lang)


def normalise(lang: Any) -> str:
    """A supported language code from anything (query param, project file), else English."""
    if isinstance(lang, list):
        lang = lang[-1] if lang else None
    lang = str(lang or "").strip().lower()
    return lang if lang in LANGS else DEFAULT_LANG


_last_lang = DEFAULT_LANG  # language of the latest script run, for calls made outside one


def get_lang() -> str:
    """The language of this browser session (session state), or of the latest run when called
    outside a script run (AppTest evaluates format_func callbacks after the run)."""
    global _last_lang
    try:
        import streamlit as st
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        if get_script_run_ctx(suppress_warning=True) is None:
            return _last_lang
        _last_lang = normalise(st.session_state.get(SESSION_KEY, DEFAULT_LANG))
        return _last_lang
    except Exception as exc:  # no Streamlit at all (plain scripts)
        log.debug("no streamlit session (%s); using %s", exc, _last_lang)
        return _last_lang


def t(key: str, lang: str | None = None, **fmt: Any) -> str:
    """The text of `key`; every interpolated string is escaped (ui.safe_text.md), because the
    result is shown as Markdown and the values are often names from the user's files."""
    from core.i18n import local_number
    from ui.safe_text import md

    code = normalise(lang) if lang else get_lang()
    return _text(key, code, {k: md(local_number(_in_page_lang(v, code), code)) if isinstance(v, str) else v
                             for k, v in fmt.items()})


def t_plain(key: str, lang: str | None = None, **fmt: Any) -> str:
    """Like t, for places that show plain text (select options, table headers, chart labels)."""
    from core.i18n import local_number
    from ui.safe_text import plain

    code = normalise(lang) if lang else get_lang()
    return _text(key, code, {k: plain(local_number(_in_page_lang(v, code), code)) if isinstance(v, str) else v
                             for k, v in fmt.items()})


def _in_page_lang(value: str, lang: str) -> str:
    """A core Msg given as a value (why a run is damaged) in the page's language, not the
    process's (a Msg is a str whose own value is the process's text); other strings as they are."""
    from core.i18n import Msg

    return say(value, lang, plain=True) if isinstance(value, Msg) else value


def _text(key: str, lang: str | None, fmt: dict[str, Any]) -> str:
    text = template(key, normalise(lang) if lang else get_lang())
    return text if text == key else fill(key, text, fmt)


def has(key: str) -> bool:
    return key in catalogue(DEFAULT_LANG)


def say(value: Any, lang: str | None = None, plain: bool = False) -> str:
    """Engine text (a core.i18n.Msg, or its JSON form from a run folder) in the page's language.

    Its parameters (names from the user's files) are escaped for Markdown unless `plain`; any
    other value is shown as its (escaped) text."""
    from core import i18n as core_i18n
    from ui.safe_text import md
    from ui.safe_text import plain as plain_text

    escape = plain_text if plain else md
    message = value if isinstance(value, core_i18n.Msg) else core_i18n.from_json(value)
    if message is None:
        return escape(str(value)) if value is not None else ""
    lang = normalise(lang) if lang else get_lang()
    return _text(message.key, lang, {k: _param(v, lang, escape) for k, v in message.params.items()})


def _param(value: Any, lang: str, escape) -> Any:
    from core import i18n as core_i18n

    if isinstance(value, core_i18n.Msg):
        return _text(value.key, lang, {k: _param(v, lang, escape) for k, v in value.params.items()})
    return escape(core_i18n.local_number(value, lang)) if isinstance(value, str) else value


# status.json messages written as plain English by older runs (before message_i18n existed)
_OLD_STATUS_MESSAGES = {"starting": "phase.starting", "preparing the photos": "phase.preparing"}


def say_status(status: dict, plain: bool = False) -> str:
    """A run's (or a job's) one-line status message in the page's language."""
    coded = status.get("message_i18n")
    if coded:
        return say(coded, plain=plain)
    message = str(status.get("message") or "")
    if message in _OLD_STATUS_MESSAGES:
        return t(_OLD_STATUS_MESSAGES[message])
    return say(message, plain=plain)


def num(text: str) -> str:
    """Numbers in a value shown in a table ("28.0% – 72.0%") the way of the page's language."""
    from core.i18n import local_numbers_in

    return local_numbers_in(str(text), get_lang())
