"""Would more photos help? Accuracy against the number of training photos, on cached features.

For each draw, one group-aware stratified fifth of the photos is held out; the linear probe is
trained on 10/25/50/75/100% of the rest (whole groups, every class kept) and scored on the
held-out fifth. The points are fitted with an inverse power law, the usual shape of learning
curves (Figueroa et al. 2012; Hestness et al. 2017):

    accuracy(n) = a - b * n^(-c)        a <= 1 is where the curve levels off

The forecast "with about 100 more photos per class" is the fitted curve at that size; its
uncertainty comes from refitting on draws resampled with replacement (a bootstrap).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from sklearn.model_selection import StratifiedGroupKFold

from core.cross_validation import linear_probe

log = logging.getLogger(__name__)

FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)
MORE_PER_CLASS = 100
BOOTSTRAP = 200
FLAT_POINTS = 1.0  # a forecast gain whose upper end is under this (points) means "more photos won't help"


@dataclass
class CurvePoint:
    fraction: float
    n_train: float  # mean photos trained on
    accuracy: float
    low: float
    high: float
    draws: list[float] = field(default_factory=list)


@dataclass
class Forecast:
    n_now: float
    n_then: float
    accuracy_now: float
    accuracy_then: float
    gain_low: float  # points (x100)
    gain_high: float
    plateau: float
    sentence: str


@dataclass
class LearningCurve:
    points: list[CurvePoint]
    fit: dict | None  # a, b, c of the inverse power law
    forecast: Forecast | None
    n_classes: int

    def to_dict(self) -> dict:
        return asdict(self)


def power_law(n, a, b, c):
    return a - b * np.power(n, -c)


def learning_curve(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, fractions=FRACTIONS,
                   draws: int = 5, seed: int = 0, more_per_class: int = MORE_PER_CLASS,
                   progress: Callable[[int, int], None] | None = None) -> LearningCurve:
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    n_classes = len(np.unique(labels))
    scores = {f: [] for f in fractions}
    sizes = {f: [] for f in fractions}
    total, done = draws * len(fractions), 0
    for draw in range(draws):
        rng = np.random.default_rng(seed + draw)
        splitter = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed + draw)
        pool, held_out = next(splitter.split(features, labels, groups))
        for fraction in fractions:
            chosen = _subset(pool, labels, groups, fraction, rng)
            model = linear_probe().fit(features[chosen], labels[chosen])
            scores[fraction].append(float((model.predict(features[held_out]) == labels[held_out]).mean()))
            sizes[fraction].append(len(chosen))
            done += 1
            if progress is not None:
                progress(done, total)
    points = [_point(f, sizes[f], scores[f]) for f in fractions]
    fit = fit_curve([s for f in fractions for s in sizes[f]], [a for f in fractions for a in scores[f]])
    forecast = None
    if fit is not None:
        forecast = _forecast(sizes, scores, fractions, points[-1].n_train, more_per_class * n_classes, fit)
    return LearningCurve(points, fit, forecast, n_classes)


def _subset(pool: np.ndarray, labels: np.ndarray, groups: np.ndarray, fraction: float,
            rng: np.random.Generator) -> np.ndarray:
    """Whole groups, shuffled per class, until `fraction` of each class's photos is taken."""
    if fraction >= 1.0:
        return pool
    chosen = []
    for label in np.unique(labels[pool]):
        members = pool[labels[pool] == label]
        member_groups = np.unique(groups[members])
        rng.shuffle(member_groups)
        want = max(2, int(round(fraction * len(members))))
        taken = 0
        for g in member_groups:
            if taken >= want:
                break
            rows = members[groups[members] == g]
            chosen.append(rows)
            taken += len(rows)
    return np.concatenate(chosen)


