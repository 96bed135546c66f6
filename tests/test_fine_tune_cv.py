"""Cross-validation by fine-tuning: real trainings per fold, in the background, group-aware,
summarised like the probe's, and each fold's config repeats its result."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from core.config import ConfigError, TrainConfig
from tests.conftest import TINTS, generated_image, save_image

pytestmark = pytest.mark.usefixtures("navigation_like_a_running_server")  # AppTest keeps the clicks

REPO = Path(__file__).resolve().parents[1]


def _clinic(root: Path) -> Path:
    """12 "patients", 3 photos each (p07_a.png, p07_b.png, ...): 'prefix' groups them."""
    for patient in range(12):
        label = "red" if patient % 2 else "green"
        for shot in "abc":
            save_image(generated_image(patient * 3 + "abc".index(shot), 64, TINTS[patient % 2]),
                       root / label / f"p{patient:02d}_{shot}.png")
    return root


def _config(root: Path) -> TrainConfig:
    return TrainConfig(str(root), strategy="full", epochs=1, image_size=64, batch_size=8, augment="none",
                       groups="prefix", lr=1e-3, backbone_lr=1e-4, warmup_epochs=0, device="cpu",
                       early_stopping_patience=0)


def test_cv_fold_setting_is_checked():
    with pytest.raises(ConfigError, match="cv_fold"):
        TrainConfig("x", cv_fold="5x3:r3f0")  # repeat 3 of 3 does not exist
    with pytest.raises(ConfigError, match="cv_fold"):
        TrainConfig("x", cv_fold="five folds")
    assert TrainConfig("x", cv_fold="5x3:r2f4").cv_fold == "5x3:r2f4"


def test_fine_tune_cv_in_background_groups_summary_and_repeat(tmp_path, workspace):
    from core.background import LOG_FILE
    from core.estimate import read_job
    from core.evaluate import load_outputs
    from core.fine_tune_cv import cost, plan, start
    from core.train import train

    root = _clinic(tmp_path / "clinic")
    config = _config(root)
    layout = plan(config, n_splits=2, n_repeats=1, workspace=workspace)
    assert (layout["n_splits"], layout["n_photos"], layout["n_groups"]) == (2, 36, 12)
    assert cost(config, layout["n_photos"], 2, 1)["trainings"] == 2  # stated before it starts

    folder = start(config, n_splits=2, n_repeats=1, workspace=workspace)
    seen, deadline = set(), time.time() + 900
    status = read_job(folder)
    while status["state"] == "running" and time.time() < deadline:
        if status.get("task") == "fine_tune":
            seen.add((status["fold"], status["folds"]))
        time.sleep(0.5)
        status = read_job(folder)
    assert status["state"] == "done", (status, (folder / LOG_FILE).read_text()[-3000:])
    assert seen and seen <= {(1, 2), (2, 2)}  # the page can say which fold runs

    result = status["result"]
    cv = result["cross_validation"]
    assert result["strategy"] == "full" and result["n_photos"] == 36 and result["n_groups"] == 12
    assert cv["n_splits"] == 2 and cv["n_repeats"] == 1 and len(cv["fold_accuracy"]) == 2
    for key in ("accuracy", "balanced_accuracy"):
        assert 0 <= cv[key]["low"] <= cv[key]["mean"] <= cv[key]["high"] <= 1
    assert cv["auc"] is not None and set(cv["per_class_recall"]) == {"green", "red"}
    assert cv["fold_spread"]["min"] <= cv["fold_spread"]["max"]

    # every fold is a real run folder; its held-out photos are whole patients, and the two folds'
    # held-out parts cover every photo exactly once
    held_out = []
    for fold in result["fold_runs"]:
        run = Path(fold["run_dir"])
        saved = json.loads((run / "config.json").read_text())
        assert saved["cv_fold"] == fold["fold"] and saved["strategy"] == "full"
        splits = pd.read_csv(run / "splits.csv")
        patient = splits["path"].str.extract(r"/(p\d{2})_")[0]
        assert not set(patient[splits["split"] == "val"]) & set(patient[splits["split"] == "train"])
        assert set(splits["split"]) == {"train", "val"}
        held_out += list(splits.loc[splits["split"] == "val", "path"])
        assert abs(fold["val_accuracy"] - (load_outputs(run)["val"]["logits"].argmax(1)
                                           == load_outputs(run)["val"]["labels"]).mean()) < 1e-9
    assert len(held_out) == len(set(held_out)) == 36
    assert [round(f["val_accuracy"], 4) for f in result["fold_runs"]] == cv["fold_accuracy"]

    # the fold's config repeats: training it again gives the same validation accuracy and split
    first = result["fold_runs"][0]
    again = train(TrainConfig.from_json(Path(first["run_dir"]) / "config.json"), workspace,
                  run_dir=tmp_path / "again")
    outs = load_outputs(again.run_dir)["val"]
    assert (outs["logits"].argmax(1) == outs["labels"]).mean() == pytest.approx(first["val_accuracy"], abs=1e-9)
    assert pd.read_csv(again.run_dir / "splits.csv")["split"].tolist() == \
        pd.read_csv(Path(first["run_dir"]) / "splits.csv")["split"].tolist()


def test_latih_estimate_strategy_states_cost_and_runs(tmp_path, workspace):
    root = _clinic(tmp_path / "clinic")
    env = {**os.environ, "LATIH_WORKSPACE": str(workspace), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "core.cli", "estimate", str(root), "--groups", "prefix",
                           "--strategy", "full", "--folds", "2", "--repeats", "1", "--epochs", "1",
                           "--image-size", "64"], capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("fine-tuned cross-validation (full, 1 epochs): 2 trainings, about ")
    assert "fold 2 of 2" in done.stderr
    assert any(line.startswith("  accuracy ") and "95% interval" in line for line in lines)
    assert "one training per fold" in done.stdout and "36 photos, 2 classes, 12 groups" in done.stdout


def test_evaluate_page_offers_starts_stops_and_shows_it(tmp_path, workspace):
    from core.background import STATUS_FILE
    from core.estimate import RESULT_FILE, estimate, job_dir, read_job
    from core.fine_tune_cv import fine_tune_cv, job_dir as fine_tune_dir
    from tests.test_app_pages import EN, _app, _no_exception, _open, _project, _texts
    from ui import model_info

    root = _clinic(tmp_path / "clinic")
    project = _project(root, groups="prefix")
    data_path = model_info.training_data_path(project)
    frozen = estimate(data_path, "prefix", n_splits=2, n_repeats=1, curve=False)  # the real probe first
    folder = job_dir(data_path, "prefix")
    folder.mkdir(parents=True)
    (folder / RESULT_FILE).write_text(json.dumps(frozen, default=str))
    (folder / STATUS_FILE).write_text(json.dumps({"state": "done", "message": ""}))

    at = _open(_app(project=project["id"]), "evaluate")
    cost = frozen["fine_tune_cv_cost"]
    assert EN["estimate.ft.help"].format(n=cost["trainings"], minutes=f"{cost['seconds'] / 60:.0f}") in _texts(at)
    at.button(key="estimate_ft_start").click().run()  # a real background job: start it, then stop it
    _no_exception(at, "start")
    ft_folder = fine_tune_dir(data_path, "prefix", "full")
    assert read_job(ft_folder)["state"] == "running"
    assert at.button(key="estimate_ft_stop")
    at.button(key="estimate_ft_stop").click().run()
    _no_exception(at, "stop")
    deadline = time.time() + 300
    while read_job(ft_folder)["state"] == "running" and time.time() < deadline:
        time.sleep(0.5)
    assert read_job(ft_folder)["state"] == "stopped", read_job(ft_folder)

    result = fine_tune_cv(_config(root), 2, 1, folder=ft_folder)  # real trainings, shown by the page
    (ft_folder / RESULT_FILE).write_text(json.dumps(result, default=str))
    (ft_folder / STATUS_FILE).write_text(json.dumps({"state": "done", "message": ""}))
    at = _open(_app(project=project["id"]), "evaluate")
    shown = _texts(at)
    assert EN["estimate.ft.summary"].format(n="36", groups="12", k=2, r=1) in shown, shown
