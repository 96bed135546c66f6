"""Use a trained run on new photos: labels, calibrated probabilities, and honesty flags.

`Predictor.from_run(run_dir)` rebuilds the model from the run folder alone (no download) and
the exact eval preprocessing the run was validated with. Each prediction carries the top-k
classes, the calibrated probability (temperature from evaluation), whether the photo looks
unlike the training photos (OOD), and, for a screening run, the positive score against the
chosen threshold. One unreadable photo gives one row with an error; the rest are predicted.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch
from PIL import Image

from core.errors import DataError, LatihError, RunError
from core.runs import crop_pct_of, image_size_of, state_word
from core.i18n import Msg, from_json

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".heic", ".heif", ".hif"}


@dataclass
class Prediction:
    path: str | None
    label: str | None = None
    probability: float | None = None
    top_k: list[tuple[str, float]] = field(default_factory=list)
    ood: bool | None = None  # True: unlike the training photos, treat the label with suspicion
    positive_score: float | None = None  # screening runs: calibrated probability of the positive class
    positive: bool | None = None  # screening decision at the run's threshold
    error: str | None = None

    @property
    def abstained(self) -> bool:
        """True when the photo is unlike the training photos: Latih gives no answer for it.

        The model's guess (`label`, `probability`) is still there, to be shown below the
        "no answer" headline, never as the answer itself."""
        return bool(self.ood) and self.error is None

    @property
    def answer(self) -> str | None:
        """The class to act on; None for an unreadable photo or one Latih abstains on."""
        return None if self.error or self.abstained else self.label

    def to_row(self) -> dict:
        row = {"path": self.path, "answer": self.answer, **{k: v for k, v in asdict(self).items() if k != "path"}}
        row["top_k"] = "; ".join(f"{name} {prob:.3f}" for name, prob in self.top_k)
        return row


class Predictor:
    def __init__(self, model: torch.nn.Module, meta: dict, run_dir: Path | None = None, device: str = "cpu"):
        from core.augment import build_eval_transform

        self.device = torch.device(device)
        self.channels_last = self.device.type in ("cuda", "cpu")  # as in training: faster inference there
        self.model = model.to(self.device).eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.meta = meta
        self.run_dir = run_dir
        self.unfinished: Msg | None = None  # set when the run did not finish (a failed run's last best)
        self.class_names = list(meta["class_names"])
        size, crop_pct = image_size_of(meta), crop_pct_of(meta)
        self.decode_size = int(meta.get("decode_size") or math.ceil(size / crop_pct))
        self.transform = build_eval_transform(size, tuple(meta["mean"]), tuple(meta["std"]), crop_pct=crop_pct)
        self.temperature = float(meta.get("temperature") or 1.0)
        self.threshold = meta.get("threshold")
        self.positive_index = self._positive_index()
        self.ood_detector = self._load_ood()

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, device: str = "cpu", workspace=None) -> "Predictor":
        from core.runs import load_run

        run = load_run(run_dir, workspace)
        if not run.meta.get("class_names"):
            raise RunError(Msg("err.predict.no_meta", run=run.run_id))
        predictor = cls(run.model(device), run.meta, run.run_dir, device)
        state = run.status.get("state")
        if state != "done":
            said = state_word(state)
            why = from_json(run.status.get("message_i18n")) or run.status.get("message")
            predictor.unfinished = Msg("predict.unfinished", run=run.run_id,
                                       state=Msg("core.state_why", state=said, why=why) if why else said)
            log.warning(predictor.unfinished.in_lang("en"))
        return predictor

    def _positive_index(self) -> int | None:
        positive = self.meta.get("positive_class")
        if positive is None:
            return None
        if positive not in self.class_names:
            raise RunError(Msg("err.predict.bad_positive", positive=repr(positive), classes=str(self.class_names)))
        return self.class_names.index(positive)

    def _load_ood(self):
        if not self.meta.get("ood"):
            return None
        try:
            from core.ood import OODDetector
        except ImportError as exc:
            log.warning("out-of-distribution check unavailable: %s", exc)
            return None
        try:
            return OODDetector.from_meta(self.meta["ood"], self.run_dir)
        except LatihError as exc:  # predictions still work, only the flag is missing
            log.warning("out-of-distribution check unavailable: %s", exc)
            return None

    # ---- predicting ----------------------------------------------------------------------
    def predict(self, images: Iterable, top_k: int = 3, batch_size: int = 32) -> list[Prediction]:
        """Predict paths, PIL images or HxWx3 uint8 arrays (mixed is fine), in order."""
        items = list(images) if not isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)) else [images]
        results: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            results.extend(self._predict_batch(items[start:start + batch_size], top_k))
        return results

    def _predict_batch(self, items: list, top_k: int) -> list[Prediction]:
        predictions, tensors, slots = [], [], []
        for item in items:
            name = str(item) if isinstance(item, (str, os.PathLike)) else None
            try:
                tensors.append(self.preprocess(item))
                slots.append(len(predictions))
                predictions.append(Prediction(path=name))
            except DataError as exc:
                log.info("cannot predict %s: %s", name, exc)
                # the Msg itself: its English is the CSV's text, the pages and the CLI say it in their language
                message = exc.args[0] if exc.args and isinstance(exc.args[0], Msg) else str(exc)
                predictions.append(Prediction(path=name, error=message))
        if tensors:
            probs, features = self._forward(torch.stack(tensors))
            flags = self.ood_detector.flag(features) if self.ood_detector is not None else [None] * len(tensors)
            for slot, p, flag in zip(slots, probs, flags):
                self._fill(predictions[slot], p, top_k, None if flag is None else bool(flag))
        return predictions

    def preprocess(self, item: Any) -> torch.Tensor:
        """One photo (path, PIL image or HxWx3 array) -> the model's input tensor, exactly as predicted."""
        from core.data.cache import shrink
        from core.data.decode import load_image, to_rgb

        # Decode and shrink exactly as training's image cache did (same draft decode, same
        # resize), so a photo gives the same numbers here as it did during validation.
        if isinstance(item, (str, os.PathLike)):
            img = load_image(item, draft_size=self.decode_size)
        elif isinstance(item, Image.Image):
            img = to_rgb(item)
        elif isinstance(item, np.ndarray) and item.ndim == 3 and item.shape[2] == 3:
            img = Image.fromarray(np.ascontiguousarray(item.astype(np.uint8)))
        else:
            raise DataError(Msg("err.predict.not_a_photo"))
        array = np.ascontiguousarray(np.asarray(shrink(img, self.decode_size), dtype=np.uint8))
        out = self.transform(image=array)["image"] if _is_albumentations(self.transform) else self.transform(array)
        return out if isinstance(out, torch.Tensor) else torch.as_tensor(out)

    def _forward(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            batch = batch.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
            pooled = self.model.forward_head(self.model.forward_features(batch), pre_logits=True)
            logits = self.model.get_classifier()(pooled).float().cpu().numpy()
        return _calibrated(logits, self.temperature), pooled.float().cpu().numpy()

    def _fill(self, prediction: Prediction, probs: np.ndarray, top_k: int, ood: bool | None) -> None:
        order = np.argsort(-probs)[:max(1, top_k)]
        prediction.top_k = [(self.class_names[i], float(probs[i])) for i in order]
        prediction.label, prediction.probability = prediction.top_k[0]
        prediction.ood = ood
        if self.positive_index is not None:
            prediction.positive_score = float(probs[self.positive_index])
            if self.threshold is not None:
                # The screening decision replaces argmax exactly as the evaluation scored it:
                # positive at or above the threshold, else the most probable other class.
                from core.screening import decide

                chosen = int(decide(probs, self.positive_index, float(self.threshold))[0])
                prediction.positive = chosen == self.positive_index
                prediction.label, prediction.probability = self.class_names[chosen], float(probs[chosen])

    def predict_folder(self, folder: str | os.PathLike, top_k: int = 3, recursive: bool = True) -> pd.DataFrame:
        return to_frame(self.predict(photo_files([folder], recursive), top_k))


def _calibrated(logits: np.ndarray, temperature: float) -> np.ndarray:
    from core.calibrate import apply_temperature

    return np.asarray(apply_temperature(logits, temperature), dtype=np.float64)


def _is_albumentations(transform) -> bool:
    return type(transform).__module__.split(".")[0] == "albumentations"


def photo_files(inputs: Iterable, recursive: bool = True) -> list[str]:
    """Expand files and folders into photo paths (folders: image suffixes only, sorted)."""
    paths: list[str] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(str(p) for p in path.glob(pattern)
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
            if not found:
                log.warning("no photos in folder %s", path)
            paths.extend(found)
        elif path.exists():
            paths.append(str(path))
        else:
            raise DataError(Msg("err.predict.path_missing", path=str(path)))
    return paths


def to_frame(predictions: list[Prediction]) -> pd.DataFrame:
    # "answer" is empty where Latih abstains (unlike the training photos) or the photo is unreadable;
    # "label" and "probability" are the model's guess either way.
    columns = ["path", "answer", "label", "probability", "top_k", "ood", "positive_score", "positive", "error"]
    return pd.DataFrame([p.to_row() for p in predictions], columns=columns)


def csv_text(predictions: list[Prediction] | pd.DataFrame) -> str:
    """The predictions CSV (the one format, also written by `latih predict --csv`) as text."""
    frame = predictions if isinstance(predictions, pd.DataFrame) else to_frame(predictions)
    return frame.to_csv(index=False)


def to_csv(predictions: list[Prediction] | pd.DataFrame, out: str | os.PathLike) -> Path:
    frame = predictions if isinstance(predictions, pd.DataFrame) else to_frame(predictions)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, out)
    return out


__all__ = ["Predictor", "Prediction", "photo_files", "to_frame", "to_csv", "csv_text"]
