"""The "Estimate" action: how good a model these photos can give, with intervals, and whether
more photos would help. Runs on cached frozen features (core.features), so it takes seconds
to a minute once the features exist; the first time it also pays one forward pass per photo.

    result = estimate(data_path, groups="eye-pair")     # dict, also what `latih estimate --json` prints
    job = start(data_path, groups, workspace)           # the same in a background process (the app)
    read_job(job)                                        # {"state", "task", "progress", "result"} (core.background)

A fine-tuned cross-validation costs one full training per fold: `estimate` states that cost
(from core.cost.estimate_cost) rather than running it.
"""
from __future__ import annotations

import hashlib
import logging
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from core import background, runs
from core.config import DEFAULT_BACKBONE
from core.errors import DataError
from core.jsonfile import read_json, write_json_atomic
from core.i18n import Msg

log = logging.getLogger(__name__)

RESULT_FILE = "estimate.json"
OLD_STATUS_FILE = runs.STATUS_FILE  # an estimate kept its state under a run's file name before core.background (still read)
FINISHED_STATES = ("done", "stopped", "failed")


def estimate(data_path: str, groups: str = "", backbone: str = DEFAULT_BACKBONE, n_splits: int = 5,
             n_repeats: int = 3, draws: int = 5, curve: bool = True, workspace=None, seed: int = 0,
             progress: Callable[[str, int, int], None] | None = None, device: str = "auto") -> dict:
    from core.cost import estimate_cost
    from core.cross_validation import cross_validate, fine_tune_cost
    from core.data.groups import assign_groups
    from core.data.scan import scan
    from core.data.split import split_groups
    from core.features import familiarity, frozen_features
    from core.learning_curve import forecast_check, learning_curve

    started = time.perf_counter()
    df = scan(data_path, workspace=workspace)
    rows = df[df["readable"].astype(bool)].reset_index(drop=True)
    rows.attrs = dict(df.attrs)
    if rows.empty:
        raise DataError(Msg("err.estimate.no_photos", path=str(data_path)))
    class_names = sorted(rows["label"].astype(str).unique())
    labels = rows["label"].astype(str).map({c: i for i, c in enumerate(class_names)}).to_numpy()
    patient = assign_groups(rows, groups) if groups else None
    fold_groups = split_groups(rows, patient).to_numpy()
    say = progress or (lambda task, done, total: None)
    t0 = time.perf_counter()
    frozen = frozen_features(rows, backbone, workspace, progress=lambda d, t: say("features", d, t), device=device)
    features_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cv = cross_validate(frozen.features, labels, fold_groups, class_names, n_splits, n_repeats, seed,
                        progress=lambda d, t: say("folds", d, t))
    cv_s = time.perf_counter() - t0
    result = {"data_path": str(data_path), "groups": groups, "backbone": backbone, "classes": class_names,
              "n_photos": int(len(rows)), "n_groups": int(len(np.unique(fold_groups))),
              "familiarity": round(familiarity(frozen.imagenet_probs), 4),
              "cross_validation": cv.to_dict(), "seconds": {"features": round(features_s, 1), "cv": round(cv_s, 1)}}
    if curve:
        t0 = time.perf_counter()
        lc = learning_curve(frozen.features, labels, fold_groups, draws=draws, seed=seed,
                            progress=lambda d, t: say("curve", d, t))
        result["learning_curve"] = lc.to_dict()
        result["forecast_check"] = forecast_check(lc)
        result["seconds"]["curve"] = round(time.perf_counter() - t0, 1)
    from core.advice import FINE_TUNE_RECIPE, decide, training_count

    n_train = training_count(rows)
    strategy, code, reason = decide(cv.accuracy.mean, result["familiarity"], n_train)
    result["advice"] = {"strategy": strategy, "code": code, "reason": reason, "probe": cv.accuracy.mean,
                        "familiarity": result["familiarity"], "n_train": n_train,
                        "expected_seconds": estimate_cost(backbone, strategy, len(rows),
                                                          epochs=FINE_TUNE_RECIPE["epochs"] if strategy == "full" else 15)["seconds"]}
    one_training = estimate_cost(backbone, "full", int(len(rows) * (1 - 1 / max(2, cv.n_splits))),
                                 epochs=FINE_TUNE_RECIPE["epochs"],
                                 val_fraction=0.0)["seconds"]
    result["fine_tune_cv_cost"] = fine_tune_cost(one_training, cv.n_splits, n_repeats)
    result["seconds"]["total"] = round(time.perf_counter() - started, 1)
    return result


