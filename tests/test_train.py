"""Training on tiny generated datasets (tinted 8x8 grids; see conftest.make_dataset).

Kept small: EfficientNet-Lite0 (bundled weights, no network) at 64 px on a few dozen
photos, so every test takes seconds on two shared cores. The statistics-heavy evaluation
(another module) is switched off except where a test is about it.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core import feature_cache
from core import train as train_module
from core.callbacks import FunctionCallback
from core.config import ConfigError, TrainConfig
from core.errors import DataError
from core.loop import lr_factor
from core.runs import load_run, read_metrics, read_status
from core.train import repeat_run, train

EPOCH_KEYS = {"epoch", "stage", "train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "lr", "seconds",
              "images_per_s", "peak_mem_mb"}
TIMING_KEYS = {"seconds", "images_per_s", "peak_mem_mb", "time", "data_wait_s"}


@pytest.fixture
def no_evaluation(monkeypatch):
    monkeypatch.setattr(train_module, "_evaluate", lambda run_dir: (None, ""))


def tiny_config(data, **changes) -> TrainConfig:
    settings = dict(data_path=str(data), image_size=64, epochs=6, batch_size=8, lr=0.01, augment="none",
                    val_fraction=0.25, early_stopping_patience=0)
    settings.update(changes)
    return TrainConfig(**settings)


def epoch_rows(run_dir):
    return read_metrics(run_dir).to_dict("records")


def epoch_lines(run_dir):
    """metrics.jsonl's epoch rows as written (read_metrics' NaN for a head row's missing keys never equals itself)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return without_timing([r for r in rows if r.get("type") == "epoch"])


def without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def test_feature_extraction_learns_and_leaves_a_complete_run(make_dataset, workspace, no_evaluation):
    data = make_dataset(("red", "green"), n=12)
    result = train(tiny_config(data), workspace=workspace)

    assert result.status == "done"
    assert result.class_names == ["green", "red"]
    assert result.metrics["val_acc"] > 0.5  # chance is 0.5; the tints make it easy
    run = result.run_dir
    for name in ("config.json", "meta.json", "metrics.jsonl", "model.safetensors", "splits.csv", "train.log",
                 "status.json", "outputs_train.npz", "outputs_val.npz"):
        assert (run / name).exists(), name
    assert read_status(run)["state"] == "done"
    rows = epoch_rows(run)
    assert len(rows) == 6 and EPOCH_KEYS <= set(rows[0]) and {r["stage"] for r in rows} == {"head"}
    meta = json.loads((run / "meta.json").read_text())
    assert meta["best_epoch"] == result.best_epoch and meta["class_names"] == ["green", "red"]
    assert meta["input_size"][-1] == 64 and len(meta["mean"]) == 3
    with np.load(run / "outputs_val.npz") as out:
        assert out["logits"].shape == (len(out["labels"]), 2) and out["logits"].dtype == np.float32
        assert out["features"].shape[0] == len(out["paths"]) and out["labels"].dtype == np.int64
        # the saved logits are the best checkpoint's: its val accuracy is the reported one
        assert (out["logits"].argmax(1) == out["labels"]).mean() == pytest.approx(result.metrics["val_acc"])
    # the features were cached on disk: a second run computes none
    assert list((workspace / "cache" / "features").glob("tf_efficientnet_lite0-64-*.npy"))


def test_early_stopping_stops_before_the_last_epoch(make_dataset, workspace, no_evaluation):
    data = make_dataset(("red", "green"), n=12)
    result = train(tiny_config(data, epochs=40, early_stopping_patience=2, monitor="val_acc"), workspace=workspace)
    assert result.status == "done"
    epochs = [r["epoch"] for r in epoch_rows(result.run_dir)]
    assert len(epochs) < 40
    assert epochs[-1] - result.best_epoch == 2  # stopped exactly `patience` epochs after the best


