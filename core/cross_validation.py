"""Repeated stratified (group) k-fold on cached frozen features, with honest intervals.

One validation split of 140 photos gives a score that can move by +-4 points with another
seed. Repeating k-fold r times (5 x 3 by default) uses every photo for testing r times and
reports the mean with a 95% interval. Folds overlap in their training photos, so the plain
standard error is too narrow: the interval uses the Nadeau-Bengio corrected variance
    var = (1/J + n_test/n_train) * s^2     (J = k*r fold scores, s^2 their variance)
with a Student t quantile on J-1 degrees of freedom (Nadeau & Bengio 2003; Bouckaert &
Frank 2004).

The model on each fold is a linear probe (multinomial logistic regression on standardised
features): what feature extraction trains, in a fraction of a second per fold.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, recall_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from core.i18n import Msg

log = logging.getLogger(__name__)

PROBE_C = 0.5  # inverse L2 strength of the probe; mild regularisation suits 100-1,000 photos


@dataclass
class Interval:
    mean: float
    low: float
    high: float

    def text(self, scale: float = 100.0, unit: str = "%") -> str:
        return f"{self.mean * scale:.1f}{unit} (95% interval {self.low * scale:.1f} to {self.high * scale:.1f})"


@dataclass
class CVResult:
    n_splits: int
    n_repeats: int
    n_photos: int
    n_groups: int
    accuracy: Interval
    balanced_accuracy: Interval
    auc: Interval | None
    per_class_recall: dict[str, Interval]
    fold_accuracy: list[float]
    fold_spread: dict = field(default_factory=dict)  # min, max, std of fold accuracy
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def linear_probe():
    return make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=2000))


def corrected_interval(scores, test_share: float, confidence: float = 0.95) -> Interval:
    """Nadeau-Bengio corrected t interval over fold scores; test_share = n_test / n_train."""
    scores = np.asarray([s for s in scores if s == s], dtype=float)  # drop NaN (e.g. AUC of a one-class fold)
    if len(scores) == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    mean = float(scores.mean())
    if len(scores) < 2:
        return Interval(mean, mean, mean)
    var = (1.0 / len(scores) + test_share) * float(scores.var(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(scores) - 1)) * np.sqrt(var)
    return Interval(mean, max(0.0, mean - half), min(1.0, mean + half))


def folds(labels: np.ndarray, groups: np.ndarray, n_splits: int, n_repeats: int, seed: int = 0):
    """(repeat, train_index, test_index) of repeated stratified group k-fold: no group ever
    crosses a fold, classes are balanced across folds as far as groups allow."""
    n_splits = max(2, min(n_splits, len(np.unique(groups)), int(np.bincount(_codes(labels)).min())
                          if len(labels) else 2))
    for repeat in range(n_repeats):
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed + repeat)
        for train_index, test_index in splitter.split(np.zeros(len(labels)), labels, groups):
            yield repeat, train_index, test_index


def _codes(labels: np.ndarray) -> np.ndarray:
    return np.unique(labels, return_inverse=True)[1]


def cross_validate(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, class_names: list[str],
                   n_splits: int = 5, n_repeats: int = 3, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None) -> CVResult:
    """Repeated stratified group k-fold of a linear probe on features; labels are indices."""
    from core.errors import DataError

    started = time.perf_counter()
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        raise DataError(Msg("err.cv.two_classes"))
    if np.bincount(labels).min() < 2:
        raise DataError(Msg("err.cv.two_photos"))
    plan = list(folds(labels, groups, n_splits, n_repeats, seed))
    scores = []
    for done, (_, train_index, test_index) in enumerate(plan, start=1):
        model = linear_probe().fit(features[train_index], labels[train_index])
        probs = np.zeros((len(test_index), len(class_names)))
        probs[:, model.classes_] = model.predict_proba(features[test_index])
        scores.append(fold_scores(labels[test_index], probs, len(train_index)))
        if progress is not None:
            progress(done, len(plan))
    result = summarise(scores, class_names, n_repeats, len(labels), len(np.unique(groups)), started)
    log.info("cross-validation %dx%d: accuracy %s", result.n_splits, n_repeats, result.accuracy.text())
    return result


def fold_scores(truth: np.ndarray, probs: np.ndarray, n_train: int) -> dict:
    """One fold's figures from its held-out labels (indices) and class probabilities."""
    n_classes = probs.shape[1]
    predicted = probs.argmax(1)
    return {"accuracy": float((predicted == truth).mean()),
            "balanced": float(balanced_accuracy_score(truth, predicted)),
            "auc": _auc(truth, probs, n_classes),
            "recall": recall_score(truth, predicted, labels=list(range(n_classes)), average=None, zero_division=np.nan),
            "share": len(truth) / max(1, n_train)}


