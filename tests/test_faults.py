"""Fault injection, for real: kill -9, a full (tiny) disk, damaged files, hostile zips, racing
writers, phone photos. Each test first makes the fault happen, then checks what a person
sees: one plain line, nothing lost, nothing left half-written, the other runs still there.

The full-disk tests mount a small tmpfs (this needs root; where it is not allowed they are
skipped with that reason). Runs are trained by the real trainer in the real worker.
"""
from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import jobs, liveness, queue_entry, run_list, runs
from core.cli import main as cli
from core.config import TrainConfig
from core.errors import DataError, LatihError, RunError

pytestmark = pytest.mark.timeout(900)
REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _fe_config(data: Path, **kw) -> TrainConfig:
    base = dict(data_path=str(data), strategy="feature-extraction", image_size=64, epochs=2, batch_size=8,
                augment="none", val_fraction=0.25, early_stopping_patience=0, num_workers=0, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def _resumable_config(data: Path) -> TrainConfig:
    """A full fine-tune with augmentation (so every random state matters), small enough for CPU."""
    return TrainConfig(data_path=str(data), backbone="resnet18", weights="scratch", strategy="full", image_size=32,
                       epochs=10, batch_size=4, augment="light", val_fraction=0.25, early_stopping_patience=0,
                       num_workers=0, device="cpu", seed=0)


def _epoch_rows(run: Path) -> list[dict]:
    return [r for r in (json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip())
            if r.get("type") == "epoch"]


def _leave_no_worker(ws: Path) -> None:
    for run in (ws / "runs").glob("*") if (ws / "runs").exists() else []:
        if jobs.read_status(run).get("state") in ("queued", "running"):
            jobs.stop(run)
    deadline = time.monotonic() + 120
    while jobs.worker_pid(ws) is not None and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.fixture
def tiny_disk(tmp_path):
    """tiny_disk(mb) -> a folder on a freshly mounted tmpfs of that size."""
    mounted = []

    def make(size_mb: int, name: str = "disk") -> Path:
        folder = tmp_path / f"{name}{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); needs root")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One finished feature-extraction run (workspace, run folder, dataset), trained once."""
    from core.train import train

    root = tmp_path_factory.mktemp("trained")
    data = root / "data"
    rng = np.random.default_rng(1)
    for c, tint in (("red", (200, 30, 30)), ("green", (30, 200, 30))):
        (data / c).mkdir(parents=True)
        for i in range(12):
            pixels = (rng.integers(0, 256, (8, 8, 3)) * 0.5 + np.array(tint) * 0.5).astype(np.uint8)
            Image.fromarray(pixels).resize((64, 64), Image.Resampling.NEAREST).save(data / c / f"{c}_{i}.png")
    ws = root / "ws"
    result = train(_fe_config(data), workspace=ws)
    return ws, result.run_dir, data


def _copy_run(run_dir: Path, ws: Path, name: str | None = None) -> Path:
    import shutil

    target = ws / "runs" / (name or run_dir.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(run_dir, target)
    return target


# ---------------------------------------------------------------------------------------
# 2. two writers racing on one project (and every other JSON file)
# ---------------------------------------------------------------------------------------
def _project_writer(workspace: str, pid: str, field: str, rounds: int) -> None:
    os.environ["LATIH_WORKSPACE"] = workspace
    from ui import state

    for i in range(rounds):
        project = state.load_project(pid)
        assert project is not None, "project vanished while another process wrote it"
        state.change_fields(project, {f"settings/{field}": i})
        if i % 10 == 0:
            state.update_project(state.load_project(pid), language="en")  # whole-project saves race too


def test_two_writers_race_on_one_project_100_rounds(workspace):
    from ui import state

    project = state.new_project("Race", language="en")
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_project_writer, args=(str(workspace), project["id"], field, 100))
               for field in ("epochs", "batch_size")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(300)
    assert [w.exitcode for w in writers] == [0, 0]
    folder = state.project_dir(project["id"])
    final = json.loads((folder / "project.json").read_text(encoding="utf-8"))  # valid JSON, not corrupt
    # every field-wise change landed: none was overwritten by the other writer's stale copy
    assert final["settings"]["epochs"] == 99 and final["settings"]["batch_size"] == 99
    assert final["version"] == 1 + 2 * 100 + 2 * 10
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]  # no temp files left
    assert [p["id"] for p in state.list_projects()] == [project["id"]]


def test_damaged_project_is_restored_from_its_last_good_copy_and_never_hides_others(workspace):
    from ui import state

    kept = state.new_project("Kept", language="en")
    state.update_project(kept, data_path="/photos/leaves")
    damaged = state.new_project("Broken", language="en")
    state.update_project(damaged, data_path="/photos/eyes")
    path = state.project_dir(damaged["id"]) / "project.json"
    path.write_bytes(b'{"id": "half a proj')  # a write cut short
    restored = state.load_project(damaged["id"])
    assert restored["data_path"] == "/photos/eyes" and restored.get("restored_from_backup")
    assert json.loads(path.read_text())["data_path"] == "/photos/eyes"  # the file itself is repaired
    # without any good copy the project is listed as damaged, and the other still shows
    lost = state.new_project("Lost", language="en")
    lost_path = state.project_dir(lost["id"]) / "project.json"
    lost_path.write_bytes(b"\xff\xfe not json")
    (lost_path.parent / "project.json.bak").write_bytes(b"")  # and its copy lost too
    listed = {p["id"]: p for p in state.list_projects()}
    assert set(listed) == {kept["id"], damaged["id"], lost["id"]}
    assert "not text" in listed[lost["id"]]["damaged"]
    assert listed[kept["id"]]["data_path"] == "/photos/leaves"


def test_stale_field_write_is_refused_and_fresh_one_lands(workspace):
    from ui import state

    project = state.new_project("Tabs", language="en")
    seen_by_old_tab = project["version"]
    newer = state.change_fields(state.load_project(project["id"]), {"settings/epochs": 2},
                                expected_version=seen_by_old_tab)
    with pytest.raises(state.StaleProject):
        state.change_fields(state.load_project(project["id"]), {"split/val_fraction": 0.2},
                            expected_version=seen_by_old_tab)
    state.change_fields(state.load_project(project["id"]), {"split/val_fraction": 0.25},
                        expected_version=newer["version"])
    final = state.load_project(project["id"])
    assert final["settings"]["epochs"] == 2 and final["split"]["val_fraction"] == 0.25


# ---------------------------------------------------------------------------------------
# 4. damaged run files: plain messages, the other runs still listed
# ---------------------------------------------------------------------------------------
def test_non_utf8_config_and_status_show_as_damaged_and_keep_the_others(trained_run, workspace, capsys):
    _, run_dir, _ = trained_run
    good = _copy_run(run_dir, workspace)
    bad_config = _copy_run(run_dir, workspace, "bad-config")
    (bad_config / "config.json").write_bytes(b"\xff\xfe\x00garbage")
    bad_status = _copy_run(run_dir, workspace, "bad-status")
    (bad_status / "status.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff")
    assert cli(["runs"]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err and "UnicodeDecodeError" not in out.out + out.err
    assert good.name in out.out
    assert "bad-config: damaged: config.json is not text" in out.out
    assert "bad-status: damaged: status.json is not text" in out.out
    table = run_list.list_runs()
    assert set(table["run_id"]) == {good.name, "bad-config", "bad-status"}
    with pytest.raises(RunError, match="damaged: config.json is not text"):
        runs.load_run(bad_config)
    assert cli(["predict", "bad-config", str(next(trained_run[2].rglob("*.png")))]) == 2
    assert "damaged" in capsys.readouterr().err


def test_truncated_model_file_is_a_plain_message_in_cli_and_predictor(trained_run, workspace, capsys):
    from core.predict import Predictor

    _, run_dir, data = trained_run
    run = _copy_run(run_dir, workspace)
    model = run / "model.safetensors"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 3])
    with pytest.raises(RunError, match="damaged or incomplete"):
        Predictor.from_run(run)
    assert cli(["predict", run.name, str(next(data.rglob("*.png")))]) == 2
    err = capsys.readouterr().err
    assert "damaged or incomplete" in err and "this is a bug" not in err


# ---------------------------------------------------------------------------------------
# 5. full disk (a real, tiny tmpfs)
# ---------------------------------------------------------------------------------------
class _Upload(io.BytesIO):
    """What Streamlit's UploadedFile is: a BytesIO with the file's name and size."""

    def __init__(self, name: str, data: bytes):
        super().__init__(data)
        self.name, self.size = name, len(data)


def test_full_disk_upload_says_how_much_and_where_and_leaves_nothing(tiny_disk, monkeypatch):
    from core.diskspace import DiskFullError
    from ui import data_ops

    disk = tiny_disk(1)
    with pytest.raises(DiskFullError, match=r"needs about .* MB in .*disk"):
        data_ops.save_upload(_Upload("photos.zip", os.urandom(3 * 1024**2)), disk / "uploads")
    assert list((disk / "uploads").iterdir()) == []
    # the disk fills up behind the free-space check: the write itself fails, and is cleaned up
    from core import diskspace

    monkeypatch.setattr(diskspace, "require_free", lambda *args, **kwargs: None)
    with pytest.raises(DiskFullError, match=r"the disk is full: Latih needs about .* MB free in .*uploads") as full:
        data_ops.save_upload(_Upload("more.zip", os.urandom(3 * 1024**2)), disk / "uploads")
    assert list((disk / "uploads").iterdir()) == []
    from core.i18n import render

    said = render(full.value.args[0], "id")  # the same words under the Bahasa menu
    assert said.startswith("disk penuh: Latih perlu sekitar ") and "uploads (kosong sekarang: " in said, said


def test_full_disk_message_names_the_task_in_bahasa(tiny_disk, monkeypatch):
    """Under the Bahasa menu the whole message is Bahasa, the task's name too ("saving x.zip" was English)."""
    from core.diskspace import DiskFullError
    from ui import data_ops

    monkeypatch.setenv("LATIH_LANG", "id")
    with pytest.raises(DiskFullError) as full:
        data_ops.save_upload(_Upload("foto.zip", os.urandom(3 * 1024**2)), tiny_disk(1) / "uploads")
    assert str(full.value).startswith("ruang disk tidak cukup untuk menyimpan foto.zip: perlu sekitar"), str(full.value)


