"""Cross-validation by fine-tuning: one real training of a TrainConfig per fold.

The frozen-feature estimate (core.estimate) fits a linear probe per fold in a fraction of a
second; this one trains the chosen strategy (fine-tune, full, two-stage) k x r times, so it
costs k x r trainings (`cost`, stated before it starts) and runs in a background process
like a training:

    folder = start(config, n_splits=5, n_repeats=3)   # the page; poll with core.estimate.read_job
    stop(folder)                                       # stops the current fold's training and the rest
    result = fine_tune_cv(config, 5, 3)                # in this process (`latih estimate --strategy full`)

Each fold's training gets `config.replace(cv_fold="5x3:r0f2")`: prepare_data turns that into
the same group-aware stratified fold as the probe's (core.cross_validation.folds), so every
fold run is an ordinary run folder that repeats from its config.json. The summary is the
probe's: mean accuracy, balanced accuracy and AUC with Nadeau-Bengio corrected intervals,
per-class recall, and the spread between folds.
"""
from __future__ import annotations

import hashlib
import logging
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from core import background
from core.config import TrainConfig
from core.errors import DataError, LatihError
from core.i18n import Msg

log = logging.getLogger(__name__)

FOLDS_DIR = "folds"


def plan(config: TrainConfig, n_splits: int = 5, n_repeats: int = 3, workspace=None) -> dict:
    """How many folds these photos allow, and the photos and groups they are made of."""
    from core.cross_validation import folds
    from core.data.groups import assign_groups
    from core.data.scan import scan
    from core.data.split import split_groups

    df = scan(config.data_path, workspace=workspace)
    rows = df[df["readable"].astype(bool)]
    if config.exclude:
        rows = rows[~rows["path"].isin(set(config.exclude))]
    if rows["label"].nunique() < 2:
        raise DataError(Msg("err.cv.two_classes"))
    labels = np.unique(rows["label"].astype(str), return_inverse=True)[1]
    if np.bincount(labels).min() < 2:
        raise DataError(Msg("err.cv.two_photos"))
    patient = assign_groups(rows, config.groups) if config.groups else None
    groups = split_groups(rows, patient).to_numpy()
    k = sum(1 for _ in folds(labels, groups, n_splits, 1, config.seed))
    return {"n_splits": k, "n_repeats": n_repeats, "n_photos": int(len(rows)), "n_groups": int(len(np.unique(groups))),
            "classes": sorted(rows["label"].astype(str).unique())}


def cost(config: TrainConfig, n_photos: int, n_splits: int = 5, n_repeats: int = 3) -> dict:
    """What it will cost: one training per fold (core.cross_validation.fine_tune_cost)."""
    from core.cost import estimate_cost
    from core.cross_validation import fine_tune_cost

    one = estimate_cost(config.backbone, config.strategy, n_photos, config.image_size, config.epochs,
                        config.batch_size, head_epochs=config.head_epochs, unfreeze_blocks=config.unfreeze_blocks,
                        val_fraction=1 / max(2, n_splits))["seconds"]
    return fine_tune_cost(one, n_splits, n_repeats)