def summarise(scores: list[dict], class_names: list[str], n_repeats: int, n_photos: int, n_groups: int,
              started: float) -> CVResult:
    """The k x r folds' figures (fold_scores) -> means with Nadeau-Bengio corrected intervals."""
    accuracy = [s["accuracy"] for s in scores]
    balanced = [s["balanced"] for s in scores]
    auc = [s["auc"] for s in scores]
    share = float(np.mean([s["share"] for s in scores]))
    recall_matrix = np.vstack([s["recall"] for s in scores])
    return CVResult(
        n_splits=len(scores) // max(1, n_repeats), n_repeats=n_repeats, n_photos=int(n_photos), n_groups=int(n_groups),
        accuracy=corrected_interval(accuracy, share), balanced_accuracy=corrected_interval(balanced, share),
        auc=corrected_interval(auc, share) if any(a == a for a in auc) else None,
        per_class_recall={name: corrected_interval(recall_matrix[:, i], share) for i, name in enumerate(class_names)},
        fold_accuracy=[round(a, 4) for a in accuracy],
        fold_spread={"min": float(np.min(accuracy)), "max": float(np.max(accuracy)),
                     "std": float(np.std(accuracy, ddof=1)) if len(accuracy) > 1 else 0.0},
        seconds=round(time.perf_counter() - started, 2))


FOLD_SPEC = re.compile(r"^(\d+)x(\d+):r(\d+)f(\d+)$")


def parse_fold(spec: str) -> tuple[int, int, int, int]:
    """TrainConfig.cv_fold "5x3:r0f2" -> (folds, repeats, repeat, fold); ValueError if malformed."""
    match = FOLD_SPEC.match(spec or "")
    if not match:
        raise ValueError(f"cv_fold must look like 5x3:r0f2 (folds x repeats : repeat, fold), got {spec!r}")
    k, r, repeat, fold = map(int, match.groups())
    if not (2 <= k <= 20 and 1 <= r <= 20 and repeat < r and fold < k):
        raise ValueError(f"cv_fold {spec!r}: need 2-20 folds, 1-20 repeats, and repeat/fold numbers below them")
    return k, r, repeat, fold


def fold_spec(n_splits: int, n_repeats: int, repeat: int, fold: int) -> str:
    return f"{n_splits}x{n_repeats}:r{repeat}f{fold}"


def fold_sides(labels: np.ndarray, groups: np.ndarray, spec: str, seed: int = 0) -> np.ndarray:
    """"train" / "val" per photo for one fold of folds() (the same assignment the probe uses)."""
    from core.errors import DataError

    k, r, repeat, fold = parse_fold(spec)
    plan = [(rep, test) for rep, _, test in folds(np.asarray(labels), np.asarray(groups), k, r, seed) if rep == repeat]
    if fold >= len(plan):
        raise DataError(Msg("err.cv.too_few", spec=str(spec), n=str(len(plan))))
    sides = np.full(len(labels), "train", dtype=object)
    sides[plan[fold][1]] = "val"
    return sides


def _auc(truth: np.ndarray, probs: np.ndarray, n_classes: int) -> float:
    present = np.unique(truth)
    if len(present) < 2:
        return float("nan")
    if n_classes == 2:
        return float(roc_auc_score(truth, probs[:, 1]))
    if len(present) < n_classes:  # a class missing from this fold: macro AUC over the present ones
        keep = np.isin(np.arange(n_classes), present)
        p = probs[:, keep] / np.clip(probs[:, keep].sum(1, keepdims=True), 1e-12, None)
        return float(roc_auc_score(np.searchsorted(present, truth), p, multi_class="ovr"))
    return float(roc_auc_score(truth, probs, multi_class="ovr"))


def fine_tune_cost(seconds_per_training: float, n_splits: int = 5, n_repeats: int = 3) -> dict:
    """What a fine-tuned cross-validation would cost: one full training per fold."""
    trainings = n_splits * n_repeats
    return {"trainings": trainings, "seconds": round(seconds_per_training * trainings, 1)}


__all__ = ["Interval", "CVResult", "cross_validate", "corrected_interval", "folds", "linear_probe",
           "fine_tune_cost", "fold_scores", "summarise", "parse_fold", "fold_spec", "fold_sides"]