def summary_lines(result: dict) -> list[str]:
    """The estimate in plain lines (CLI text output)."""
    cv = result["cross_validation"]

    def iv(d):
        return "n/a" if d is None else f"{d['mean'] * 100:.1f}% (95% interval {d['low'] * 100:.1f} to {d['high'] * 100:.1f})"

    how = (f"{result['backbone']} trained ({result['strategy']}) on every fold" if result.get("strategy")
           else f"frozen {result['backbone']} features")
    lines = [f"{result['n_photos']:,} photos, {len(result['classes'])} classes, {result['n_groups']:,} groups; {how}",
             f"cross-validation {cv['n_splits']} folds x {cv['n_repeats']} repeats "
             f"({'one training per fold' if result.get('strategy') else 'linear probe'}):",
             f"  accuracy           {iv(cv['accuracy'])}",
             f"  balanced accuracy  {iv(cv['balanced_accuracy'])}",
             f"  AUC                {iv(cv['auc'])}",
             f"  folds range {cv['fold_spread']['min'] * 100:.1f}% to {cv['fold_spread']['max'] * 100:.1f}% "
             f"(std {cv['fold_spread']['std'] * 100:.1f} points)"]
    for name, recall in cv["per_class_recall"].items():
        lines.append(f"  recall {name}: {iv(recall)}")
    lc = result.get("learning_curve")
    if lc:
        lines.append("learning curve (share of training photos: accuracy):")
        for p in lc["points"]:
            lines.append(f"  {p['fraction'] * 100:>3.0f}% ({p['n_train']:.0f} photos): {p['accuracy'] * 100:.1f}% "
                         f"({p['low'] * 100:.1f} to {p['high'] * 100:.1f})")
        if lc.get("forecast"):
            lines.append(lc["forecast"]["sentence"])
    advice = result.get("advice")
    if advice:
        lines.append(f"recommended strategy: {advice['strategy']}: {advice['reason']}")
    cost = result.get("fine_tune_cv_cost") or {"trainings": 0, "seconds": 0}
    if not result.get("strategy"):
        lines.append(f"a fine-tuned cross-validation would need {cost['trainings']} trainings, about "
                     f"{cost['seconds'] / 60:.0f} min on this kind of machine")
    lines.append(f"took {result['seconds']['total']:.1f} s")
    return lines


# ---------------------------------------------------------------- background job
def job_dir(data_path: str, groups: str = "", workspace=None) -> Path:
    from core.workspace import subdir

    key = hashlib.sha1(f"{Path(data_path).expanduser().resolve()}|{groups}".encode()).hexdigest()[:12]
    return subdir("estimates", workspace) / key


def start(data_path: str, groups: str = "", workspace=None, n_splits: int = 5, n_repeats: int = 3) -> Path:
    """Run `estimate` in a background process (core.background); returns its folder (poll with read_job)."""
    folder = job_dir(data_path, groups, workspace)
    if read_job(folder)["state"] == "running":
        return folder
    forget_result(folder)
    background.begin(folder, "core.estimate", {"data_path": str(data_path), "groups": groups, "n_splits": n_splits,
                                               "n_repeats": n_repeats,
                                               "workspace": str(workspace) if workspace else None})
    return folder


def read_job(folder: Path) -> dict:
    """An estimate's (or a fine-tuned cross-validation's) status (core.background.read_status),
    with its result once it is done or stopped."""
    folder = Path(folder)
    status = background.read_status(folder)
    if status["state"] == "none":  # finished before the jobs shared core.background: keep its result
        old = read_json(folder / OLD_STATUS_FILE) or {}
        status = old if old.get("state") in FINISHED_STATES else status
    status["result"] = read_json(folder / RESULT_FILE) if status.get("state") in ("done", "stopped") else None
    return status


def forget_result(folder: Path) -> None:
    """Before a new start: the result and status a previous job left."""
    for name in (RESULT_FILE, OLD_STATUS_FILE):
        (Path(folder) / name).unlink(missing_ok=True)


def _worker(folder: Path) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    request = background.request(folder)
    report = background.Reporter(folder)

    def progress(task: str, done: int, total: int) -> None:
        report(final=done >= total, task=task, done=done, total=total, progress=done / max(total, 1))

    try:
        result = estimate(request["data_path"], request.get("groups", ""), n_splits=request.get("n_splits", 5),
                          n_repeats=request.get("n_repeats", 3), workspace=request.get("workspace"),
                          progress=progress)
        write_json_atomic(folder / RESULT_FILE, result)
    except Exception as exc:  # said on the page (core.background.fail); a bug's traceback goes to the log
        return background.fail(folder, exc)
    background.finish(folder, seconds=round(result["seconds"]["total"], 1))
    return 0


if __name__ == "__main__":
    sys.exit(_worker(Path(sys.argv[1])))


__all__ = ["estimate", "summary_lines", "start", "read_job", "job_dir"]
