"""Shared helpers for the Streamlit pages (i18n, project state, components). Never imported by core."""
