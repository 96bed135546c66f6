"""Background jobs: queue order, one worker per workspace, stop, a killed worker.

Two layers:
* queue mechanics with a stand-in trainer (`fake_train` below, named to the worker through
  LATIH_TRAIN_FN), fast and independent of torch;
* the same promises with the real `core.train.train` on a tiny generated dataset
  (skipped until core/train.py exists).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from core import jobs
from core.config import TrainConfig

TESTS_DIR = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------
# a stand-in trainer that follows core.train's contract (used by the worker process)
# ---------------------------------------------------------------------------------------
def fake_train(config, workspace=None, callbacks=(), run_dir=None):
    """Writes status running/done/stopped and metrics.jsonl like core.train; each epoch
    takes FAKE_EPOCH_S seconds in 10 'batches' and checks <run>/STOP between them."""
    from core.errors import Cancelled

    run = Path(run_dir)
    epoch_s = float(os.environ.get("FAKE_EPOCH_S", "0.3"))
    status = json.loads((run / "status.json").read_text())
    status.update(state="running", pid=os.getpid(), message="training")
    (run / "status.json").write_text(json.dumps(status))
    with open(run / "metrics.jsonl", "a") as fh:
        for epoch in range(1, config.epochs + 1):
            for batch in range(10):
                if (run / "STOP").exists():
                    status.update(state="stopped", message="stopped by the user")
                    (run / "status.json").write_text(json.dumps(status))
                    raise Cancelled("stopped")
                time.sleep(epoch_s / 10)
                fh.write(json.dumps({"type": "batch", "epoch": epoch, "batch": batch,
                                     "n_batches": 10, "loss": 1.0}) + "\n")
                fh.flush()
            fh.write(json.dumps({"type": "epoch", "epoch": epoch, "val_loss": 1.0 / epoch}) + "\n")
            fh.flush()
            (run / "model.safetensors").write_bytes(b"best")
    status.update(state="done", message="finished")
    (run / "status.json").write_text(json.dumps(status))


@pytest.fixture
def fake_trainer(monkeypatch):
    monkeypatch.setenv("LATIH_TRAIN_FN", "test_jobs:fake_train")
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("FAKE_EPOCH_S", "0.3")


@pytest.fixture
def ws(workspace):
    """conftest's workspace (LATIH_WORKSPACE); no worker is left running afterwards."""
    path = workspace
    yield path
    # Leave no worker behind: stop every run, then wait for the worker to go.
    for run in (path / "runs").glob("*") if (path / "runs").exists() else []:
        if (run / "status.json").exists() and jobs.read_status(run).get("state") in ("queued", "running"):
            jobs.stop(run)
    deadline = time.monotonic() + 60
    while jobs.worker_pid(path) is not None and time.monotonic() < deadline:
        time.sleep(0.2)


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _config(data: Path, **kw) -> TrainConfig:
    base = dict(data_path=str(data), image_size=64, epochs=2, batch_size=8, augment="none",
                weights="pretrained", val_fraction=0.25, early_stopping_patience=0, num_workers=0,
                device="cpu")
    base.update(kw)
    return TrainConfig(**base)


# ---------------------------------------------------------------------------------------
# queue mechanics (stand-in trainer)
# ---------------------------------------------------------------------------------------
def test_submit_creates_run_folder_at_once(ws, make_dataset, fake_trainer):
    data = make_dataset(n=8)
    run = jobs.submit(_config(data, epochs=1), workspace=ws)
    assert run.is_dir() and run.parent == (ws / "runs").resolve()
    assert TrainConfig.from_json(run / "config.json").epochs == 1
    assert json.loads((run / "status.json").read_text())["state"] in ("queued", "running", "done")
    assert jobs.wait(run, timeout=60)["state"] == "done"
    assert (ws / "logs" / "worker.log").exists()


def test_two_jobs_run_in_order_one_at_a_time(ws, make_dataset, fake_trainer, monkeypatch):
    monkeypatch.setenv("FAKE_EPOCH_S", "1.0")
    data = make_dataset(n=8)
    first = jobs.submit(_config(data, epochs=3), workspace=ws)
    second = jobs.submit(_config(data, epochs=1), workspace=ws)
    assert first != second
    _wait_for(lambda: jobs.job_status(first)["state"] == "running", 30, "the first run to start")
    st2 = jobs.job_status(second)
    assert st2["state"] == "queued" and st2["position"] == 1, st2
    assert jobs.queue(ws) == [second]
    assert jobs.active_job(ws) == first
    assert jobs.job_status(first)["position"] == 0
    assert jobs.wait(first, timeout=60)["state"] == "done"
    assert jobs.wait(second, timeout=60)["state"] == "done"
    # one at a time: the second started after the first finished
    s1, s2 = jobs.read_status(first), jobs.read_status(second)
    assert jobs._to_epoch(s2["started"]) >= jobs._to_epoch(s1["started"])
    assert jobs.queue(ws) == [] and jobs.active_job(ws) is None
    _wait_for(lambda: jobs.worker_pid(ws) is None, 30, "the worker to exit on an empty queue")


def test_second_worker_exits_when_one_holds_the_lock(ws, make_dataset, fake_trainer, monkeypatch):
    monkeypatch.setenv("FAKE_EPOCH_S", "1.0")
    data = make_dataset(n=8)
    run = jobs.submit(_config(data, epochs=2), workspace=ws)
    _wait_for(lambda: jobs.job_status(run)["state"] == "running", 30, "the run to start")
    extra = jobs.start_worker(ws)
    assert extra.wait(timeout=30) == 0  # found the lock taken and left
    assert jobs.job_status(run)["state"] == "running"
    assert jobs.wait(run, timeout=60)["state"] == "done"


