"""Background jobs: queue order, one worker per workspace, stop, a killed worker.

Every job here is trained by the real `core.train.train` in the real worker process, on a
tiny generated dataset. A job that must stay "running" while the test looks at it is a
long full fine-tune (1,000 epochs of a random-weight ResNet-18 at 32 px) that the test
then stops through the STOP file, so no assertion depends on how fast this machine is.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from core import job_queue, jobs, run_status
from core.config import TrainConfig

pytestmark = pytest.mark.timeout(600)


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
# queue mechanics
# ---------------------------------------------------------------------------------------
def _long(data: Path, **kw) -> TrainConfig:
    """A job that runs until stopped (each epoch is a real training epoch)."""
    return _config(data, backbone="resnet18", weights="scratch", strategy="full", image_size=32,
                   epochs=1000, **kw)


def _stop_and_wait(run: Path) -> dict:
    jobs.stop(run)
    return jobs.wait(run, timeout=120)


def test_submit_creates_run_folder_at_once(ws, make_dataset):
    data = make_dataset(n=8)
    run = jobs.submit(_config(data, epochs=1), workspace=ws)
    assert run.is_dir() and run.parent == (ws / "runs").resolve()
    assert TrainConfig.from_json(run / "config.json").epochs == 1
    assert json.loads((run / "status.json").read_text())["state"] in ("queued", "running", "done")
    assert jobs.wait(run, timeout=300)["state"] == "done"
    assert (ws / "logs" / "worker.log").exists()


def test_two_jobs_run_in_order_one_at_a_time(ws, make_dataset):
    data = make_dataset(n=8)
    first = jobs.submit(_long(data), workspace=ws)
    second = jobs.submit(_config(data, epochs=1), workspace=ws)
    assert first != second
    _wait_for(lambda: jobs.job_status(first)["state"] == "running", 300, "the first run to start")
    st2 = jobs.job_status(second)
    assert st2["state"] == "queued" and st2["position"] == 1, st2
    assert jobs.queue(ws) == [second]
    assert jobs.active_job(ws) == first
    assert jobs.job_status(first)["position"] == 0
    assert _stop_and_wait(first)["state"] == "stopped"
    assert jobs.wait(second, timeout=300)["state"] == "done"
    # one at a time: the second started after the first had ended
    s1, s2 = jobs.read_status(first), jobs.read_status(second)
    assert run_status.to_epoch(s2["started"]) >= run_status.to_epoch(s1["updated"])
    assert jobs.queue(ws) == [] and jobs.active_job(ws) is None
    _wait_for(lambda: jobs.worker_pid(ws) is None, 60, "the worker to exit on an empty queue")


def test_second_worker_exits_when_one_holds_the_lock(ws, make_dataset):
    data = make_dataset(n=8)
    run = jobs.submit(_long(data), workspace=ws)
    _wait_for(lambda: jobs.job_status(run)["state"] == "running", 300, "the run to start")
    extra = jobs.start_worker(ws)
    assert extra.wait(timeout=60) == 0  # found the lock taken and left
    assert jobs.job_status(run)["state"] == "running"
    assert _stop_and_wait(run)["state"] == "stopped"


def test_stop_running_and_cancel_queued(ws, make_dataset):
    data = make_dataset(n=8)
    running = jobs.submit(_long(data), workspace=ws)
    waiting = jobs.submit(_config(data, epochs=1), workspace=ws)
    _wait_for(lambda: (running / "model.safetensors").exists(), 300, "a first checkpoint")
    st = jobs.stop(waiting)
    assert st["state"] == "stopped" and jobs.queue(ws) == []
    final = _stop_and_wait(running)
    assert final["state"] == "stopped", final
    assert (running / "model.safetensors").exists()
    assert not (waiting / "metrics.jsonl").exists()  # never trained
    assert jobs.stop(running)["state"] == "stopped"  # stopping a finished run is harmless


def test_killed_worker_shows_failed(ws, make_dataset):
    data = make_dataset(n=8)
    run = jobs.submit(_long(data), workspace=ws)
    _wait_for(lambda: jobs.job_status(run)["state"] == "running", 300, "the run to start")
    pid = jobs.job_status(run)["pid"]
    os.kill(pid, signal.SIGKILL)
    st = _wait_for(lambda: (s := jobs.job_status(run))["state"] != "running" and s, 30, "failed state")
    assert st["state"] == "failed" and st["message"] == jobs.DIED_MESSAGE
    assert jobs.read_status(run)["state"] == "failed"  # recorded, not just reported


def test_queued_runs_resume_when_no_worker_is_alive(ws, make_dataset, monkeypatch):
    """E.g. after a reboot: tickets remain, the next status check starts a worker."""
    data = make_dataset(n=8)
    with monkeypatch.context() as m:
        m.setattr(jobs, "start_worker", lambda workspace=None: None)
        run = jobs.submit(_config(data, epochs=1), workspace=ws)
    assert jobs.worker_pid(ws) is None
    assert jobs.ensure_worker(ws) is False  # a fresh ticket: its worker may still be starting
    (ticket,) = job_queue.tickets(ws)  # make it a minute old, as after a reboot
    stamp, rest = ticket.name.split("-", 1)
    ticket.rename(ticket.with_name(f"{int(stamp) - 60 * 10**9:020d}-{rest}"))
    assert jobs.job_status(run)["state"] == "queued"  # this call starts a worker
    assert jobs.wait(run, timeout=300)["state"] == "done"


def test_status_of_missing_run_is_a_plain_error(tmp_path):
    from core.errors import RunError

    with pytest.raises(RunError):
        jobs.job_status(tmp_path / "nope")


# ---------------------------------------------------------------------------------------
# the default (pretrained, feature-extraction) path through the queue
# ---------------------------------------------------------------------------------------
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
