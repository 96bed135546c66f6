"""Screening mode: choose the decision threshold that catches a target share of positives.

A clinician screening for glaucoma cares first that few sick eyes are missed (sensitivity),
so the threshold on p(positive) is set on validation photos to reach the target sensitivity,
and its sensitivity / specificity / PPV / NPV are then measured on the held-out test photos.
"""
from __future__ import annotations

import math

import numpy as np

from core.errors import RunError
from core.i18n import Msg


def threshold_for_sensitivity(scores_pos, labels_pos_binary, target: float = 0.95) -> float:
    """Largest threshold t such that the share of positives with score >= t is >= target."""
    scores = np.asarray(scores_pos, dtype=np.float64)
    y = np.asarray(labels_pos_binary).astype(bool)
    pos = np.sort(scores[y])[::-1]
    if len(pos) == 0:
        raise RunError(Msg("err.screening.no_positive"))
    if not 0 < target <= 1:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
    # k positives must score >= t; the k-th highest positive score is the largest such t.
    # The epsilon stops 0.95 * 20 = 18.999... from asking for 19 -> ceil -> 19 (fine) or 20.
    k = max(1, math.ceil(target * len(pos) - 1e-9))
    return float(pos[k - 1])


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def operating_point(scores, y, threshold: float) -> dict:
    """Sensitivity, specificity, PPV, NPV (None when undefined) and counts at a threshold."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    flagged = s >= threshold
    tp = int((flagged & y).sum())
    fp = int((flagged & ~y).sum())
    fn = int((~flagged & y).sum())
    tn = int((~flagged & ~y).sum())
    return {
        "threshold": float(threshold),
        "sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp), "npv": _ratio(tn, tn + fn),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
    }


def decide(probs, positive_index: int, threshold: float | None) -> np.ndarray:
    """Predicted class per row: the positive class when p(positive) >= threshold, else the
    most probable other class. Without a threshold this is plain argmax."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = p[None]
    if threshold is None:
        return p.argmax(axis=1)
    others = p.copy()
    others[:, positive_index] = -np.inf
    return np.where(p[:, positive_index] >= threshold, positive_index, others.argmax(axis=1))
