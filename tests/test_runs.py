"""Run folders: naming, status, tolerant reading, listing, deleting (no training needed)."""
from __future__ import annotations

import json
import os

import pytest

from core import run_list, runs
from core.config import TrainConfig
from core.errors import RunError
from core.i18n import Msg


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


# ---- the resume checkpoint: weights and resume.pt as one pair (core/resume.py) ----------------
def _model_at(value: float):
    import torch

    model = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(model.weight, value)
    torch.nn.init.constant_(model.bias, value)
    return model


def test_resume_state_stays_a_pair_when_the_process_dies_between_the_two_writes(tmp_path, monkeypatch):
    import torch

    import core.resume as resume

    run = tmp_path / "run"
    run.mkdir()
    resume.save_state(run, _model_at(1.0), {"epoch": 1, "step": "one"})
    real_save = torch.save

    def die(obj, *args, **kwargs):  # after the epoch-2 weights are written, before its resume.pt
        raise KeyboardInterrupt

    monkeypatch.setattr(resume.torch, "save", die)
    with pytest.raises(KeyboardInterrupt):
        resume.save_state(run, _model_at(2.0), {"epoch": 2, "step": "two"})
    monkeypatch.setattr(resume.torch, "save", real_save)
    state = resume.load_state(run)
    assert (state["epoch"], state["step"]) == (1, "one")
    assert torch.equal(resume.model_state(run)["weight"], torch.full((2, 3), 1.0))  # epoch 1's, not epoch 2's
    assert torch.equal(resume.model_state(run, state)["bias"], torch.full((2,), 1.0))
    assert resume.can_resume(run) == (True, "")
    # the resumed process saves epoch 2 again: the pair moves on and the leftovers go (also the
    # temp files a kill -9 mid-write would leave)
    (run / ".resume.pt.99999.tmp").write_bytes(b"half a resume.pt")
    (run / ".last-e0002.safetensors.tmp").write_bytes(b"half a weights file")
    resume.save_state(run, _model_at(3.0), {"epoch": 2, "step": "two again"})
    assert resume.load_state(run)["step"] == "two again"
    assert torch.equal(resume.model_state(run)["weight"], torch.full((2, 3), 3.0))
    assert sorted(p.name for p in run.iterdir()) == ["last-e0002.safetensors", "resume.pt"]
    resume.forget_state(run)
    assert list(run.iterdir()) == []


def test_resume_refuses_a_missing_or_different_weights_file_in_plain_words(tmp_path):
    import core.resume as resume

    run = tmp_path / "run"
    run.mkdir()
    resume.save_state(run, _model_at(1.0), {"epoch": 1})
    resume.save_state(run, _model_at(2.0), {"epoch": 2})
    assert not (run / "last-e0001.safetensors").exists()  # removed once resume.pt named epoch 2's
    (run / "last-e0002.safetensors").rename(run / "last-e0003.safetensors")  # not the file it names
    with pytest.raises(RunError) as missing:
        resume.load_state(run)
    msg = missing.value.args[0]
    assert msg.key == "err.resume.weights_missing"
    assert "last-e0002.safetensors" in msg.in_lang("en") and "is missing" in msg.in_lang("en")
    assert "last-e0002.safetensors" in msg.in_lang("id") and "tidak ada" in msg.in_lang("id")
    resume.save_state(run, _model_at(4.0), {"epoch": 4})
    changed = bytearray((run / "last-e0004.safetensors").read_bytes())
    changed[-1] ^= 0xFF  # same size, one weight changed
    (run / "last-e0004.safetensors").write_bytes(bytes(changed))
    with pytest.raises(RunError) as other:
        resume.load_state(run)
    assert other.value.args[0].key == "err.resume.weights_mismatch"
    assert "checksum" in other.value.args[0].in_lang("id")


