"""Field mode's password (see core/field.py): asked once per browser, before any page.

Only when `latih serve --lan` started the app (it puts a salted hash in the environment);
a plain `streamlit run app.py` on localhost has no password.

After the right password the browser gets a signed cookie (`core.field.session_token`: an
expiry and its HMAC, never the password), Secure and SameSite=Strict, for 12 hours, so a
reload or a new tab does not ask again. Streamlit gives a page no way to send a Set-Cookie
header, so the cookie is written by a one-line script on the page and cannot be HttpOnly.
"""
from __future__ import annotations

import logging
import os
import time

import streamlit as st

from ui.i18n import t

log = logging.getLogger(__name__)
OK_KEY = "_latih_field_ok"


def field_mode() -> bool:
    from core.field import PASSWORD_ENV

    return bool(os.environ.get(PASSWORD_ENV))


def _cookie_ok() -> bool:
    from core.field import COOKIE, PASSWORD_ENV, check_token

    try:
        token = st.context.cookies.get(COOKIE)
    except RuntimeError as exc:  # no browser connection (a bare script run): no cookie to read
        log.debug("no cookies to read (%s)", exc)
        return False
    return check_token(token, os.environ.get(PASSWORD_ENV, ""))


def unlocked() -> bool:
    if not field_mode() or st.session_state.get(OK_KEY):
        return True
    if _cookie_ok():
        st.session_state[OK_KEY] = "cookie"
        return True
    return False


def _remember_browser() -> None:
    """Write the signed cookie in this browser (once per session, after the right password)."""
    from core.field import COOKIE, COOKIE_HOURS, PASSWORD_ENV, session_token

    token = session_token(os.environ.get(PASSWORD_ENV, ""))  # digits, a dot and hex: nothing to escape
    st.html(f"<script>document.cookie = '{COOKIE}={token}; Path=/; Max-Age={int(COOKIE_HOURS * 3600)}; "
            "Secure; SameSite=Strict';</script>", unsafe_allow_javascript=True, width="content")


def show_address() -> None:
    from core.field import URL_ENV

    url = os.environ.get(URL_ENV)
    if url:
        st.caption(t("field.address", url=url))


def gate() -> None:
    """The password form, then st.stop(), until this session gave the right password."""
    from core.field import PASSWORD_ENV, check_password

    if unlocked():
        if st.session_state.get(OK_KEY) == "password" and not _cookie_ok():
            _remember_browser()
        return
    st.title(t("field.password_title"))
    st.caption(t("field.password_help"))
    with st.form("field_login", border=True):
        password = st.text_input(t("field.password"), type="password", key="field_password")
        sent = st.form_submit_button(t("field.enter"), key="field_enter", type="primary")
    if sent:
        if check_password(password, os.environ.get(PASSWORD_ENV, "")):
            st.session_state[OK_KEY] = "password"
            log.info("field mode: a browser session gave the right password")
            st.rerun()
        log.warning("field mode: wrong password")
        time.sleep(1.0)  # slows guessing down
        st.error(t("field.wrong"), icon=":material/lock:")
    show_address()
    st.stop()
