"""Field mode's password (see core/field.py): asked once per browser session, before any page.

Only when `latih serve --lan` started the app (it puts a salted hash in the environment);
a plain `streamlit run app.py` on localhost has no password.
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


def unlocked() -> bool:
    return not field_mode() or bool(st.session_state.get(OK_KEY))


def show_address() -> None:
    from core.field import URL_ENV

    url = os.environ.get(URL_ENV)
    if url:
        st.caption(t("field.address", url=url))


def gate() -> None:
    """The password form, then st.stop(), until this session gave the right password."""
    from core.field import PASSWORD_ENV, check_password

    if unlocked():
        return
    st.title(t("field.password_title"))
    st.caption(t("field.password_help"))
    with st.form("field_login", border=True):
        password = st.text_input(t("field.password"), type="password", key="field_password")
        sent = st.form_submit_button(t("field.enter"), key="field_enter", type="primary")
    if sent:
        if check_password(password, os.environ.get(PASSWORD_ENV, "")):
            st.session_state[OK_KEY] = True
            log.info("field mode: a browser session gave the right password")
            st.rerun()
        log.warning("field mode: wrong password")
        time.sleep(1.0)  # slows guessing down
        st.error(t("field.wrong"), icon=":material/lock:")
    show_address()
    st.stop()