def test_resume_reads_a_run_saved_before_the_paired_checkpoint(tmp_path):
    import torch

    import core.resume as resume
    from core.callbacks import save_weights

    run = tmp_path / "run"
    run.mkdir()
    save_weights(_model_at(5.0), run / runs.LAST_MODEL_FILE)  # last.safetensors + version-1 resume.pt
    torch.save({"version": 1, "epoch": 3}, run / runs.RESUME_FILE)
    assert resume.can_resume(run) == (True, "")
    state = resume.load_state(run)
    assert state["epoch"] == 3 and state["weights"]["file"] == "last.safetensors"
    assert torch.equal(resume.model_state(run, state)["weight"], torch.full((2, 3), 5.0))
    resume.save_state(run, _model_at(6.0), {"epoch": 4})  # the first save after the resume: the new layout
    assert sorted(p.name for p in run.iterdir()) == ["last-e0004.safetensors", "resume.pt"]
    (run / "last-e0004.safetensors").unlink()
    assert resume.can_resume(run)[0] is False
    torch.save({"version": 1, "epoch": 3}, run / runs.RESUME_FILE)
    with pytest.raises(RunError) as old_missing:  # an old run without its last.safetensors
        resume.model_state(run)
    assert old_missing.value.args[0].key in ("err.resume.weights_missing", "err.resume.no_state")


def test_why_a_run_cannot_be_resumed_is_said_in_the_users_language(tmp_path, workspace, monkeypatch):
    """The reasons `latih train --resume` and the Runs page show are catalogue texts: Bahasa under LATIH_LANG=id."""
    from core import resume

    monkeypatch.setenv("LATIH_LANG", "id")
    queued = runs.new_run_dir(config_for(tmp_path), workspace)  # a new run waits its turn
    ok, why = resume.can_resume(queued)
    assert ok is False and why.key == "err.resume.busy"
    assert why == f"sesi {queued.name} sedang menunggu; sesi ini bisa dilanjutkan setelah berhenti"
    runs.write_status(queued, "stopped")  # stopped before its first epoch ended: nothing saved
    ok, why = resume.can_resume(queued)
    assert ok is False and why.key == "err.resume.nothing_saved" and "tidak ada yang bisa dilanjutkan" in why
    runs.write_status(queued, "done")
    ok, why = resume.can_resume(queued)
    assert ok is False and why.key == "err.resume.finished" and why.startswith(f"sesi {queued.name} sudah selesai")


def test_checkpoint_pair_reaches_the_disk_before_its_names(tmp_path, monkeypatch):
    """A power cut must not leave last-eNNNN.safetensors or resume.pt named but without their bytes:
    each is fsynced before it is renamed into place, the weights before resume.pt."""
    from core import resume

    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append(("sync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", os.path.basename(src), os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    run = tmp_path / "run"
    run.mkdir()
    resume.save_state(run, _model_at(1.0), {"epoch": 1})
    renames = [e for e in events if e[0] == "rename"]
    assert [e[2] for e in renames] == ["last-e0001.safetensors", "resume.pt"]
    for _, src, _dst in renames:
        assert events.index(("sync", src)) < events.index(("rename", src, _dst)), events
    assert ("sync", "run") in events[events.index(renames[-1]):]  # the folder's new entries too
    assert resume.load_state(run)["epoch"] == 1


def test_json_state_reaches_the_disk_before_its_name(tmp_path, monkeypatch):
    """status.json / project.json: the new bytes are fsynced before the rename, and the folder's
    entry after it, so a power cut leaves the old file or the new one, never a named empty one."""
    from core.jsonfile import read_json, write_json_atomic

    events, real_fsync, real_replace = [], os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("sync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda src, dst: (events.append(("rename", str(src), str(dst))),
                                                         real_replace(src, dst))[1])
    target = tmp_path / "status.json"
    write_json_atomic(target, {"state": "running"})
    [rename] = [e for e in events if e[0] == "rename"]
    assert rename[2] == str(target)
    assert events.index(("sync", rename[1])) < events.index(rename)
    assert ("sync", str(tmp_path)) in events[events.index(rename):]
    assert read_json(target) == {"state": "running"}


def test_state_label_is_one_word_for_lists_warnings_and_the_cli(tmp_path):
    """The Runs table, the unfinished-model warning and `latih train`'s summary all name a run's
    state through core.runs.state_label / status_label, in the reader's language."""
    from core.runs import DAMAGED, state_label, status_label

    assert state_label("stopped").in_lang("id") == Msg("status.stopped").in_lang("id")
    assert state_label("running", "stopped unexpectedly").key == "hardening.status_died"
    assert state_label("failed", DAMAGED).key == "hardening.status_damaged"
    assert state_label("something-new") == "something-new"
    assert status_label({"state": "done"}).key == "status.done"
    assert status_label({"state": "failed", "reason": "died"}).key == "hardening.status_died"