def _point(fraction: float, sizes: list[int], scores: list[float]) -> CurvePoint:
    values = np.asarray(scores)
    mean = float(values.mean())
    if len(values) > 1:
        # Draws share photos, so this t interval is a guide, not an exact coverage.
        from scipy import stats

        half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    else:
        half = 0.0
    return CurvePoint(fraction, float(np.mean(sizes)), mean, max(0.0, mean - half), min(1.0, mean + half),
                      [round(v, 4) for v in scores])


def fit_curve(n, accuracy) -> dict | None:
    """Least-squares inverse power law through (n, accuracy) points; None when it cannot fit."""
    n, accuracy = np.asarray(n, float), np.asarray(accuracy, float)
    if len(np.unique(n)) < 3:
        return None
    start = (min(1.0, accuracy.max() + 0.02), 1.0, 0.5)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            (a, b, c), _ = curve_fit(power_law, n, accuracy, p0=start, bounds=([0, 0, 0.05], [1, 100, 2]),
                                     maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        log.warning("learning curve fit failed: %s", exc)
        return None
    return {"a": float(a), "b": float(b), "c": float(c)}


def _forecast(sizes: dict, scores: dict, fractions, n_now: float, extra: float, fit: dict) -> Forecast:
    n_then = n_now + extra
    now = float(power_law(n_now, **fit))
    then = float(power_law(n_then, **fit))
    gains = []
    draws = len(scores[fractions[0]])
    rng = np.random.default_rng(0)
    for _ in range(BOOTSTRAP):
        picks = rng.integers(0, draws, draws)
        boot = fit_curve([sizes[f][i] for f in fractions for i in picks], [scores[f][i] for f in fractions for i in picks])
        if boot is not None:
            gains.append(power_law(n_then, **boot) - power_law(n_now, **boot))
    low, high = (np.percentile(gains, [2.5, 97.5]) * 100) if gains else ((then - now) * 100,) * 2
    low, high = max(0.0, float(low)), max(0.0, float(high))
    return Forecast(n_now, n_then, now, then, round(low, 1), round(high, 1), fit["a"],
                    sentence(low, high, extra, fit["a"], now))


def sentence(low: float, high: float, extra: float, plateau: float, now: float) -> str:
    if high < FLAT_POINTS:
        return ("More photos are unlikely to help much (about 100 more per class would add less than 1 point): "
                "check the labels and the photo quality instead.")
    per_class = "100 more photos per class" if extra else "more photos"
    return f"With about {per_class}, accuracy would likely rise by {low:.0f} to {max(high, low + 0.5):.0f} points."


def forecast_check(curve: LearningCurve, up_to: float = 0.5) -> dict | None:
    """How well the points up to `up_to` of the training share predict the score at 100%."""
    early = [p for p in curve.points if p.fraction <= up_to + 1e-9]
    last = curve.points[-1]
    sizes = [p.n_train for p in early for _ in p.draws]
    scores = [s for p in early for s in p.draws]
    fit = fit_curve(sizes, scores)
    if fit is None:
        return None
    predicted = float(power_law(last.n_train, **fit))
    draws = len(early[0].draws)
    rng = np.random.default_rng(0)
    boots = []
    for _ in range(BOOTSTRAP):
        picks = rng.integers(0, draws, draws)
        boot = fit_curve([p.n_train for p in early for _ in picks], [p.draws[i] for p in early for i in picks])
        if boot is not None:
            boots.append(power_law(last.n_train, **boot))
    low, high = (np.percentile(boots, [2.5, 97.5]) if boots else (predicted, predicted))
    return {"fit_on_fractions": [p.fraction for p in early], "n_train_at_100": last.n_train,
            "predicted": predicted, "predicted_low": float(low), "predicted_high": float(high),
            "measured": last.accuracy, "measured_low": last.low, "measured_high": last.high,
            "error_points": round((predicted - last.accuracy) * 100, 2)}


__all__ = ["FRACTIONS", "CurvePoint", "Forecast", "LearningCurve", "learning_curve", "fit_curve", "power_law",
           "forecast_check", "sentence"]