def test_stop_file_keeps_the_best_checkpoint_and_marks_stopped(make_dataset, workspace, no_evaluation):
    data = make_dataset(("red", "green"), n=12)

    def press_stop(ctx, metrics):
        if metrics["epoch"] == 2:
            (ctx.run_dir / "STOP").touch()

    result = train(tiny_config(data, epochs=10), workspace=workspace,
                   callbacks=[FunctionCallback(on_epoch_end=press_stop)])
    assert result.status == "stopped"
    assert read_status(result.run_dir)["state"] == "stopped"
    assert len(epoch_rows(result.run_dir)) == 2
    assert result.best_epoch in (1, 2)
    assert (result.run_dir / "model.safetensors").exists()
    assert (result.run_dir / "outputs_val.npz").exists()  # a stopped run is still usable
    load_run(result.run_dir).model()  # and loadable


def test_same_seed_gives_identical_metrics_on_cpu(make_dataset, workspace, no_evaluation):
    data = make_dataset(("red", "green"), n=8)
    config = tiny_config(data, strategy="fine-tune", epochs=2, augment="light", unfreeze_blocks=1, lr=1e-3)
    first = train(config, workspace=workspace)
    second = train(config, workspace=workspace)
    assert without_timing(epoch_rows(first.run_dir)) == without_timing(epoch_rows(second.run_dir))


def test_two_fresh_same_seed_runs_are_bit_identical_when_the_second_reuses_cached_features(
        make_dataset, tmp_path, monkeypatch, no_evaluation):
    # Regression: the validation/feature pass (core/forward.py) used to leave the model in
    # channels_last on the CPU while the fine-tuning loop trains in the precision's layout
    # (contiguous for fp32 here). A run whose head features came from the cache skipped that
    # pass, so its first fine-tuning epoch ran other conv kernels: different last digits,
    # then different weights (epoch 2 diverged; same config, same seed, fresh workspaces).
    monkeypatch.setattr(feature_cache, "_FEATURE_MEMORY", {})  # the first run computes the features
    data = make_dataset(("red", "green"), n=8)
    config = tiny_config(data, strategy="two-stage", epochs=2, head_epochs=1, lr=1e-3, augment="light",
                         precision="fp32", device="cpu", num_workers=0)
    first = train(config, workspace=tmp_path / "first")
    second = train(config, workspace=tmp_path / "second")  # its features come from the first's cache
    assert [r["stage"] for r in epoch_lines(first.run_dir)] == ["head", "finetune"]
    assert epoch_lines(first.run_dir) == epoch_lines(second.run_dir)
    assert (first.run_dir / "model.safetensors").read_bytes() == (second.run_dir / "model.safetensors").read_bytes()