def test_full_disk_json_write_leaves_the_old_file_and_no_temp(tiny_disk):
    from core.diskspace import DiskFullError
    from core.jsonfile import write_json_atomic

    disk = tiny_disk(1)
    target = disk / "project.json"
    write_json_atomic(target, {"name": "kept"})
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:  # fill the disk to the last byte
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == 28
    finally:
        os.close(fd)
    with pytest.raises(DiskFullError, match="the disk is full"):
        write_json_atomic(target, {"name": "new", "blob": "x" * 200_000})
    assert json.loads(target.read_text()) == {"name": "kept"}
    assert not [p.name for p in disk.iterdir() if p.name.endswith(".tmp")]


def test_full_disk_while_unpacking_a_zip_is_checked_before_and_cleaned(tiny_disk, tmp_path):
    from core.data.scan import open_source

    data = tmp_path / "zips"
    data.mkdir()
    archive = data / "photos.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for c in ("a", "b"):
            for i in range(3):
                zf.writestr(f"{c}/{i}.bin", os.urandom(512 * 1024))
    ws = tiny_disk(2)
    with pytest.raises(LatihError, match=r"not enough disk space for unpacking photos.zip: it needs about"):
        open_source(archive, workspace=ws)
    assert [p.name for p in (ws / "datasets").iterdir()] == []


