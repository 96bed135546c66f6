"""The operating point of a screening run, chosen by the clinician after training.

Training sets the threshold on p(positive) from validation photos to reach the target
sensitivity (core.screening, core.evaluate). Here the clinician can look at any other
threshold: sensitivity, specificity, PPV and NPV with 95% intervals on the validation photos
and on the held-out test photos (or on validation only, said plainly, when there is no test
split), and save one. Saving writes the threshold into meta.json (which core.predict reads,
so the Test page and `latih predict` follow), recomputes the threshold-dependent parts of
evaluation.json (so the model card and the export follow) and records the change in
meta.json's `threshold_history` (old, new, when, where).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from core import calibrate, evaluate, jsonfile, runs, screening, stats
from core.errors import LatihError, RunError
from core.i18n import Msg

log = logging.getLogger(__name__)

SOURCES = ("evaluate page", "cli")
RATES = ("sensitivity", "specificity", "ppv", "npv")


@dataclass
class ScreeningScores:
    """The calibrated positive-class scores of one screening run, per split (val, test)."""

    run_dir: Path
    class_names: list[str]
    positive_class: str
    positive_index: int
    temperature: float
    target_sensitivity: float
    threshold: float | None  # the saved one (meta.json)
    probs: dict[str, np.ndarray] = field(default_factory=dict)  # split -> (N, C) calibrated
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # split -> (N,) class index
    paths: dict[str, np.ndarray] = field(default_factory=dict)  # split -> (N,) photo paths
    history: list[dict] = field(default_factory=list)

    @property
    def measured_on(self) -> str:
        """The split whose figures count: test when there is one, else validation."""
        return "test" if "test" in self.probs else "val"

    @property
    def validation_only(self) -> bool:
        return self.measured_on == "val"

    def scores(self, split: str) -> np.ndarray:
        return self.probs[split][:, self.positive_index]

    def truth(self, split: str) -> np.ndarray:
        return self.labels[split] == self.positive_index

    def threshold_for_target(self, target: float | None = None) -> float:
        """The threshold training would choose on validation for `target` (default: the run's)."""
        return screening.threshold_for_sensitivity(self.scores("val"), self.truth("val"),
                                                   self.target_sensitivity if target is None else target)


def is_screening(run_dir) -> bool:
    """True when the run has a positive class (the only runs whose threshold can be moved)."""
    return bool(runs.read_meta(Path(run_dir)).get("positive_class"))


def load_scores(run_dir) -> ScreeningScores:
    """Read meta.json and the saved outputs; RunError when the run is not a screening run."""
    run_dir = Path(run_dir)
    meta = runs.read_meta(run_dir)
    class_names = list(meta.get("class_names") or [])
    positive = meta.get("positive_class")
    if not positive:
        raise RunError(Msg("err.oppoint.no_positive", run=run_dir.name))
    if positive not in class_names:
        raise RunError(Msg("err.oppoint.bad_positive", positive=repr(positive), run=run_dir.name))
    outs = evaluate.load_outputs(run_dir)
    if "val" not in outs:
        raise RunError(Msg("err.oppoint.no_val", run=run_dir.name))
    temperature = float(meta.get("temperature") or 1.0)
    scores = ScreeningScores(
        run_dir=run_dir, class_names=class_names, positive_class=positive,
        positive_index=class_names.index(positive), temperature=temperature,
        target_sensitivity=float(meta.get("target_sensitivity") or 0.95),
        threshold=None if meta.get("threshold") is None else float(meta["threshold"]),
        history=list(meta.get("threshold_history") or []))
    for split in ("val", "test"):
        if split in outs:
            scores.probs[split] = np.asarray(calibrate.apply_temperature(outs[split]["logits"], temperature),
                                             dtype=np.float64)
            scores.labels[split] = np.asarray(outs[split]["labels"], dtype=np.int64)
            if "paths" in outs[split]:
                scores.paths[split] = outs[split]["paths"]
    return scores


def check_threshold(threshold) -> float:
    """A threshold on a probability: a finite number from 0 to 1, else one plain LatihError."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise LatihError(Msg("err.oppoint.threshold", got=repr(threshold))) from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise LatihError(Msg("err.oppoint.threshold", got=str(threshold)))
    return value


def figures_at(scores: ScreeningScores, threshold: float, n_boot: int = 1000, seed: int = 0) -> dict:
    """Sensitivity, specificity, PPV, NPV (with 95% intervals) and counts at `threshold`.

    {"threshold", "positive_class", "target_sensitivity", "measured_on", "validation_only",
     "splits": {"val": {sensitivity, ..., tp, fp, tn, fn, "ci": {rate: [lo, hi] | None}},
                "test": {...} (when there is a test split)}}
    """
    threshold = check_threshold(threshold)
    splits = {}
    for split in scores.probs:
        s, y = scores.scores(split), scores.truth(split)
        splits[split] = {**screening.operating_point(s, y, threshold),
                         "n": int(len(y)), "n_positive": int(y.sum()),
                         "ci": stats.operating_point_ci(s, y, threshold, n_boot, seed)}
    return {"threshold": threshold, "positive_class": scores.positive_class,
            "target_sensitivity": scores.target_sensitivity, "measured_on": scores.measured_on,
            "validation_only": scores.validation_only, "splits": splits}


def candidate_thresholds(scores: ScreeningScores) -> list[float]:
    """Every threshold that gives a different operating point on validation, highest first
    (so moving right catches more), plus the saved one and the one for the run's target."""
    values = set(np.unique(scores.scores("val")).tolist())
    if scores.threshold is not None:
        values.add(scores.threshold)
    try:
        values.add(scores.threshold_for_target())
    except RunError as exc:  # no positive in validation: there is no target threshold
        log.info("no target threshold: %s", exc)
    return sorted(values, reverse=True)


def target_shortfall(evaluation: dict | None) -> dict | None:
    """When the saved operating point may miss the target sensitivity, how far, else None.

    Judged on the evaluation split (test, or validation when there is none): the target is not
    shown to be reached when the lower end of the sensitivity's 95% interval is below it.
    {"target", "split", "sensitivity", "low", "high", "point_below": bool}
    """
    screen = (evaluation or {}).get("screening") or {}
    if not screen.get("applied_to_predictions") or not screen.get("evaluation"):
        return None
    sens = screen["evaluation"].get("sensitivity")
    band = (screen.get("evaluation_ci") or {}).get("sensitivity")
    target = float(screen.get("target_sensitivity") or 0.95)
    if sens is None:
        return None
    low, high = (band if band else (sens, sens))
    if low >= target and sens >= target:
        return None
    return {"target": target, "split": evaluation.get("evaluated_on", "test"), "sensitivity": float(sens),
            "low": float(low), "high": float(high), "point_below": bool(sens < target)}


# ---------------------------------------------------------------------------------------
# saving
# ---------------------------------------------------------------------------------------
def _now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _screening_section(scores: ScreeningScores, old: dict, threshold: float, n_boot: int, seed: int) -> dict:
    ev_split = scores.measured_on
    try:
        from_target = scores.threshold_for_target()
    except RunError:
        from_target = old.get("threshold_from_target", old.get("threshold"))
    s_val, y_val = scores.scores("val"), scores.truth("val")
    s_ev, y_ev = scores.scores(ev_split), scores.truth(ev_split)
    return {**old,
            "positive_index": scores.positive_index, "target_sensitivity": scores.target_sensitivity,
            "threshold": threshold, "applied_to_predictions": True,
            "threshold_from_target": from_target,
            "chosen_by": "target" if math.isclose(threshold, from_target, rel_tol=0, abs_tol=1e-12) else "user",
            "validation": screening.operating_point(s_val, y_val, threshold),
            "evaluation": screening.operating_point(s_ev, y_ev, threshold),
            "evaluation_ci": stats.operating_point_ci(s_ev, y_ev, threshold, n_boot, seed)}


def _reevaluate(scores: ScreeningScores, ev: dict, threshold: float, seed: int = 0) -> dict:
    """evaluation.json with everything that depends on the threshold recomputed."""
    split = scores.measured_on
    if ev.get("evaluated_on", split) != split:
        raise RunError(Msg("err.oppoint.eval_mismatch", run=scores.run_dir.name))
    n_boot = int((ev.get("ci") or {}).get("n_bootstrap") or 1000)
    probs, labels = scores.probs[split], scores.labels[split]
    preds = screening.decide(probs, scores.positive_index, threshold)
    outs = {"labels": labels, **({"paths": scores.paths[split]} if split in scores.paths else {})}
    return {**ev,
            "metrics": evaluate.metrics(probs, labels, scores.class_names, preds, scores.positive_index),
            "ci": {"level": 0.95, "n_bootstrap": n_boot,
                   **stats.bootstrap_cis(probs, labels, n_boot, seed, preds=preds,
                                            positive_index=scores.positive_index)},
            "screening": _screening_section(scores, ev.get("screening") or {}, threshold, n_boot, seed),
            "misclassified": evaluate._misclassified(outs, probs, preds, scores.class_names)}


def set_threshold(run_dir, threshold, source: str = "evaluate page") -> dict:
    """Save `threshold` as the run's operating point; returns the new evaluation.

    meta.json gets the threshold and a `threshold_history` entry {old, new, when, where,
    sensitivity/specificity on the evaluation split}; evaluation.json's metrics, intervals,
    screening section and mistakes are recomputed at the new threshold.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")  # a caller's bug
    threshold = check_threshold(threshold)
    run_dir = runs.resolve_run_dir(run_dir)
    scores = load_scores(run_dir)
    ev = runs.read_json(run_dir / runs.EVALUATION_FILE)
    if not ev:
        raise RunError(Msg("err.oppoint.no_eval", run=run_dir.name))
    new_ev = jsonfile.json_safe(_reevaluate(scores, ev, threshold))
    jsonfile.write_json_atomic(run_dir / runs.EVALUATION_FILE, new_ev)
    at = new_ev["screening"]["evaluation"]
    entry = {"old": scores.threshold, "new": threshold, "when": _now_iso(), "where": source,
             "split": scores.measured_on, "sensitivity": at.get("sensitivity"),
             "specificity": at.get("specificity")}

    def record(meta: dict) -> None:  # under meta.json's lock: no concurrent change is lost
        entry["old"] = meta.get("threshold")
        meta["threshold"] = threshold
        meta["threshold_history"] = [*(meta.get("threshold_history") or []), entry]

    # meta.json last: core.predict reads it, so predictions switch only once the record is written
    jsonfile.update_json(run_dir / runs.META_FILE, record)
    log.info("run %s: threshold %s -> %s (%s)", run_dir.name, entry["old"], threshold, source)
    return new_ev


__all__ = ["ScreeningScores", "is_screening", "load_scores", "check_threshold", "figures_at",
           "candidate_thresholds", "target_shortfall", "set_threshold"]
