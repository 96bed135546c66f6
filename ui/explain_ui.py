"""Grad-CAM overlays for the Evaluate and Test pages (core.explain on the run's Predictor)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import streamlit as st

log = logging.getLogger(__name__)


def overlay_for_image(run_dir: str, image, class_index: int | None) -> np.ndarray:
    """Grad-CAM overlay (HxWx3 uint8) of a PIL image or photo path for class_index (None: predicted)."""
    from core.data.decode import load_image
    from core.explain import gradcam
    from ui.predict_ui import predictor

    pred = predictor(str(run_dir))
    if isinstance(image, (str, Path)):
        image = load_image(image, draft_size=pred.decode_size)
    # the same decoding, resizing and normalisation as prediction (and as validation in training)
    tensor = pred.preprocess(image)
    small = image.convert("RGB").copy()
    small.thumbnail((320, 320))
    _, overlay = gradcam(pred.model, tensor.unsqueeze(0), class_index,
                         rgb_image=np.asarray(small, dtype=np.float32) / 255.0)
    return overlay


@st.cache_data(max_entries=200, show_spinner=False)
def gradcam_overlay(run_dir: str, path: str, class_index: int | None) -> np.ndarray:
    return overlay_for_image(run_dir, path, class_index)
