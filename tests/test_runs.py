"""Run folders: naming, status, tolerant reading, listing, deleting (no training needed)."""
from __future__ import annotations

import json
import os

import pytest

from core import run_list, runs
from core.config import TrainConfig
from core.errors import RunError


def config_for(tmp_path, **changes):
    return TrainConfig(data_path=str(tmp_path / "Bees & Ants"), **changes)


def test_new_run_dir_is_readable_unique_and_starts_with_config(tmp_path, workspace):
    config = config_for(tmp_path)
    first = runs.new_run_dir(config, workspace)
    second = runs.new_run_dir(config, workspace)
    assert first != second and first.parent == workspace / "runs"
    assert first.name.endswith("_lite0-fe-bees-ants")
    assert second.name == first.name + "-2" or second.name.split("_")[1] != first.name.split("_")[1]
    assert TrainConfig.from_json(first / "config.json") == config
    assert runs.read_status(first)["state"] == "queued"


def test_run_name_and_strategy_shape_the_id(tmp_path, workspace):
    config = config_for(tmp_path, run_name="Glaucoma v2", strategy="two-stage", backbone="convnext_tiny")
    assert runs.new_run_dir(config, workspace).name.endswith("_convnext-tiny-2stage-glaucoma-v2")


def test_status_merges_and_speaks_both_key_names(tmp_path, workspace):
    run = runs.new_run_dir(config_for(tmp_path), workspace)
    (run / "status.json").write_text(json.dumps({"state": "queued", "submitted": "2026-11-28T10:00:00+00:00"}))
    runs.write_status(run, "running", "epoch 1")
    status = runs.read_status(run)
    assert status["state"] == status["status"] == "running"
    assert status["submitted"] == "2026-11-28T10:00:00+00:00" and "started" in status
    assert status["pid"] == os.getpid()


def test_read_metrics_skips_a_half_written_last_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        '{"type": "epoch", "epoch": 1, "val_acc": 0.5}\n'
        '{"type": "batch", "epoch": 2, "batch": 1}\n'
        '{"type": "epoch", "epoch": 2, "val_a')
    frame = runs.read_metrics(tmp_path)
    assert frame["epoch"].tolist() == [1]
    assert len(runs.read_metrics(tmp_path, kind=None)) == 2
    assert runs.read_metrics(tmp_path / "missing").empty


def fake_finished_run(tmp_path, workspace):
    run = runs.new_run_dir(config_for(tmp_path), workspace)
    runs.write_status(run, "done", "finished")
    runs.update_meta(run, class_names=["ants", "bees"], backbone="tf_efficientnet_lite0", best_epoch=2, wall_s=12.5)
    lines = [{"type": "epoch", "epoch": e, "val_acc": acc, "val_f1": acc - 0.01} for e, acc in ((1, 0.8), (2, 0.9))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (run / "evaluation.json").write_text(json.dumps({"evaluated_on": "test",
                                                     "metrics": {"accuracy": 0.88, "macro_f1": 0.87}}))
    return run


def test_list_runs_summarises_each_run(tmp_path, workspace):
    run = fake_finished_run(tmp_path, workspace)
    broken = workspace / "runs" / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    table = run_list.list_runs(workspace)
    assert len(table) == 2
    row = table[table["run_id"] == run.name].iloc[0]
    assert row["status"] == "done" and row["val_acc"] == 0.9 and row["best_epoch"] == 2
    assert row["eval_acc"] == 0.88 and row["eval_split"] == "test"
    assert row["wall_s"] == 12.5


def test_list_runs_of_an_empty_workspace(workspace):
    assert run_list.list_runs(workspace).empty


def test_load_run_by_folder_or_id_and_missing_model(tmp_path, workspace):
    run = fake_finished_run(tmp_path, workspace)
    loaded = runs.load_run(run.name, workspace)
    assert loaded.run_dir == run and loaded.class_names == ["ants", "bees"]
    assert loaded.metrics["epoch"].tolist() == [1, 2] and loaded.evaluation["metrics"]["accuracy"] == 0.88
    with pytest.raises(RunError, match="no trained model"):
        loaded.model()
    with pytest.raises(RunError, match="no run found"):
        runs.load_run(tmp_path / "nowhere", workspace)


def test_delete_run_refuses_a_live_run(tmp_path, workspace):
    run = fake_finished_run(tmp_path, workspace)
    runs.write_status(run, "running")  # our own pid: alive
    with pytest.raises(RunError, match="still training"):
        run_list.delete_run(run)
    runs.write_status(run, "failed")
    run_list.delete_run(run)
    assert not run.exists()
