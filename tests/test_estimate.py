"""Estimates: learning curve and its forecast, the strategy rules, `latih estimate`, the
background job the Evaluate page polls, and `latih train` without --strategy (auto)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from core.advice import FINE_TUNE_RECIPE, decide
from core.learning_curve import fit_curve, forecast_check, learning_curve, power_law, sentence

REPO = Path(__file__).resolve().parents[1]


def _features(n_per_class: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n_per_class)
    features = rng.normal(size=(2 * n_per_class, 32)) * noise + np.eye(2, 32)[labels]
    return features, labels, np.arange(len(labels)) // 2  # pairs of "eyes"


def test_learning_curve_rises_fits_and_forecasts():
    features, labels, groups = _features(150, noise=1.6)
    curve = learning_curve(features, labels, groups, draws=4, seed=0)
    assert [p.fraction for p in curve.points] == [0.1, 0.25, 0.5, 0.75, 1.0]
    assert curve.points[0].n_train < curve.points[-1].n_train
    assert curve.points[-1].accuracy > curve.points[0].accuracy  # noisy data: more photos help
    assert all(p.low <= p.accuracy <= p.high for p in curve.points)
    assert curve.fit is not None and 0 < curve.fit["a"] <= 1
    assert curve.forecast is not None and curve.forecast.gain_low <= curve.forecast.gain_high
    assert curve.forecast.sentence.startswith(("With about 100 more photos per class", "More photos are unlikely"))
    check = forecast_check(curve)
    assert check["fit_on_fractions"] == [0.1, 0.25, 0.5]
    assert 0.4 < check["predicted"] <= 1 and abs(check["error_points"]) < 15


def test_fit_recovers_a_known_power_law_and_sentences():
    n = np.array([20, 50, 100, 150, 200] * 3, float)
    fit = fit_curve(n, power_law(n, 0.95, 1.2, 0.6))
    assert abs(fit["a"] - 0.95) < 0.01 and abs(fit["c"] - 0.6) < 0.05
    assert sentence(0.1, 0.6, 200, 0.97, 0.96).startswith("More photos are unlikely to help much")
    assert sentence(2.0, 4.0, 200, 0.99, 0.9) == "With about 100 more photos per class, accuracy would likely rise by 2 to 4 points."


def test_strategy_rules():
    assert decide(0.98, 0.2, 1000)[0] == "feature-extraction"  # frozen features already enough
    strategy, code, reason = decide(0.92, 0.27, 564)  # fundus-like: far from ImageNet
    assert (strategy, code) == ("full", "far-from-imagenet") and "27%" in reason and "92%" in reason
    assert decide(0.90, 0.3, 80)[0] == "full"  # even when few
    assert decide(0.90, 0.8, 120)[:2] == ("feature-extraction", "few-familiar")
    assert decide(0.90, 0.8, 600)[0] == "feature-extraction" and decide(0.90, 0.8, 2000)[0] == "full"
    assert FINE_TUNE_RECIPE["strategy"] == "full" and FINE_TUNE_RECIPE["layer_decay"] == 1.0


def _env(workspace: Path) -> dict:
    return {**os.environ, "LATIH_WORKSPACE": str(workspace), "PYTHONPATH": str(REPO)}


def test_estimate_cli_background_job_and_auto_train(tmp_path, workspace):
    from core.estimate import read_job, start
    from tests.conftest import TINTS, generated_image, save_image, wait_for_job

    root = tmp_path / "clinic"
    for patient in range(16):
        label = "red" if patient % 2 else "green"
        for side in ("left", "right"):
            save_image(generated_image(patient * 2 + (side == "left"), 64, TINTS[patient % 2]),
                       root / label / f"{patient:03d}_{side}.png")

    done = subprocess.run([sys.executable, "-m", "core.cli", "estimate", str(root), "--groups", "eye-pair",
                           "--folds", "4", "--repeats", "2", "--json"], capture_output=True, text=True,
                          env=_env(workspace), cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    cv = result["cross_validation"]
    assert result["n_photos"] == 32 and result["n_groups"] == 16
    assert len(cv["fold_accuracy"]) == 8 and cv["accuracy"]["low"] <= cv["accuracy"]["mean"] <= cv["accuracy"]["high"]
    assert set(cv["per_class_recall"]) == {"green", "red"} and cv["auc"] is not None
    assert len(result["learning_curve"]["points"]) == 5
    assert result["advice"]["strategy"] in ("feature-extraction", "full") and result["fine_tune_cv_cost"]["trainings"] == 8

    bad = subprocess.run([sys.executable, "-m", "core.cli", "estimate", str(root), "--groups", "regex:(("],
                         capture_output=True, text=True, env=_env(workspace), cwd=REPO, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: ") and "Traceback" not in bad.stderr

    job = start(str(root), "eye-pair", workspace, n_splits=4, n_repeats=1)
    status = wait_for_job(job, wait_s=600, read=read_job)
    assert status["state"] == "done", status
    assert status["seconds"] > 0 and status["peak_mb"] > 0  # core.background.finish
    assert status["result"]["cross_validation"]["n_repeats"] == 1 and status["result"]["groups"] == "eye-pair"

    trained = subprocess.run([sys.executable, "-m", "core.cli", "train", str(root), "--groups", "eye-pair",
                              "--epochs", "2", "--augment", "none"], capture_output=True, text=True,
                             env=_env(workspace), cwd=REPO, timeout=600)
    assert trained.returncode == 0, trained.stderr
    first = trained.stdout.splitlines()[0]
    assert first.startswith("strategy (auto): ") and "Expected time" in first
    run_dir = Path(trained.stdout.strip().splitlines()[-1].split("run folder: ")[1])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["groups"] == "eye-pair" and config["strategy"] in first and config["epochs"] == 2
    splits = __import__("pandas").read_csv(run_dir / "splits.csv")
    patient = splits["path"].str.extract(r"/(\d{3})_")[0]
    assert (splits.groupby(patient)["split"].nunique() == 1).all()


def test_a_killed_estimate_says_so_and_one_an_older_latih_finished_keeps_its_result(make_dataset, workspace,
                                                                                    held_jobs):
    import signal

    from core.background import LOG_FILE, STATUS_FILE
    from core.estimate import OLD_STATUS_FILE, RESULT_FILE, job_dir, read_job, start
    from tests.conftest import wait_for_job

    root = make_dataset(("red", "green"), n=6)
    folder = job_dir(str(root), "", workspace)
    folder.mkdir(parents=True)
    (folder / OLD_STATUS_FILE).write_text(json.dumps({"state": "done", "message": "finished in 3 s"}))
    (folder / RESULT_FILE).write_text(json.dumps({"n_photos": 12}))
    assert read_job(folder)["state"] == "done" and read_job(folder)["result"] == {"n_photos": 12}

    assert start(str(root), "", workspace) == folder  # a new estimate forgets the old one
    assert not (folder / OLD_STATUS_FILE).exists() and not (folder / RESULT_FILE).exists()
    status = read_job(folder)
    assert status["state"] == "running" and status["result"] is None
    assert start(str(root), "", workspace) == folder and read_job(folder)["pid"] == status["pid"]  # not twice

    os.killpg(int(status["pid"]), signal.SIGKILL)  # out of memory, say
    died = wait_for_job(folder, states=("failed",), wait_s=30, read=read_job)
    assert died["message_i18n"]["key"] == "job.died" and str(folder / LOG_FILE) in died["message"]
    assert json.loads((folder / STATUS_FILE).read_text())["state"] == "running"  # said, not rewritten


def test_a_failed_estimate_is_said_in_the_page_language(tmp_path, workspace):
    from core import estimate
    from ui.i18n import say

    empty = tmp_path / "empty"
    empty.mkdir()
    folder = estimate.job_dir(str(empty), "", workspace)
    folder.mkdir(parents=True)
    (folder / "request.json").write_text(json.dumps({"data_path": str(empty), "groups": ""}))
    assert estimate._worker(folder) == 2  # the user's input, not a bug
    status = estimate.read_job(folder)
    assert status["state"] == "failed" and status["result"] is None
    assert status["message_i18n"]["key"] == "err.layout.no_classes"  # a folder without class folders
    assert say(status["message_i18n"], "id", plain=True).startswith(f"{empty} tidak berisi folder kelas")
