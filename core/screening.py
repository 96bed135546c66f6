"""Screening mode: choose the decision threshold that catches a target share of positives.

A clinician screening for glaucoma cares first that few sick eyes are missed (sensitivity),
so the threshold on p(positive) is set on validation photos to reach the target sensitivity,
and its sensitivity / specificity / PPV / NPV are then measured on the held-out test photos.
"""
from __future__ import annotations

import math

import numpy as np

from core.errors import RunError


def threshold_for_sensitivity(scores_pos, labels_pos_binary, target: float = 0.95) -> float:
    """Largest threshold t such that the share of positives with score >= t is >= target."""
    scores = np.asarray(scores_pos, dtype=np.float64)
    y = np.asarray(labels_pos_binary).astype(bool)
    pos = np.sort(scores[y])[::-1]
    if len(pos) == 0:
        raise RunError("The validation photos contain no example of the positive class, so no "
                       "screening threshold can be set; add some and train again.")
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


def stratified_counts(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, N) multiplicities of each sample in n bootstrap resamples drawn within each class."""
    N = len(y)
    idx = np.empty((n, N), dtype=np.int64)
    col = 0
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        idx[:, col:col + len(members)] = members[rng.integers(0, len(members), (n, len(members)))]
        col += len(members)
    rows = np.repeat(np.arange(n), N)
    return np.bincount(rows * N + idx.ravel(), minlength=n * N).reshape(n, N)


def wilson_interval(successes: float, total: float, alpha: float = 0.05) -> list[float] | None:
    """Wilson score interval for a proportion. Why: a percentile bootstrap collapses to a
    single point when every photo of a small class is right (or wrong), which would tell a
    user with 6 test photos that their accuracy is exactly 66.7%; Wilson never does."""
    if total <= 0:
        return None
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha / 2))
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def widen(interval: list[float] | None, floor: list[float] | None) -> list[float] | None:
    """The union of a bootstrap interval and an analytic one (the more honest of the two)."""
    if interval is None or floor is None:
        return interval or floor
    return [min(interval[0], floor[0]), max(interval[1], floor[1])]


def operating_point_ci(scores, y, threshold: float, n: int = 1000, seed: int = 0,
                       alpha: float = 0.05) -> dict:
    """Percentile bootstrap intervals (stratified by truth) for the four operating-point rates."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    if len(y) == 0:
        return {}
    counts = stratified_counts(y.astype(np.int64), n, np.random.default_rng(seed))
    flagged = s >= threshold
    tp = counts @ (flagged & y)
    fp = counts @ (flagged & ~y)
    fn = counts @ (~flagged & y)
    tn = counts @ (~flagged & ~y)
    # the observed counts on the full sample, for the Wilson floor
    obs = {"tp": float((flagged & y).sum()), "fp": float((flagged & ~y).sum()),
           "fn": float((~flagged & y).sum()), "tn": float((~flagged & ~y).sum())}
    out = {}
    for name, num, den, (k, m) in (
            ("sensitivity", tp, tp + fn, ("tp", "fn")), ("specificity", tn, tn + fp, ("tn", "fp")),
            ("ppv", tp, tp + fp, ("tp", "fp")), ("npv", tn, tn + fn, ("tn", "fn"))):
        ok = den > 0
        if not ok.any():
            out[name] = None
            continue
        vals = num[ok] / den[ok]
        boot = [float(np.quantile(vals, alpha / 2)), float(np.quantile(vals, 1 - alpha / 2))]
        out[name] = widen(boot, wilson_interval(obs[k], obs[k] + obs[m], alpha))
    return out


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
