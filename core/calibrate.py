"""Temperature scaling and calibration error.

A network's softmax "confidence" is usually too high after fine-tuning on a small data set;
dividing the logits by one temperature T fitted on validation data fixes most of that
without changing which class wins (Guo et al. 2017). `core.predict` applies the stored T.
"""
from __future__ import annotations

import logging

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

log = logging.getLogger(__name__)

T_MIN, T_MAX = 0.05, 20.0


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    logp = log_softmax(logits / temperature, axis=1)
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits, labels) -> float:
    """Temperature in [0.05, 20] minimising the validation NLL; 1.0 when it cannot be fitted.

    Optimised over log T (bounded, derivative-free) because NLL is smooth and unimodal in
    log T and a 1-D bounded search cannot diverge the way LBFGS on T itself sometimes does.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or len(logits) < 2 or len(np.unique(labels)) < 2:
        # Why 1.0: with one photo or one class there is nothing to calibrate against.
        log.warning("temperature not fitted (%d samples, %d classes present); using T=1",
                    len(logits), len(np.unique(labels)))
        return 1.0
    res = minimize_scalar(lambda lt: _nll(logits, labels, float(np.exp(lt))),
                          bounds=(np.log(T_MIN), np.log(T_MAX)), method="bounded",
                          options={"xatol": 1e-4})
    t = float(np.clip(np.exp(res.x), T_MIN, T_MAX))
    # Never return something worse than no scaling (guards a failed search).
    if not np.isfinite(t) or _nll(logits, labels, t) > _nll(logits, labels, 1.0):
        log.warning("temperature search did not improve on T=1 (result %s); using T=1", t)
        return 1.0
    return t


def apply_temperature(logits, temperature: float = 1.0) -> np.ndarray:
    """Calibrated probabilities softmax(logits / T); accepts (C,) or (N, C), numpy or torch."""
    if hasattr(logits, "detach"):
        logits = logits.detach().cpu().numpy()
    logits = np.asarray(logits, dtype=np.float64)
    t = float(temperature) if temperature else 1.0
    return softmax(logits / t, axis=-1)


def reliability_bins(probs, labels, n_bins: int = 15) -> list[dict]:
    """Equal-width bins of top-class confidence: per bin the mean confidence, accuracy and count."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins so a confidence of exactly 1.0 lands in the last bin
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = idx == b
        n = int(mask.sum())
        bins.append({
            "lo": float(edges[b]), "hi": float(edges[b + 1]), "count": n,
            "confidence": float(conf[mask].mean()) if n else None,
            "accuracy": float(correct[mask].mean()) if n else None,
        })
    return bins


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """ECE: count-weighted mean |accuracy - confidence| over the reliability bins (0 is perfect)."""
    bins = reliability_bins(probs, labels, n_bins)
    total = sum(b["count"] for b in bins)
    if total == 0:
        return float("nan")
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"])
                     for b in bins if b["count"]) / total)
