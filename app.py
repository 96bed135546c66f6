"""Latih: build an image classifier from your own labelled photos, on your own machine.

Run with `.venv/bin/streamlit run app.py`. This script only sets up navigation, the
language switch and the project from the URL; each page lives in pages/.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # `streamlit run` from another folder
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from ui import access, components, state  # noqa: E402
from ui.i18n import t  # noqa: E402

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

# an emoji favicon is drawn locally (a :material: one would be fetched from fonts.gstatic.com)
st.set_page_config(page_title="Latih", page_icon="🌱", layout="wide")
state.init_session()



def _landing() -> None:
    """`/` opens Home at its own address, so that `/home` (a bookmark, a link) is a real page too."""
    components.go_to("home")


# The default page of st.navigation always lives at "/" whatever its url_path, which made
# /home a "Page not found": the hidden landing page takes "/", Home keeps /home.
pages = [st.Page(_landing, title=t("nav.home"), url_path="start", default=True, visibility="hidden")] + [
    st.Page(str(ROOT / path), title=t(key), icon=icon, url_path=url)
    for path, key, icon, url in components.PAGES
]
# Field mode (`latih serve --lan`): no page and no navigation before the password.
page = st.navigation(pages, position="sidebar" if access.unlocked() else "hidden")
access.gate()
components.sidebar()
state.sync_query_params()
page.run()
