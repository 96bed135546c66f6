"""The statistics behind every interval Latih shows, in one place.

Stratified bootstrap resamples as multiplicity weights (vectorised: no per-resample loop),
percentile intervals for accuracy / balanced accuracy / macro-F1 / ROC AUC and for the
screening rates (sensitivity, specificity, PPV, NPV), each floored by a Wilson score interval
so a small split never gets a falsely exact figure.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

VECTORISED = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")


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


def _weighted_auc(W: np.ndarray, score: np.ndarray, is_pos: np.ndarray) -> np.ndarray:
    """ROC AUC of each weighted resample (rows of W) with ties counted as one half."""
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # groups of tied scores
    Wo = W[:, order]
    gp = np.add.reduceat(Wo * is_pos[order], starts, axis=1)
    gn = np.add.reduceat(Wo * ~is_pos[order], starts, axis=1)
    below = np.cumsum(gn, axis=1) - gn
    num = (gp * (below + 0.5 * gn)).sum(axis=1)
    den = gp.sum(axis=1) * gn.sum(axis=1)
    return np.divide(num, den, out=np.full(len(W), np.nan), where=den > 0)


def _resample_stats(W, p, y, pred, positive_index) -> dict[str, np.ndarray]:
    """The four headline metrics for every resample in W (n, N)."""
    C = p.shape[1]
    total = W.sum(axis=1)
    eye = np.eye(C)
    # (N, C) one-hots keep memory at N x C, not the N x C^2 of a full confusion matrix
    tp = W @ (eye[y] * (pred == y)[:, None])
    support, predicted = W @ eye[y], W @ eye[pred]
    # same class set sklearn uses: classes seen in truth or predictions of the full sample
    present = np.isin(np.arange(C), np.union1d(y, pred))
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=(support + predicted) > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    true_present = np.isin(np.arange(C), y)
    if positive_index is not None or C == 2:
        k = positive_index if positive_index is not None else 1
        auc = _weighted_auc(W, p[:, k], y == k)
    else:
        per = [_weighted_auc(W, p[:, k], y == k) for k in range(C) if true_present[k] and (y != k).any()]
        auc = np.mean(per, axis=0) if per else np.full(len(W), np.nan)
    return {
        "accuracy": (W @ (pred == y)) / total,
        "balanced_accuracy": recall[:, true_present].mean(axis=1),
        "macro_f1": f1[:, present].mean(axis=1),
        "roc_auc": auc,
    }


def percentile_interval(values: np.ndarray, alpha: float) -> list[float] | None:
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return None
    return [float(np.quantile(v, alpha / 2)), float(np.quantile(v, 1 - alpha / 2))]


def _resample_weights(y: np.ndarray, n: int, seed: int, chunk: int = 250):
    """Chunks of stratified bootstrap multiplicities; same seed -> same resamples everywhere."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        yield stratified_counts(y, min(chunk, n - start), rng).astype(np.float64)


def bootstrap_cis(probs, labels, n: int = 1000, seed: int = 0, alpha: float = 0.05, preds=None,
                  positive_index: int | None = None, chunk: int = 250) -> dict[str, list | None]:
    """Percentile intervals for accuracy, balanced accuracy, macro-F1 and ROC AUC at once.

    Resampling is stratified by true class so every resample contains every class (AUC and
    balanced accuracy stay defined); chunks bound memory to chunk x N weights.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    pred = p.argmax(axis=1) if preds is None else np.asarray(preds, dtype=np.int64)
    parts: dict[str, list] = {k: [] for k in VECTORISED}
    for W in _resample_weights(y, n, seed, chunk):
        for k, v in _resample_stats(W, p, y, pred, positive_index).items():
            parts[k].append(v)
    cis = {k: percentile_interval(np.concatenate(v), alpha) for k, v in parts.items()}
    # Accuracy is a proportion: never report an interval narrower than Wilson's (see
    # wilson_interval for why the stratified bootstrap alone can collapse).
    cis["accuracy"] = widen(cis["accuracy"], wilson_interval(float((pred == y).sum()), len(y), alpha))
    per_class = [wilson_interval(float((pred[y == c] == c).sum()), float((y == c).sum()), alpha)
                 for c in np.unique(y)]
    mean_bounds = [float(np.mean([b[0] for b in per_class])), float(np.mean([b[1] for b in per_class]))]
    cis["balanced_accuracy"] = widen(cis["balanced_accuracy"], mean_bounds)
    smallest_class = int(np.unique(y, return_counts=True)[1].min()) if len(y) else 0
    for key in ("macro_f1", "roc_auc"):
        ci = cis[key]
        if ci is not None and ci[1] - ci[0] < 1e-9 and smallest_class < 30:
            # every resample agrees: too few photos per class to estimate an interval honestly
            cis[key] = None
    return cis


def bootstrap_ci(probs, labels, metric_fn: str | Callable = "accuracy", n: int = 1000,
                 seed: int = 0, alpha: float = 0.05, preds=None,
                 positive_index: int | None = None) -> tuple[float, float] | None:
    """(low, high) percentile interval of metric_fn over stratified bootstrap resamples.

    metric_fn: one of "accuracy", "balanced_accuracy", "macro_f1", "roc_auc" (vectorised,
    fast) or any callable(probs, labels) -> float (evaluated once per resample).
    """
    if isinstance(metric_fn, str):
        if metric_fn not in VECTORISED:
            raise ValueError(f"metric_fn must be one of {VECTORISED} or a callable")
        ci = bootstrap_cis(probs, labels, n, seed, alpha, preds, positive_index)[metric_fn]
        return None if ci is None else (ci[0], ci[1])
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    vals = np.array([metric_fn(np.repeat(p, w, axis=0), np.repeat(y, w))
                     for W in _resample_weights(y, n, seed) for w in W.astype(np.int64)], dtype=float)
    ci = percentile_interval(vals, alpha)
    return None if ci is None else (ci[0], ci[1])
