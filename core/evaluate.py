"""Honest numbers for a trained run: metrics with 95% intervals, calibration, screening, OOD.

The intervals themselves (bootstrap, Wilson) are core/stats.py.

`evaluate_run(run_dir)` is called by `core.train.train` once the best checkpoint's outputs
are saved (see docs/ARCHITECTURE.md, "Contract between training and the trust features").
Everything that is *chosen* (temperature, threshold, OOD cut-off) is chosen on validation;
the test split is only measured, so its figures are not flattered by those choices.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sklearn.metrics import (accuracy_score, average_precision_score, balanced_accuracy_score,
                             confusion_matrix, f1_score, precision_recall_fscore_support,
                             roc_auc_score, roc_curve)

from core import calibrate, runs, screening, stats
from core.errors import RunError
from core.jsonfile import json_safe
from core.i18n import Msg
from core.ood import OODDetector

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
NO_TEST_NOTE = Msg("eval_note.no_test")  # a core.i18n.Msg: evaluation.json keeps its key in notes_i18n
SMALL_TEST_PER_CLASS = 30  # below this per class, intervals are wide enough to say so
ROC_MAX_POINTS = 200
MISCLASSIFIED_MAX = 200


# ---------------------------------------------------------------------------------------
# point metrics
# ---------------------------------------------------------------------------------------
def _auc_or_none(fn, y_bin: np.ndarray, score: np.ndarray) -> float | None:
    # AUC is undefined when a class is absent (or is everything) in this split
    if y_bin.all() or not y_bin.any():
        return None
    return float(fn(y_bin, score))


def _mean_defined(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def metrics(probs, labels, class_names, preds=None, positive_index: int | None = None) -> dict:
    """Accuracy, balanced accuracy, macro-F1, per-class P/R/F1/support/AUCs, confusion matrix.

    preds: the decisions to score (default argmax; screening passes thresholded decisions).
    positive_index: class whose AUC is "the" AUC (default: class 1 for two classes, else macro).
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    C = len(class_names)
    pred = p.argmax(axis=1) if preds is None else np.asarray(preds, dtype=np.int64)
    ids = list(range(C))
    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=ids, zero_division=0)
    roc = [_auc_or_none(roc_auc_score, y == k, p[:, k]) for k in ids]
    pr = [_auc_or_none(average_precision_score, y == k, p[:, k]) for k in ids]
    cm = confusion_matrix(y, pred, labels=ids)
    rows = cm.sum(axis=1, keepdims=True)
    pos = positive_index if positive_index is not None else (1 if C == 2 else None)
    return {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "roc_auc": roc[pos] if pos is not None else _mean_defined(roc),
        "roc_auc_macro": _mean_defined(roc),
        "pr_auc": pr[pos] if pos is not None else _mean_defined(pr),
        "pr_auc_macro": _mean_defined(pr),
        "per_class": [{"name": class_names[k], "precision": float(prec[k]), "recall": float(rec[k]),
                       "f1": float(f1[k]), "support": int(sup[k]), "roc_auc": roc[k],
                       "pr_auc": pr[k]} for k in ids],
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_normalized": np.divide(cm, rows, out=np.zeros(cm.shape),
                                                 where=rows > 0).tolist(),
    }


# ---------------------------------------------------------------------------------------
# run folder
# ---------------------------------------------------------------------------------------
def load_outputs(run_dir) -> dict[str, dict[str, np.ndarray]]:
    """{split: {logits, labels, features, paths}} for each outputs_<split>.npz present."""
    out = {}
    for split in SPLITS:
        path = Path(run_dir) / f"outputs_{split}.npz"
        if not path.exists():
            continue
        try:
            with np.load(path, allow_pickle=False) as z:
                out[split] = {k: z[k] for k in z.files}
        except ValueError as exc:  # object arrays need pickle; we refuse to unpickle
            raise RunError(Msg("err.eval.unsafe", name=path.name, detail=str(exc))) from None
        if len(out[split].get("labels", [])) == 0:
            log.warning("%s is empty; ignoring it", path.name)
            del out[split]
    return out


def _downsample(*arrays, max_points: int = ROC_MAX_POINTS):
    n = len(arrays[0])
    if n <= max_points:
        return [a.tolist() for a in arrays]
    keep = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    return [a[keep].tolist() for a in arrays]