def test_full_disk_during_training_checkpoint_is_one_plain_line(trained_run, tiny_disk, capsys):
    import shutil

    ws_ok, _, data = trained_run
    ws = tiny_disk(24)
    shutil.copytree(ws_ok / "weights", ws / "weights")  # converted weights (~18 MB) fit; a checkpoint does not
    code = cli(["--workspace", str(ws), "train", str(data), "--strategy", "feature-extraction", "--epochs", "1",
                "--image-size", "64"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "the disk is full" in err and "this is a bug" not in err and "SafetensorError" not in err
    run = next((ws / "runs").iterdir())
    status = runs.read_status(run)
    assert status["state"] == "failed" and "the disk is full" in status["message"]
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


def _fill(disk: Path, leave: int = 0) -> None:
    """Fill the tmpfs at `disk` until at most `leave` bytes are free."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize > leave:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == 28
    finally:
        os.close(fd)


def _left_in(ws: Path) -> list[str]:
    """Files in the workspace other than the filler: temp, journal and partial files show up here."""
    return sorted(str(p.relative_to(ws)) for p in ws.rglob("*") if p.is_file() and p.name != "filler")


@pytest.mark.parametrize("leave_kb,marked", [(0, True), (24, True), (0, False)])
def test_full_disk_workspace_during_scan_and_copy_check_still_answers(tiny_disk, tmp_path, workspace, capsys,
                                                                        leave_kb, marked):
    """The photos are elsewhere; only the workspace (scan and thumbnail caches) is full: the
    check still answers (a cache is only a speed-up), says so in the log, and leaves no
    half-written cache, journal or temp file behind."""
    import logging

    photos = tmp_path / "photos"
    rng = np.random.default_rng(3)
    for c in ("a", "b"):
        (photos / c).mkdir(parents=True)
        for i in range(150):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(photos / c / f"{c}{i}.png")
    ws = tiny_disk(1)
    if marked:  # a workspace used before; else a new one whose marker file cannot be written
        (ws / ".latih-workspace").write_text("")
    _fill(ws, leave_kb * 1024)
    with _capture_log() as records:
        code = cli(["--workspace", str(ws), "data", "check", str(photos), "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "this is a bug" not in err
    if code == 0:
        report = json.loads(out)
        assert report["photos"] == 300, report
        assert any("cache" in r.getMessage() and ("full" in r.getMessage() or "space" in r.getMessage())
                   for r in records if r.levelno >= logging.WARNING), [r.getMessage() for r in records]
    else:
        assert code == 2 and err.count("error:") == 1 and "disk" in err and str(ws) in err, err
    left = _left_in(ws)
    assert not [n for n in left if n.endswith(("-journal", "-wal", ".tmp", ".partial"))], left
    assert ".latih-workspace" not in left or (ws / ".latih-workspace").stat().st_size > 0 or marked, left
    for name in left:  # a cache that is there is a whole, readable database
        if name.endswith(".sqlite"):
            import sqlite3

            with sqlite3.connect(ws / name) as db:
                assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


class _capture_log:
    def __enter__(self):
        import logging

        self.records, self.handler = [], logging.Handler(logging.DEBUG)
        self.handler.emit = self.records.append
        logging.getLogger().addHandler(self.handler)
        return self.records

    def __exit__(self, *exc):
        import logging

        logging.getLogger().removeHandler(self.handler)


def test_full_disk_during_export_package_is_one_line_and_leaves_the_run_whole(trained_run, tiny_disk, workspace,
                                                                               capsys):
    from safetensors.torch import load_file

    ws_ok, run_dir, _ = trained_run
    run = _copy_run(run_dir, workspace)
    before = {p.name: p.stat().st_size for p in run.iterdir() if p.is_file()}
    disk = tiny_disk(1)
    code = cli(["--workspace", str(workspace), "export", run.name, "--format", "package", "--out", str(disk / "x.zip")])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len([line for line in lines if line.startswith("error:")]) == 1, err
    assert "the disk is full" in err and "needs about" in err and str(disk) in err, err
    assert "Traceback" not in err and "this is a bug" not in err, err
    assert sorted(p.name for p in disk.iterdir()) == [], list(disk.iterdir())
    assert load_file(run / "model.safetensors")
    after = {p.name: p.stat().st_size for p in run.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k in before} == before


# ---------------------------------------------------------------------------------------
# 6. hostile zips
# ---------------------------------------------------------------------------------------
def test_password_protected_zip_is_a_plain_message(tmp_path, workspace, capsys, make_image):
    photos = tmp_path / "p"
    for c in ("a", "b"):
        for i in range(3):
            make_image(photos / c / f"{i}.png", seed=i + (10 if c == "b" else 0))
    archive = tmp_path / "secret.zip"
    subprocess.run(["zip", "-q", "-r", "-P", "hunter2", str(archive), "a", "b"], cwd=photos, check=True)
    assert cli(["data", "check", str(archive)]) == 2
    err = capsys.readouterr().err
    assert "secret.zip is password-protected" in err and "RuntimeError" not in err
    assert not list((workspace / "datasets").iterdir())


def test_whole_archive_bomb_of_many_small_members_is_refused(tmp_path, workspace):
    from core.data.scan import open_source

    archive = tmp_path / "bomb.zip"
    zeros = b"\0" * 9_990_000  # each member under the 10 MiB per-member limit
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(60):
            zf.writestr(f"c{i % 2}/{i}.png", zeros)
    assert archive.stat().st_size < 2 * 1024**2
    with pytest.raises(DataError, match=r"bomb.zip looks like a zip bomb: its .* MB would unpack to 5\d\d MB"):
        open_source(archive)
    assert not list((workspace / "datasets").iterdir())


# ---------------------------------------------------------------------------------------
# 7. dead runs, the queue without a page, resume
# ---------------------------------------------------------------------------------------
def test_heartbeat_alone_marks_a_run_on_another_machine_dead(tmp_path):

    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    runs.update_json_fields(run, {"state": "running", "pid": os.getpid(), "host": "another-machine",
                                        "heartbeat": time.time() - liveness.HEARTBEAT_STALE_S - 5})
    assert runs.check_alive(run)["reason"] == "died"
    runs.update_json_fields(run, {"state": "running", "pid": os.getpid(), "host": "another-machine",
                                        "heartbeat": time.time()}, drop=("reason",))
    assert runs.check_alive(run)["state"] == "running"


def test_kill_9_mid_run_then_resume_gives_the_uninterrupted_result(make_dataset, workspace, tmp_path, capsys):
    data = make_dataset(("red", "green"), n=12)
    config = _resumable_config(data)
    reference_ws = tmp_path / "reference"
    try:
        victim = jobs.submit(config)
        queued_behind = jobs.submit(_fe_config(data, epochs=1))  # waits behind the victim
        # kill -9 the worker in the middle of the victim's run (after its 2nd epoch was written)
        _wait_for(lambda: (victim / "metrics.jsonl").exists() and len(_epoch_rows(victim)) >= 2, 600,
                  "the victim's second epoch")
        pid = jobs.read_status(victim)["pid"]
        os.kill(pid, signal.SIGKILL)
        killed_at = len(_epoch_rows(victim))
        left = sorted(p.name for p in victim.iterdir() if p.name.lstrip(".").startswith(("last", "resume")))
        assert 2 <= killed_at < config.epochs
        reference = jobs.submit(config, workspace=reference_ws)  # the same run, never interrupted
        # within seconds, everywhere: job status, the runs list, the CLI
        status = _wait_for(lambda: (s := jobs.job_status(victim))["state"] != "running" and s, 10, "death noticed")
        assert status["state"] == "failed" and status["reason"] == "died"
        assert run_list.list_runs().set_index("run_id").loc[victim.name, "status_text"] == "stopped unexpectedly"
        time.sleep(3.5)  # the queue's grace period for a worker that may still be starting
        assert cli(["runs"]) == 0  # ... which also starts the next queued job: no page needed
        out = capsys.readouterr().out
        assert f"{victim.name}: stopped unexpectedly; continue it with `latih resume {victim.name}`" in out
        assert jobs.wait(queued_behind, timeout=600)["state"] == "done"
        # the failed run's best-so-far model predicts, with a warning
        assert cli(["predict", victim.name, str(next(data.rglob("*.png")))]) == 0
        assert "warning: run" in capsys.readouterr().err
        # resume on the command line (it joins the same queue) and compare
        assert jobs.wait(reference, timeout=600)["state"] == "done"
        assert cli(["resume", victim.name, "--json"]) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert result["status"] == "done"
    finally:
        _leave_no_worker(workspace)
        _leave_no_worker(reference_ws)
    resumed_rows, reference_rows = _epoch_rows(victim), _epoch_rows(reference)
    assert [r["epoch"] for r in resumed_rows] == list(range(1, config.epochs + 1))  # none duplicated, none missing
    # Bit for bit: every epoch's metrics (timings aside) and the saved weights. (Commit 619c0d2 had
    # loosened this from the killed epoch on: a kill -9 between writing last.safetensors and
    # resume.pt, each atomic but not the pair, resumed epoch-k weights with epoch k-1's optimizer
    # and random state. The checkpoint is a pair now: resume.pt, written last, names its own
    # weights file, core/resume.py.)
    timing = {"seconds", "images_per_s", "peak_mem_mb", "time", "data_wait_s"}
    plain = (lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows])
    assert plain(resumed_rows) == plain(reference_rows)
    assert (victim / runs.MODEL_FILE).read_bytes() == (reference / runs.MODEL_FILE).read_bytes()
    assert runs.read_meta(victim)["best_epoch"] == runs.read_meta(reference)["best_epoch"]
    assert result["val_acc"] == reference_rows[runs.read_meta(reference)["best_epoch"] - 1]["val_acc"]
    assert runs.last_model_files(victim) == [] and not (victim / runs.RESUME_FILE).exists()  # the disk given back
    print("per epoch val_acc resumed", [r["val_acc"] for r in resumed_rows],
          "uninterrupted", [r["val_acc"] for r in reference_rows])
    print(f"checkpoint files the kill left: {left}")
    print(f"killed after epoch {killed_at}; final val_acc resumed {result['val_acc']} "
          f"= uninterrupted {reference_rows[runs.read_meta(reference)['best_epoch'] - 1]['val_acc']}")


def test_starting_twice_for_one_project_joins_the_first_run(make_dataset, workspace, monkeypatch):
    started = []
    monkeypatch.setattr(jobs, "start_worker", lambda workspace=None: started.append(workspace))
    config = _fe_config(make_dataset(("red", "green"), n=12))
    first, joined_first = queue_entry.submit_once(config, group="project-a")
    second, joined_second = queue_entry.submit_once(config, group="project-a")  # e.g. a second tab's Start
    other, _ = queue_entry.submit_once(config, group="project-b")
    forced, joined_forced = queue_entry.submit_once(config, group="project-a", force=True)
    assert (joined_first, joined_second, joined_forced) == (False, True, False)
    assert second == first and other != first and forced not in (first, other)
    assert jobs.queue(workspace) == [first, other, forced]


def test_latih_train_joins_the_queue_and_says_it_is_waiting(make_dataset, workspace):
    data = make_dataset(("red", "green"), n=12)
    long = jobs.submit(TrainConfig(data_path=str(data), backbone="resnet18", weights="scratch", strategy="full",
                                   image_size=32, epochs=1000, batch_size=8, augment="none", num_workers=0,
                                   device="cpu", early_stopping_patience=0))
    env = dict(os.environ, PYTHONPATH=str(REPO), LATIH_WORKSPACE=str(workspace))
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "train", str(data), "--strategy", "feature-extraction",
                             "--epochs", "1", "--image-size", "64", "--json"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: jobs.job_status(long)["state"] == "running", 300, "the long job to start")
        waiting = _wait_for(lambda: [r for r in jobs.queue(workspace) if r != long], 120, "the CLI's run queued")
        cli_run = waiting[0]
        assert jobs.job_status(cli_run)["state"] == "queued" and jobs.job_status(long)["state"] == "running"
        time.sleep(2)
        assert jobs.job_status(long)["state"] == "running"  # nothing trains beside it
        jobs.stop(long)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        _leave_no_worker(workspace)
    assert proc.returncode == 0, err
    assert "waiting: 1 run(s) ahead" in err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "done"
    long_status, cli_status = runs.read_status(long), runs.read_status(cli_run)
    assert long_status["state"] == "stopped"
    assert liveness.to_epoch(cli_status["started"]) >= liveness.to_epoch(long_status["updated"]) - 1


# ---------------------------------------------------------------------------------------
# 8. phone photos: HEIC/HEIF, GIF
# ---------------------------------------------------------------------------------------
def _heic(path: Path, colour) -> Path:
    import pillow_heif

    pillow_heif.register_heif_opener()
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sum(colour))
    pixels = (rng.integers(0, 256, (64, 64, 3)) * 0.4 + np.array(colour) * 0.6).astype(np.uint8)
    Image.fromarray(pixels).save(path, format="HEIF", quality=90)
    return path


def test_heic_and_gif_are_read_in_scan_predict_and_uploads(trained_run, workspace, tmp_path, capsys):
    from core.data.decode import decode_bytes
    from core.data.scan import scan

    _, run_dir, _ = trained_run
    folder = tmp_path / "phone"
    heic = _heic(folder / "IMG_0001.HEIC", (200, 30, 30))
    gif = folder / "anim.gif"
    frames = [Image.new("RGB", (64, 64), c) for c in ((30, 200, 30), (0, 0, 0))]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    table = scan(_heic(tmp_path / "ds" / "red" / "x.heic", (200, 30, 30)).parent.parent)
    assert table["readable"].all() and table.loc[0, "width"] == 64
    assert decode_bytes(heic.read_bytes(), heic.name).size == (64, 64)
    assert decode_bytes(gif.read_bytes(), gif.name).getpixel((0, 0)) == (30, 200, 30)  # the first frame
    run = _copy_run(run_dir, workspace)
    assert cli(["predict", run.name, str(folder), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(Path(r["path"]).name for r in rows) == ["IMG_0001.HEIC", "anim.gif"]
    assert all(r["error"] is None for r in rows)


# ---------------------------------------------------------------------------------------
# 9. the small ones
# ---------------------------------------------------------------------------------------
def test_small_ones_status_line_best_epoch_long_name_and_run_ids(make_dataset, workspace, capsys):
    from core.callbacks import FunctionCallback
    from core.train import train

    data = make_dataset(("red", "green"), n=12)
    messages = []
    record = FunctionCallback(on_epoch_end=lambda ctx, m: messages.append(runs.read_status(ctx.run_dir)["message"]))
    result = train(_fe_config(data, run_name="x" * 5000), callbacks=[record])
    assert messages and all(m.startswith("epoch ") for m in messages)  # not "preparing the photos"
    assert len(result.run_dir.name) < 120
    assert cli(["runs"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if result.run_dir.name in line)
    assert line.split()[4] == str(result.best_epoch)  # "2", not "2.000"
    outside = workspace.parent / "x" / "runs" / "X"
    outside.mkdir(parents=True)
    (outside / "config.json").write_text("{}")
    assert cli(["predict", "../../x/runs/X", str(next(data.rglob("*.png")))]) == 2
    assert "no run found" in capsys.readouterr().err