def test_interrupted_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(make_dataset, tmp_path,
                                                                               no_evaluation):
    # Same cause as above: the resumed process starts from a contiguous model, the
    # uninterrupted one had been switched to channels_last by its first validation.
    data = make_dataset(("red", "green"), n=8)
    config = TrainConfig(data_path=str(data), backbone="resnet18", weights="scratch", strategy="full", image_size=32,
                         epochs=3, batch_size=4, augment="light", val_fraction=0.25, early_stopping_patience=0,
                         num_workers=0, device="cpu", seed=0)
    reference = train(config, workspace=tmp_path / "reference").run_dir

    def interrupt_after_epoch_1(ctx):
        if ctx.epoch == 2:
            raise KeyboardInterrupt  # the state saved at the end of epoch 1 is what a resume starts from

    stopped = train(config, workspace=tmp_path / "victim", callbacks=[FunctionCallback(on_epoch_start=interrupt_after_epoch_1)])
    assert stopped.status == "stopped" and len(epoch_rows(stopped.run_dir)) == 1
    resumed = train(config, workspace=tmp_path / "victim", run_dir=stopped.run_dir, resume=True)
    assert resumed.status == "done"
    assert epoch_lines(resumed.run_dir) == epoch_lines(reference)
    assert (resumed.run_dir / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()


def _resnet_resume_config(data) -> TrainConfig:
    return TrainConfig(data_path=str(data), backbone="resnet18", weights="scratch", strategy="full", image_size=32,
                       epochs=3, batch_size=4, augment="light", val_fraction=0.25, early_stopping_patience=0,
                       num_workers=0, device="cpu", seed=0)


def test_a_crash_between_the_weights_and_resume_pt_resumes_the_pair_bit_identically(make_dataset, tmp_path,
                                                                                    monkeypatch, no_evaluation):
    # The fault CI saw with kill -9: the process dies after epoch 2's weights are on disk but
    # before epoch 2's resume.pt replaced epoch 1's. Before the paired checkpoint the resume then
    # took epoch-2 weights with epoch 1's optimizer, schedule and random states, and trained
    # epoch 2 again on weights that already had it (metrics and model differ from the reference).
    import core.resume

    data = make_dataset(("red", "green"), n=8)
    config = _resnet_resume_config(data)
    reference = train(config, workspace=tmp_path / "reference").run_dir
    real_save = torch.save

    def die_writing_resume_pt_of_epoch_2(obj, *args, **kwargs):
        if isinstance(obj, dict) and "optimizer" in obj and obj.get("epoch") == 2:
            raise KeyboardInterrupt  # the weights of epoch 2 are written, its resume.pt is not
        return real_save(obj, *args, **kwargs)

    monkeypatch.setattr(core.resume.torch, "save", die_writing_resume_pt_of_epoch_2)
    stopped = train(config, workspace=tmp_path / "victim")
    monkeypatch.setattr(core.resume.torch, "save", real_save)
    assert stopped.status == "stopped" and len(epoch_rows(stopped.run_dir)) == 2
    assert core.resume.load_state(stopped.run_dir)["epoch"] == 1
    resumed = train(config, workspace=tmp_path / "victim", run_dir=stopped.run_dir, resume=True)
    assert resumed.status == "done"
    assert epoch_lines(resumed.run_dir) == epoch_lines(reference)
    assert (resumed.run_dir / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert not list(resumed.run_dir.glob("last*")) and not (resumed.run_dir / "resume.pt").exists()


def test_a_run_saved_before_the_paired_checkpoint_still_resumes(make_dataset, tmp_path, no_evaluation):
    # Old run folders hold last.safetensors and a version-1 resume.pt without a weights entry.
    import core.resume

    data = make_dataset(("red", "green"), n=8)
    config = _resnet_resume_config(data)
    reference = train(config, workspace=tmp_path / "reference").run_dir

    def interrupt_after_epoch_1(ctx):
        if ctx.epoch == 2:
            raise KeyboardInterrupt

    stopped = train(config, workspace=tmp_path / "victim", callbacks=[FunctionCallback(on_epoch_start=interrupt_after_epoch_1)])
    run = stopped.run_dir
    (run / "last-e0001.safetensors").rename(run / "last.safetensors")  # the layout of an old run
    state = torch.load(run / "resume.pt", weights_only=True)
    del state["weights"]
    torch.save({**state, "version": 1}, run / "resume.pt")
    assert core.resume.can_resume(run) == (True, "")
    resumed = train(config, workspace=tmp_path / "victim", run_dir=run, resume=True)
    assert resumed.status == "done"
    assert epoch_lines(resumed.run_dir) == epoch_lines(reference)
    assert (resumed.run_dir / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert not list(run.glob("last*")) and not (run / "resume.pt").exists()


def test_two_stage_runs_both_stages_with_smaller_backbone_lr(make_dataset, workspace, no_evaluation):
    data = make_dataset(("red", "green"), n=8)
    seen = {}

    def record_lrs(ctx, metrics):
        groups = ctx.optimizer.param_groups
        head = [g["lr"] for g in groups if g.get("is_head")]
        body = [g["lr"] for g in groups if not g.get("is_head")]
        seen[metrics["stage"]] = (max(head) if head else max(g["lr"] for g in groups), max(body) if body else None)

    result = train(tiny_config(data, strategy="two-stage", epochs=3, head_epochs=1, lr=1e-3, backbone_lr=1e-4),
                   workspace=workspace, callbacks=[FunctionCallback(on_epoch_end=record_lrs)])
    stages = [r["stage"] for r in epoch_rows(result.run_dir)]
    assert stages == ["head", "finetune", "finetune"]
    head_lr, backbone_lr = seen["finetune"]
    assert backbone_lr is not None and backbone_lr < head_lr
    with np.load(result.run_dir / "outputs_train.npz") as out:
        assert out["features"].shape[0] == len(out["labels"])


def test_saved_config_repeats_the_run(make_dataset, workspace, no_evaluation):
    data = make_dataset(("red", "green"), n=8)
    first = train(tiny_config(data, epochs=3), workspace=workspace)
    again = repeat_run(first.run_dir)
    assert again.run_dir != first.run_dir and again.run_dir.parent == first.run_dir.parent
    assert without_timing(epoch_rows(first.run_dir)) == without_timing(epoch_rows(again.run_dir))


def test_balanced_sampler_draws_classes_evenly_and_class_weights_favour_the_rare_one(make_dataset, workspace,
                                                                                     no_evaluation):
    import types

    import torch

    from core.loop import Trainer

    data = make_dataset({"red": 14, "green": 5})
    for mode in ("class-weights", "balanced-sampler"):
        result = train(tiny_config(data, imbalance=mode, epochs=3), workspace=workspace)
        assert result.status == "done" and result.best_epoch is not None

    # The real Trainer methods on a 15:5 training set (no model needed for the draws).
    trainer = object.__new__(Trainer)
    trainer.labels = {"train": torch.tensor([0] * 15 + [1] * 5)}
    trainer.data = types.SimpleNamespace(class_names=["red", "green"])
    trainer.generator = torch.Generator().manual_seed(0)
    trainer.ctx = types.SimpleNamespace(device=torch.device("cpu"))
    trainer.config = tiny_config(data, imbalance="balanced-sampler")
    draws = torch.cat([trainer._epoch_order() for _ in range(200)])
    rare_share = (trainer.labels["train"][draws] == 1).float().mean().item()
    assert abs(rare_share - 0.5) < 0.03, rare_share  # a plain shuffle would keep 5/20 = 0.25
    trainer.config = tiny_config(data, imbalance="class-weights")
    weights = trainer._class_weights()
    assert weights[1] / weights[0] == pytest.approx(3.0)  # 15 red per 5 green


def test_single_class_stops_with_the_data_check_message(make_dataset, workspace):
    data = make_dataset(("red",), n=6)
    with pytest.raises(DataError) as caught:
        train(tiny_config(data), workspace=workspace)
    assert "\n" not in str(caught.value)
    run_dir = next((workspace / "runs").iterdir())
    assert read_status(run_dir)["state"] == "failed"
    assert (run_dir / "config.json").exists()  # the failed run can still be repeated once fixed


def test_missing_data_path_creates_no_run(tmp_path, workspace):
    with pytest.raises(DataError):
        train(TrainConfig(data_path=str(tmp_path / "nowhere")), workspace=workspace)
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())


def test_evaluation_runs_at_the_end(make_dataset, workspace):
    data = make_dataset(("red", "green"), n=12)
    result = train(tiny_config(data, epochs=3, test_fraction=0.25), workspace=workspace)
    assert (result.run_dir / "outputs_test.npz").exists()
    assert (result.run_dir / "evaluation.json").exists()
    assert result.metrics.get("evaluated_on") == "test" and "test_accuracy" in result.metrics


def test_lr_schedule_warms_up_then_decays():
    factors = [lr_factor(step, warmup_steps=4, total_steps=20) for step in range(20)]
    assert factors[0] == pytest.approx(0.25) and factors[3] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    assert factors[-1] > 0


def test_flat_cosine_holds_the_chosen_lr_then_anneals():
    factors = [lr_factor(step, warmup_steps=0, total_steps=24, flat=0.75) for step in range(24)]
    assert factors[:18] == [1.0] * 18  # the first 75% of the steps at the chosen LR
    assert all(a > b for a, b in zip(factors[18:], factors[19:])) and 0 < factors[-1] < 0.2
    # over a 3-epoch budget the weights travel ~0.85 of the chosen LR per step, against ~0.5 for cosine
    cosine = [lr_factor(step, 0, 24) for step in range(24)]
    assert sum(factors) / 24 > 0.8 > 0.55 > sum(cosine) / 24


def test_fine_tuning_follows_the_configured_schedule(make_dataset, workspace, no_evaluation):
    data = make_dataset(("red", "green"), n=8)
    lrs = {}
    for schedule in ("flat-cosine", "cosine"):
        result = train(tiny_config(data, strategy="full", epochs=4, lr=1e-3, backbone_lr=1e-3, batch_size=8,
                                   finetune_schedule=schedule), workspace=workspace)
        lrs[schedule] = [row["lr"] for row in epoch_rows(result.run_dir)]
    assert lrs["flat-cosine"][:3] == [pytest.approx(1e-3)] * 3  # held for 75% of 4 epochs
    assert lrs["cosine"][1] < 1e-3 and lrs["cosine"][2] < lrs["cosine"][1]


def test_a_saved_config_from_before_the_schedule_field_keeps_cosine(tmp_path):
    saved = TrainConfig(data_path=str(tmp_path)).to_dict()
    del saved["finetune_schedule"]
    assert TrainConfig.from_dict(saved).finetune_schedule == "cosine"  # repeats and resumes as it ran
    assert TrainConfig.from_dict({"data_path": str(tmp_path)}).finetune_schedule == "flat-cosine"
    with pytest.raises(ConfigError):
        TrainConfig(data_path=str(tmp_path), finetune_schedule="linear")


def test_deterministic_flag_is_restored(make_dataset, workspace, no_evaluation):
    before = torch.are_deterministic_algorithms_enabled()
    train(tiny_config(make_dataset(("red", "green"), n=6), epochs=1), workspace=workspace)
    assert torch.are_deterministic_algorithms_enabled() == before


def test_device_helpers_describe_the_cpu():
    from core.device import PeakMemory, device_info, pick_device

    assert pick_device("cpu").type == "cpu"
    info = device_info("cpu")
    assert {"name", "memory_used_mb", "memory_total_mb", "utilisation_pct"} <= set(info)
    assert 0 < info["memory_used_mb"] <= info["memory_total_mb"]
    meter = PeakMemory(torch.device("cpu"))
    meter.reset()
    block = np.ones((16, 1024, 1024), dtype=np.uint8)  # 16 MB more resident memory
    meter.sample()
    assert meter.peak_mb() > 16 and block.sum() > 0


def test_asking_for_a_missing_gpu_is_a_plain_error():
    from core.device import pick_device
    from core.errors import LatihError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(LatihError, match="no CUDA GPU"):
        pick_device("cuda")


def test_stop_file_present_before_start_ends_cleanly(make_dataset, workspace, no_evaluation):
    from core.runs import new_run_dir

    config = tiny_config(make_dataset(("red", "green"), n=6))
    run_dir = new_run_dir(config, workspace)
    (run_dir / "STOP").touch()
    result = train(config, workspace=workspace, run_dir=run_dir)
    assert result.status == "stopped" and result.best_epoch is None
    assert read_status(run_dir)["state"] == "stopped"


def test_failing_evaluation_keeps_the_trained_run(make_dataset, workspace, monkeypatch, caplog):
    import core.evaluate

    def broken(run_dir):
        raise ValueError("statistics exploded")

    monkeypatch.setattr(core.evaluate, "evaluate_run", broken)
    result = train(tiny_config(make_dataset(("red", "green"), n=6), epochs=2), workspace=workspace)
    status = read_status(result.run_dir)
    assert result.status == "done" and status["state"] == "done"
    assert "evaluation failed" in status["message"]
    assert "statistics exploded" in (result.run_dir / "train.log").read_text()


def test_head_batch_gives_small_datasets_several_steps_per_epoch():
    from core.loop import head_batch_size

    assert head_batch_size(32, 34) == 4  # 9 steps, not 2
    assert head_batch_size(32, 245) == 30
    assert head_batch_size(32, 5000) == 32  # never above the chosen batch size
    assert head_batch_size(2, 10) == 2


def test_fixed_size_backbone_refuses_another_image_size_plainly(make_dataset, tmp_path):
    from core.config import ConfigError, TrainConfig
    from core.train import train

    data = make_dataset()
    config = TrainConfig(data_path=str(data), backbone="vit_tiny_patch16_224", weights="scratch",
                         image_size=64, epochs=1)
    with pytest.raises(ConfigError, match="only takes 224 px"):
        train(config, workspace=tmp_path / "ws")


def test_cancel_file_stops_once_so_the_outputs_of_the_best_checkpoint_can_be_saved(tmp_path):
    from core.callbacks import CancelFile
    from core.errors import Cancelled

    (tmp_path / "STOP").touch()
    cancel = CancelFile(tmp_path / "STOP")
    with pytest.raises(Cancelled):
        cancel.on_progress(None, "features", 1, 10)
    cancel.on_progress(None, "outputs", 1, 10)  # after the stop: saving goes on