def test_stop_running_and_cancel_queued(ws, make_dataset, fake_trainer, monkeypatch):
    monkeypatch.setenv("FAKE_EPOCH_S", "1.0")
    data = make_dataset(n=8)
    running = jobs.submit(_config(data, epochs=50), workspace=ws)
    waiting = jobs.submit(_config(data, epochs=1), workspace=ws)
    _wait_for(lambda: (running / "model.safetensors").exists(), 30, "a first checkpoint")
    st = jobs.stop(waiting)
    assert st["state"] == "stopped" and jobs.queue(ws) == []
    jobs.stop(running)
    final = jobs.wait(running, timeout=30)
    assert final["state"] == "stopped"
    assert (running / "model.safetensors").exists()
    assert not (waiting / "metrics.jsonl").exists()  # never trained
    assert jobs.stop(running)["state"] == "stopped"  # stopping a finished run is harmless


def test_killed_worker_shows_failed(ws, make_dataset, fake_trainer, monkeypatch):
    monkeypatch.setenv("FAKE_EPOCH_S", "2.0")
    data = make_dataset(n=8)
    run = jobs.submit(_config(data, epochs=50), workspace=ws)
    _wait_for(lambda: jobs.job_status(run)["state"] == "running", 30, "the run to start")
    pid = jobs.job_status(run)["pid"]
    os.kill(pid, signal.SIGKILL)
    st = _wait_for(lambda: (s := jobs.job_status(run))["state"] != "running" and s, 30, "failed state")
    assert st["state"] == "failed" and st["message"] == jobs.DIED_MESSAGE
    assert jobs.read_status(run)["state"] == "failed"  # recorded, not just reported


def test_queued_runs_resume_when_no_worker_is_alive(ws, make_dataset, fake_trainer, monkeypatch):
    """E.g. after a reboot: tickets remain, the next status check starts a worker."""
    data = make_dataset(n=8)
    with monkeypatch.context() as m:
        m.setattr(jobs, "start_worker", lambda workspace=None: None)
        run = jobs.submit(_config(data, epochs=1), workspace=ws)
    assert jobs.worker_pid(ws) is None
    assert jobs.ensure_worker(ws) is False  # a fresh ticket: its worker may still be starting
    (ticket,) = jobs._tickets(ws)  # make it a minute old, as after a reboot
    stamp, rest = ticket.name.split("-", 1)
    ticket.rename(ticket.with_name(f"{int(stamp) - 60 * 10**9:020d}-{rest}"))
    assert jobs.job_status(run)["state"] == "queued"  # this call starts a worker
    assert jobs.wait(run, timeout=60)["state"] == "done"


def test_status_of_missing_run_is_a_plain_error(tmp_path):
    from core.errors import RunError

    with pytest.raises(RunError):
        jobs.job_status(tmp_path / "nope")


# ---------------------------------------------------------------------------------------
# the real trainer
# ---------------------------------------------------------------------------------------
def _have_train() -> bool:
    try:
        import core.train  # noqa: F401
    except ImportError:
        return False
    return True


real = pytest.mark.skipif(not _have_train(), reason="core/train.py is not there yet")


@real
@pytest.mark.timeout(600)
def test_real_two_jobs_queue_and_finish(ws, make_dataset):
    data = make_dataset(n=8)
    first = jobs.submit(_config(data, epochs=2), workspace=ws)
    second = jobs.submit(_config(data, epochs=2, seed=1), workspace=ws)
    st2 = jobs.job_status(second)
    assert st2["state"] == "queued" and st2["position"] == 1, st2
    _wait_for(lambda: jobs.job_status(first)["state"] != "queued", 120, "the first run to start")
    if jobs.job_status(first)["state"] == "running":
        st2 = jobs.job_status(second)
        assert st2["state"] == "queued" and st2["position"] == 1, st2
    s1 = jobs.wait(first, timeout=300)
    assert s1["state"] == "done", s1
    s2 = jobs.wait(second, timeout=300)
    assert s2["state"] == "done", s2
    for run in (first, second):
        epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                  if line.strip() and json.loads(line).get("type") == "epoch"]
        assert len(epochs) == 2
        assert (run / "model.safetensors").exists()


@real
@pytest.mark.timeout(600)
def test_real_stop_keeps_best_checkpoint(ws, make_dataset):
    data = make_dataset(n=8)
    run = jobs.submit(_config(data, epochs=200), workspace=ws)
    _wait_for(lambda: (run / "model.safetensors").exists(), 300, "a first checkpoint")
    jobs.stop(run)
    st = jobs.wait(run, timeout=120)
    assert st["state"] == "stopped", st
    assert (run / "model.safetensors").exists()


@real
@pytest.mark.timeout(600)
def test_real_killed_worker_shows_failed(ws, make_dataset):
    data = make_dataset(n=8)
    run = jobs.submit(_config(data, epochs=200), workspace=ws)
    _wait_for(lambda: jobs.job_status(run)["state"] == "running", 300, "the run to start")
    os.kill(jobs.job_status(run)["pid"], signal.SIGKILL)
    st = _wait_for(lambda: (s := jobs.job_status(run))["state"] != "running" and s, 30, "failed state")
    assert st["state"] == "failed" and "ended unexpectedly" in st["message"]
