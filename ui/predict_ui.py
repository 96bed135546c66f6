"""Predictions for the Test page: a cached Predictor per run and plain dicts to display."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from PIL import Image

from core import runs
from core.errors import DataError
from core.i18n import Msg

log = logging.getLogger(__name__)


@st.cache_resource(max_entries=2, show_spinner=False)
def _predictor(run_dir: str, stamp: float):
    from core.predict import Predictor

    return Predictor.from_run(run_dir)


def predictor(run_dir: str):
    model = Path(run_dir) / runs.MODEL_FILE
    meta = Path(run_dir) / runs.META_FILE
    stamp = max(p.stat().st_mtime for p in (model, meta) if p.exists()) if model.exists() else 0.0
    return _predictor(str(run_dir), stamp)


def open_upload(uploaded) -> Image.Image:
    """An uploaded photo as upright RGB; DataError in plain words when it is not a photo."""
    from core.data.decode import decode_bytes

    # The engine's decoder: same formats (HEIC, GIF's first frame), same size limit, same messages.
    return decode_bytes(uploaded.getvalue(), uploaded.name)


def as_dict(prediction: Any) -> dict[str, Any]:
    """A core.predict.Prediction as label (the model's guess), answer (None when Latih abstains on a
    photo unlike the training photos), confidence, topk [(class, probability)], ood, error."""
    return {"label": prediction.label, "confidence": float(prediction.probability or 0.0),
            "topk": list(prediction.top_k or []), "ood": bool(prediction.ood), "error": prediction.error,
            "positive": prediction.positive, "answer": prediction.answer, "abstained": prediction.abstained}


def predict_images(run_dir: str, images: list, top_k: int = 3) -> list[dict[str, Any]]:
    return [as_dict(p) for p in predictor(run_dir).predict(images, top_k=top_k)]


def predict_uploads(run_dir: str, images: list, names: list[str], top_k: int = 3) -> tuple[list[dict[str, Any]], bytes]:
    """(one dict per photo, the predictions CSV): the CSV is core.predict's one format, with the
    uploaded file names as paths, the same as `latih predict --csv` writes."""
    from core.predict import csv_text

    predictions = predictor(run_dir).predict(images, top_k=top_k)
    for prediction, name in zip(predictions, names):
        prediction.path = name
    return [as_dict(p) for p in predictions], csv_text(predictions).encode("utf-8")


def predict_folder(run_dir: str, folder: str) -> pd.DataFrame:
    folder_path = Path(folder).expanduser()
    if not folder_path.is_dir():
        raise DataError(Msg("err.predict.not_a_folder", folder=str(folder)))
    table = predictor(run_dir).predict_folder(folder_path)
    if table.empty:
        raise DataError(Msg("err.predict.folder_empty", folder=str(folder)))
    return table


def folder_view(table: pd.DataFrame) -> pd.DataFrame:
    """The folder results as shown: headers in the page's language, no empty "None" cells, and
    the screening columns only for a screening run (the CSV download keeps the engine's columns)."""
    from core.data.decode import stored_error
    from ui.i18n import say, t_plain

    def blank(value) -> bool:
        return value is None or (isinstance(value, float) and value != value)

    view = pd.DataFrame({
        t_plain("test.col_file"): table["path"],
        t_plain("test.col_prediction"): [t_plain("test.no_answer_short") if blank(a) and ood else ("–" if blank(a) else a)
                                         for a, ood in zip(table["answer"], table["ood"])],
        t_plain("test.col_guess"): [("–" if blank(v) else v) for v in table["label"]],
        t_plain("test.col_confidence"): table["probability"],
        t_plain("test.col_topk"): table["top_k"],
        t_plain("test.col_unusual"): table["ood"].astype(bool),
    })
    if table["positive_score"].notna().any():
        view[t_plain("test.col_positive_score")] = table["positive_score"]
        view[t_plain("test.col_positive")] = [t_plain("test.yes") if v else t_plain("test.no") if v is not None
                                              else "–" for v in table["positive"]]
    if table["error"].notna().any():
        view[t_plain("test.col_error")] = [("" if blank(e) else say(stored_error(e), plain=True)) for e in table["error"]]
    return view