def _roc_points(y_bin, score) -> dict | None:
    if y_bin.all() or not y_bin.any():
        return None
    fpr, tpr, thr = roc_curve(y_bin, score)
    thr = np.where(np.isfinite(thr), thr, 1.0)  # sklearn's first threshold is +inf
    fpr, tpr, thr = _downsample(fpr, tpr, thr)
    return {"fpr": fpr, "tpr": tpr, "thresholds": thr}


def _positive_index(meta: dict, class_names: list[str]) -> tuple[int | None, bool]:
    """(index of the screening class, whether the user chose it).

    Two-class runs without a chosen class are analysed for class 1 (sklearn's convention)
    but the threshold is not applied to predictions: a leaf sorter did not ask for it.
    """
    chosen = meta.get("positive_class")
    if chosen is not None:
        if chosen not in class_names:
            raise RunError(Msg("err.eval.bad_positive", positive=repr(chosen), classes=', '.join(class_names)))
        return class_names.index(chosen), True
    return (1, False) if len(class_names) == 2 else (None, False)


def _target_sensitivity(run_dir: Path, meta: dict) -> float:
    if "target_sensitivity" in meta:
        return float(meta["target_sensitivity"])
    config = runs.read_json(run_dir / runs.CONFIG_FILE)
    if config is not None:
        return float(config.get("target_sensitivity", 0.95))
    return 0.95


def _screening(val, ev, probs_val, probs_ev, pos, target, applied, n_boot, seed) -> dict:
    y_val = val["labels"] == pos
    thr = screening.threshold_for_sensitivity(probs_val[:, pos], y_val, target)
    y_ev = ev["labels"] == pos
    return {
        "positive_index": pos, "target_sensitivity": target, "threshold": thr,
        "applied_to_predictions": applied,
        "validation": screening.operating_point(probs_val[:, pos], y_val, thr),
        "evaluation": screening.operating_point(probs_ev[:, pos], y_ev, thr),
        "evaluation_ci": stats.operating_point_ci(probs_ev[:, pos], y_ev, thr, n_boot, seed),
    }


def _ood(outs: dict, eval_split: str, notes: list[str]) -> OODDetector | None:
    fit_split = "train" if "train" in outs else "val"
    if any("features" not in outs[s] for s in {fit_split, "val", eval_split}):
        notes.append(Msg("eval_note.no_features"))
        return None
    if fit_split != "train":
        notes.append(Msg("eval_note.no_train_outputs"))
    try:
        det = OODDetector.fit(outs[fit_split]["features"], outs[fit_split]["labels"])
    except RunError as exc:
        log.warning("unusual-photo check not fitted: %s", exc)
        notes.append(str(exc))
        return None
    det.calibrate(outs["val"]["features"])
    return det


def _split_sizes(outs: dict, class_names: list[str]) -> dict:
    return {s: {"n": int(len(o["labels"])),
                "per_class": {c: int((o["labels"] == k).sum()) for k, c in enumerate(class_names)}}
            for s, o in outs.items()}


def _misclassified(ev: dict, probs: np.ndarray, preds: np.ndarray, class_names) -> list[dict]:
    wrong = np.flatnonzero(preds != ev["labels"])
    conf = probs[wrong, preds[wrong]]
    wrong = wrong[np.argsort(-conf)][:MISCLASSIFIED_MAX]  # confident mistakes first
    paths = ev.get("paths", np.array([""] * len(preds)))
    return [{"path": str(paths[i]), "true": class_names[ev["labels"][i]],
             "predicted": class_names[preds[i]], "confidence": float(probs[i, preds[i]])}
            for i in wrong]


def _check_shapes(outs: dict, class_names: list[str], run_name: str) -> None:
    for split, o in outs.items():
        logits, labels = o.get("logits"), o.get("labels")
        if logits is None or logits.ndim != 2 or logits.shape[1] != len(class_names) \
                or len(labels) != len(logits) or labels.min() < 0 or labels.max() >= len(class_names):
            raise RunError(Msg("err.eval.outputs_mismatch", split=split, run=run_name, n=str(len(class_names))))


def _calibration_report(logits: np.ndarray, labels: np.ndarray, T: float) -> dict:
    raw, cal = calibrate.apply_temperature(logits, 1.0), calibrate.apply_temperature(logits, T)
    return {"temperature": T,
            "ece_before": calibrate.expected_calibration_error(raw, labels),
            "ece_after": calibrate.expected_calibration_error(cal, labels),
            "bins_before": calibrate.reliability_bins(raw, labels),
            "bins_after": calibrate.reliability_bins(cal, labels)}