def fine_tune_cv(config: TrainConfig, n_splits: int = 5, n_repeats: int = 3, workspace=None, folder=None,
                 progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> dict:
    """Train `config` on every fold (k x r trainings) and summarise; returns a dict shaped like the
    estimate's (`cross_validation` holds the CVResult), with `status` "done" or "stopped"."""
    from core.cross_validation import fold_scores, fold_spec, summarise
    from core.evaluate import load_outputs
    from core.train import train

    if config.strategy == "feature-extraction":
        raise LatihError(Msg("err.cv.frozen_covers"))
    started = time.perf_counter()
    layout = plan(config, n_splits, n_repeats, workspace)
    k = layout["n_splits"]
    folder = Path(folder) if folder is not None else _default_folder(config, workspace)
    total = k * n_repeats
    scores, fold_runs, status = [], [], "done"
    for index in range(total):
        repeat, fold = divmod(index, k)
        if should_stop is not None and should_stop():
            status = "stopped"
            break
        if progress is not None:
            progress(index, total)
        spec = fold_spec(k, n_repeats, repeat, fold)
        run_dir = folder / FOLDS_DIR / f"r{repeat}f{fold}"
        if run_dir.exists():  # an earlier, stopped attempt: train this fold again from scratch
            import shutil

            shutil.rmtree(run_dir)
        result = train(config.replace(cv_fold=spec, test_fraction=0.0, run_name=f"cv {spec}"), workspace,
                       run_dir=run_dir)
        if result.status != "done":
            status = "stopped"
            break
        val = load_outputs(run_dir)["val"]
        logits = val["logits"] - val["logits"].max(1, keepdims=True)
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        scores.append(fold_scores(val["labels"], probs, _n_train(run_dir)))
        fold_runs.append({"fold": spec, "run_dir": str(run_dir), "val_accuracy": scores[-1]["accuracy"]})
        log.info("fine-tuned cross-validation fold %d of %d (%s): accuracy %.4f", index + 1, total, spec,
                 scores[-1]["accuracy"])
    if progress is not None:
        progress(len(scores), total)
    out = {"data_path": config.data_path, "groups": config.groups, "backbone": config.backbone,
           "strategy": config.strategy, "classes": layout["classes"], "n_photos": layout["n_photos"],
           "n_groups": layout["n_groups"], "status": status, "folds_done": len(scores), "folds_total": total,
           "fold_runs": fold_runs, "config": config.to_dict(), "cross_validation": None}
    if status == "done":  # a stopped one has too few folds for an honest interval
        out["cross_validation"] = summarise(scores, layout["classes"], n_repeats, layout["n_photos"],
                                            layout["n_groups"], started).to_dict()
    out["seconds"] = {"total": round(time.perf_counter() - started, 1)}
    return out


def _n_train(run_dir: Path) -> int:
    import pandas as pd

    splits = pd.read_csv(run_dir / "splits.csv", usecols=["split"])
    return int((splits["split"] == "train").sum())


# ---------------------------------------------------------------- background job
def _default_folder(config: TrainConfig, workspace=None) -> Path:
    return job_dir(config.data_path, config.groups, config.strategy, workspace)


def job_dir(data_path: str, groups: str = "", strategy: str = "full", workspace=None) -> Path:
    from core.workspace import subdir

    key = hashlib.sha1(f"{Path(data_path).expanduser().resolve()}|{groups}|{strategy}".encode()).hexdigest()[:12]
    return subdir("estimates", workspace) / f"fine-tune-{key}"


def start(config: TrainConfig, n_splits: int = 5, n_repeats: int = 3, workspace=None) -> Path:
    """Run fine_tune_cv in a background process (core.background); poll the folder with
    core.estimate.read_job."""
    from core.estimate import forget_result, read_job

    folder = _default_folder(config, workspace)
    if read_job(folder)["state"] == "running":
        return folder
    forget_result(folder)
    (folder / "STOP").unlink(missing_ok=True)
    background.begin(folder, "core.fine_tune_cv", {"config": config.to_dict(), "n_splits": n_splits,
                                                   "n_repeats": n_repeats,
                                                   "workspace": str(workspace) if workspace else None})
    return folder


def stop(folder) -> None:
    """Stop after the current batch: the fold in training gets its STOP file, no further fold starts."""
    folder = Path(folder)
    (folder / "STOP").touch()
    for run_dir in (folder / FOLDS_DIR).glob("*") if (folder / FOLDS_DIR).is_dir() else ():
        (run_dir / "STOP").touch()
    log.info("asked the fine-tuned cross-validation in %s to stop", folder)


def _worker(folder: Path) -> int:
    from core.estimate import RESULT_FILE
    from core.jsonfile import write_json_atomic

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    request = background.request(folder)
    report = background.Reporter(folder)

    def progress(done: int, total: int) -> None:  # once per fold: each one is said
        report(final=True, task="fine_tune", progress=done / max(total, 1), fold=min(done + 1, total), folds=total)

    try:
        config = TrainConfig.from_dict(request["config"])
        result = fine_tune_cv(config, request.get("n_splits", 5), request.get("n_repeats", 3),
                              request.get("workspace"), folder, progress, lambda: (folder / "STOP").exists())
        write_json_atomic(folder / RESULT_FILE, result)
    except Exception as exc:  # said on the page (core.background.fail); a bug's traceback goes to the log
        return background.fail(folder, exc)
    background.finish(folder, state="stopped" if result["status"] == "stopped" else "done",
                      folds_done=result["folds_done"], folds_total=result["folds_total"])
    return 0


if __name__ == "__main__":
    sys.exit(_worker(Path(sys.argv[1])))


__all__ = ["fine_tune_cv", "plan", "cost", "start", "stop", "job_dir"]
