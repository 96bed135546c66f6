"""Latih engine: transfer learning for image classifiers, offline. Never imports streamlit."""
__version__ = "0.1.0"