def _small_split_note(labels: np.ndarray, n_classes: int, split: str) -> list[str]:
    fewest = int(np.bincount(labels, minlength=n_classes).min())
    if fewest >= SMALL_TEST_PER_CLASS:
        return []
    return [Msg("eval_note.small_split", split=Msg(f"eval_note.split.{split}"), fewest=fewest)]


def _load_for_evaluation(run_dir: Path) -> tuple[dict, list[str], dict]:
    meta = runs.read_json_required(run_dir / runs.META_FILE)
    class_names = list(meta.get("class_names") or [])
    if len(class_names) < 2:
        raise RunError(Msg("err.eval.few_classes", run=run_dir.name))
    outs = load_outputs(run_dir)
    if "val" not in outs:
        raise RunError(Msg("err.eval.no_val", run=run_dir.name))
    _check_shapes(outs, class_names, run_dir.name)
    return meta, class_names, outs


def evaluate_run(run_dir, n_boot: int = 1000, seed: int = 0) -> dict:
    """Fit temperature / threshold / OOD on val, measure on test (or val), write the results.

    Writes `<run>/evaluation.json`, `<run>/ood.npz` and updates meta.json keys
    `temperature`, `threshold`, `positive_class`, `ood`. Returns the evaluation dict.
    """
    run_dir = Path(run_dir)
    meta, class_names, outs = _load_for_evaluation(run_dir)
    eval_split = "test" if "test" in outs else "val"
    notes = [NO_TEST_NOTE] if eval_split == "val" else []
    val, ev = outs["val"], outs[eval_split]

    # everything chosen is chosen on val; ev is only measured
    T = calibrate.fit_temperature(val["logits"], val["labels"])
    probs_val = calibrate.apply_temperature(val["logits"], T)
    probs_ev = calibrate.apply_temperature(ev["logits"], T)
    pos, chosen = _positive_index(meta, class_names)
    screen = None
    if pos is not None:
        try:
            screen = _screening(val, ev, probs_val, probs_ev, pos, _target_sensitivity(run_dir, meta),
                                chosen, n_boot, seed)
        except RunError as exc:
            log.warning("screening threshold not set: %s", exc)
            notes.append(str(exc))
    threshold = screen["threshold"] if (screen and chosen) else None
    preds = screening.decide(probs_ev, pos, threshold)  # plain argmax when threshold is None
    notes += _small_split_note(ev["labels"], len(class_names), eval_split)
    det = _ood(outs, eval_split, notes)

    evaluation = {
        "evaluated_on": eval_split, "notes": [str(n) for n in notes], "class_names": class_names,
        "notes_i18n": [n.to_json() if isinstance(n, Msg) else None for n in notes],
        "split_sizes": _split_sizes(outs, class_names),
        "metrics": metrics(probs_ev, ev["labels"], class_names, preds, pos),
        "ci": {"level": 0.95, "n_bootstrap": n_boot,
               **stats.bootstrap_cis(probs_ev, ev["labels"], n_boot, seed, preds=preds, positive_index=pos)},
        "calibration": _calibration_report(ev["logits"], ev["labels"], T),
        "screening": screen,
        "roc": _roc_curves(ev["labels"], probs_ev, class_names, pos),
        "ood": None if det is None else {
            **det.to_meta(), "flagged_fraction": float(det.flag(ev["features"]).mean())},
        "misclassified": _misclassified(ev, probs_ev, preds, class_names),
    }
    if det is not None:
        det.save(run_dir)  # before meta points at it
    runs.write_json(run_dir / runs.EVALUATION_FILE, evaluation)
    _update_meta(run_dir, T, threshold, meta.get("positive_class"), det)
    return json_safe(evaluation)


def _roc_curves(labels, probs, class_names, pos) -> dict:
    """One curve for the positive class, else one per class (one-vs-rest)."""
    ks = [pos] if pos is not None else range(len(class_names))
    return {class_names[k]: _roc_points(labels == k, probs[:, k]) for k in ks}


def _update_meta(run_dir: Path, T: float, threshold, positive_class, det) -> None:
    # under meta.json's lock, so keys another module writes meanwhile are kept
    runs.update_meta(run_dir, **json_safe({"temperature": T, "threshold": threshold, "positive_class": positive_class,
                                           "ood": None if det is None else det.to_meta()}))
