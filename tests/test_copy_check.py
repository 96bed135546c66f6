"""The copy check of a large set runs in a background process (core.data.copy_check), and the
Data and Train pages poll it instead of spending a minute inside their scripts.

Real processes on small generated photos: ui.copy_review.INLINE_LIMIT is set to 0 so that a set
of 24 photos takes the path a set of 50,000 takes.
"""
from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data import copy_check
from tests.conftest import wait_for_job
from tests.test_app_pages import EN, _app as _app_at, _open, _project


def _table(root: Path, where: Path) -> Path:
    from core.data.scan import scan

    table = where / "files.csv"
    scan(root).to_csv(table, index=False)
    return table


def _dataset_with_a_copy(make_dataset) -> Path:
    root = make_dataset(("red", "green"), n=12)
    shutil.copy(root / "red" / "red_000.png", root / "green" / "copied_from_red.png")
    return root


def test_the_background_check_finds_the_pairs_find_pairs_finds(make_dataset, tmp_path):
    from core.data.copies import find_pairs
    from core.data.scan import read_table

    table = _table(_dataset_with_a_copy(make_dataset), tmp_path)
    folder = copy_check.start(table)
    assert copy_check.read_job(folder)["state"] == "running"
    assert copy_check.start(table) == folder  # asked again while running: the same check, not a second one
    job = wait_for_job(folder)
    assert job["state"] == "done", job
    pairs = copy_check.read_pairs(folder)
    df = read_table(table)
    expected = find_pairs(df[df["readable"]].reset_index(drop=True))
    assert len(pairs) == len(expected) == job["pairs"] == 1
    assert pairs[["file_a", "file_b", "scope"]].values.tolist() == expected[["file_a", "file_b", "scope"]].values.tolist()
    assert pairs.loc[0, "scope"] == "across_classes"


def test_a_rescan_gets_its_own_check_and_the_old_one_is_removed(make_dataset, tmp_path):
    root = _dataset_with_a_copy(make_dataset)
    table = _table(root, tmp_path)
    first = copy_check.start(table)
    wait_for_job(first)
    (root / "green" / "copied_from_red.png").unlink()
    time.sleep(0.01)  # a new mtime
    _table(root, tmp_path)
    second = copy_check.job_dir(table)
    assert second != first and copy_check.read_job(second)["state"] == "none"
    assert copy_check.start(table) == second
    assert not first.exists()
    assert wait_for_job(second)["state"] == "done"
    assert copy_check.read_pairs(second).empty


def test_a_check_whose_process_dies_says_so_and_can_run_again(make_dataset, tmp_path):
    table = _table(_dataset_with_a_copy(make_dataset), tmp_path)
    folder = copy_check.start(table)
    os.killpg(int(copy_check.read_job(folder)["pid"]), signal.SIGKILL)
    job = wait_for_job(folder, states=("failed",))
    assert job["message_i18n"]["key"] == "job.died"
    assert str(folder / copy_check.LOG_FILE) in job["message"]
    assert copy_check.start(table) == folder
    assert wait_for_job(folder)["state"] == "done"
    assert len(copy_check.read_pairs(folder)) == 1


# ---------------------------------------------------------------- the pages
@pytest.fixture
def held_checks(monkeypatch, held_jobs):
    """held_jobs (conftest) with the copy check of any set size in the background."""
    from ui import copy_review

    monkeypatch.setattr(copy_review, "INLINE_LIMIT", 0)  # 24 photos take the path of 50,000
    return held_jobs


def _app(root: Path) -> tuple[AppTest, dict]:
    project = _project(root)
    return _app_at(project=project["id"]), project


def _copy_bars(at: AppTest) -> list[str]:
    words = EN["copies.running_data"].split("{")[0].strip()
    return [str(p.proto.text) for p in at.get("progress") if words in str(p.proto.text)]


def _check_folder(project: dict) -> Path:
    from ui import state

    return copy_check.job_dir(state.files_table_path(project))


@pytest.mark.usefixtures("navigation_like_a_running_server")
def test_the_data_page_shows_the_other_findings_first_then_the_copies(make_dataset, held_checks):
    at, project = _app(_dataset_with_a_copy(make_dataset))
    _open(at, "data")  # reads the photos, starts the check, and does not wait for it
    title = EN["finding.conflicting_labels"].split("(")[0].strip()
    folder = _check_folder(project)
    assert copy_check.read_job(folder)["state"] == "running"
    assert _copy_bars(at), [str(p.proto.text) for p in at.get("progress")]
    assert not any(title in e.value for e in at.error)
    assert EN["data.no_findings"] not in [s.value for s in at.success]  # not "no problems" before the check
    held_checks()
    assert wait_for_job(folder)["state"] == "done"
    at.run()
    assert not at.exception
    assert any(title in e.value for e in at.error), [e.value for e in at.error]
    assert not _copy_bars(at)


@pytest.mark.usefixtures("navigation_like_a_running_server")
def test_training_waits_for_the_copy_check(make_dataset, held_checks):
    at, project = _app(make_dataset(("red", "green"), n=12))
    _open(at, "data")
    _open(at, "train")
    assert copy_check.read_job(_check_folder(project))["state"] == "running"
    assert at.button(key="train_start").disabled
    train_words = EN["copies.running_train"].split("{")[0].strip()
    assert any(train_words in str(p.proto.text) for p in at.get("progress"))
    held_checks()
    assert wait_for_job(_check_folder(project))["state"] == "done"
    _open(at, "train")
    assert not at.button(key="train_start").disabled


@pytest.mark.usefixtures("navigation_like_a_running_server")
def test_a_failed_check_is_said_on_the_page_and_can_be_run_again(make_dataset, held_checks):
    at, project = _app(_dataset_with_a_copy(make_dataset))
    _open(at, "data")
    folder = _check_folder(project)
    pid = int(copy_check.read_job(folder)["pid"])
    held_checks()
    os.kill(pid, signal.SIGKILL)
    wait_for_job(folder, states=("failed",))
    at.run()
    assert not at.exception
    assert any("stopped unexpectedly" in e.value for e in at.error), [e.value for e in at.error]
    at.button(key="data_copies_check_again").click().run()
    assert not at.exception
    held_checks()
    assert wait_for_job(folder)["state"] == "done"
    at.run()
    title = EN["finding.conflicting_labels"].split("(")[0].strip()
    assert any(title in e.value for e in at.error)
