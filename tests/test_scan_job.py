"""A large photo source is read in a background process (core.data.scan_job): the Data page
starts it, shows its bar, and adopts the photos when they are read; a source that cannot be
read fails the job, and the project keeps the photos it had.

Real processes on small generated photos; ui.data_ops.SCAN_INLINE_LIMIT is set to 0 so that a
set of 24 photos takes the path a set of 50,000 takes.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data import scan_job
from tests.conftest import wait_for_job
from tests.test_app_pages import EN, _app, _open


def test_the_background_read_gives_the_table_scan_gives(make_dataset):
    from core.data.scan import read_table, scan

    root = make_dataset(("red", "green"), n=12)
    folder = scan_job.start(root)
    job = wait_for_job(folder)
    assert job["state"] == "done", job
    table, attrs = scan_job.result(folder)
    got, expected = read_table(table), scan(root)
    assert job["photos"] == len(got) == len(expected) == 24
    assert got[["path", "label", "sha1", "readable"]].values.tolist() == \
        expected[["path", "label", "sha1", "readable"]].values.tolist()
    assert attrs["root"] == expected.attrs["root"]


def test_a_corrupt_zip_fails_the_job_with_its_reason(tmp_path, make_dataset):
    root = make_dataset(("red", "green"), n=3)
    archive = tmp_path / "broken.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(root.rglob("*.png")):
            zf.write(path, f"leaves/{path.relative_to(root)}")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])  # cut off: the central directory is gone
    job = wait_for_job(scan_job.start(archive))
    assert job["state"] == "failed"
    assert job["message_i18n"]["key"].startswith("err.zip"), job


def test_the_files_are_counted_only_up_to_the_limit(make_dataset, tmp_path):
    root = make_dataset(("red", "green"), n=12)
    assert 5 < scan_job.file_count(root, 5) < 24  # stopped after the first folder past the limit
    assert scan_job.file_count(root, 1000) == 24
    assert scan_job.file_count(tmp_path / "nowhere", 10) == 0


# ---------------------------------------------------------------- the Data page
@pytest.fixture
def held_reads(monkeypatch, held_jobs):
    from ui import data_ops

    monkeypatch.setattr(data_ops, "SCAN_INLINE_LIMIT", 0)
    return held_jobs


def _data_page(project: dict) -> AppTest:
    return _open(_app(project=project["id"]), "data")


def _photos(at: AppTest) -> str | None:
    return {m.label: m.value for m in at.metric}.get(EN["data.n_photos"])


def _read_bars(at: AppTest) -> list[str]:
    return [str(p.proto.text) for p in at.get("progress")]


@pytest.mark.usefixtures("navigation_like_a_running_server")
def test_a_large_folder_is_read_in_the_background_then_becomes_the_projects(make_dataset, held_reads):
    from ui import state

    old = make_dataset(("red", "green"), n=5, name="old")
    new = make_dataset(("ants", "bees", "wasps"), n=8, name="new")
    project = state.new_project("Farm", data_path=str(old), source_kind="folder", language="en")
    at = _data_page(project)  # the old folder: 10 photos (read in the background too, then adopted)
    held_reads()
    wait_for_job(Path(state.load_project(project["id"])["pending_read"]["job"]))
    at.run()
    assert _photos(at) == "10", _photos(at)

    at.text_input(key="data_folder_path").input(str(new)).run()
    at.button(key="data_folder_use").click().run()
    assert not at.exception, [e.value for e in at.exception]
    pending = state.load_project(project["id"])["pending_read"]
    assert scan_job.read_job(pending["job"])["state"] == "running"
    assert any(EN["data.progress_open"] in text for text in _read_bars(at)), _read_bars(at)
    assert EN["data.reading_background"] in [c.value for c in at.caption]
    assert _photos(at) == "10"  # meanwhile the project keeps its photos
    held_reads()
    assert wait_for_job(Path(pending["job"]))["state"] == "done"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _photos(at) == "24"
    saved = state.load_project(project["id"])
    assert saved.get("pending_read") is None and Path(saved["data_path"]) == new.resolve()
    assert saved["source"] == {"kind": "folder", "path": str(new)}
    assert sorted(at.selectbox(key="data_sample_class").options) == ["ants", "bees", "wasps"]


@pytest.mark.usefixtures("navigation_like_a_running_server")
def test_a_large_corrupt_zip_fails_in_the_background_and_the_project_keeps_its_photos(make_dataset, held_reads,
                                                                                       monkeypatch):
    from ui import data_ops, state

    old = make_dataset(("red", "green"), n=5, name="old")
    project = state.new_project("Clinic", data_path=str(old), source_kind="folder", language="en")
    monkeypatch.setattr(data_ops, "SCAN_INLINE_LIMIT", 10_000)  # the old photos: read at once
    at = _data_page(project)
    assert _photos(at) == "10"
    monkeypatch.setattr(data_ops, "SCAN_INLINE_LIMIT", 0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(make_dataset(("a", "b"), n=4, name="zipped").rglob("*.png")):
            zf.writestr(f"leaves/{path.parent.name}/{path.name}", path.read_bytes())
    data = bytearray(buffer.getvalue())
    first = data.index(b"PK\x03\x04") + 40
    data[first:first + 200] = b"\x00" * 200  # a damaged member: the zip opens, unpacking fails
    at.file_uploader(key="data_zip_upload").upload("clinic.zip", bytes(data), "application/zip")
    at.run()
    at.button(key="data_zip_use").click().run()
    assert not at.exception, [e.value for e in at.exception]
    pending = state.load_project(project["id"])["pending_read"]
    held_reads()
    assert wait_for_job(Path(pending["job"]))["state"] == "failed"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error and "clinic.zip" in at.error[0].value, [e.value for e in at.error]
    assert _photos(at) == "10"
    saved = state.load_project(project["id"])
    assert saved.get("pending_read") is None and Path(saved["data_path"]) == old.resolve()
    assert not Path(pending["source"]).exists()  # the rejected upload is not kept
    at.run()
    assert at.error and "clinic.zip" in at.error[0].value  # still said after another rerun


@pytest.mark.usefixtures("navigation_like_a_running_server")
def test_a_finished_read_whose_table_is_gone_is_said_and_not_adopted(make_dataset, held_reads):
    from ui import state

    old = make_dataset(("red", "green"), n=5, name="old")
    new = make_dataset(("ants", "bees"), n=6, name="new")
    project = state.new_project("Farm", data_path=str(old), source_kind="folder", language="en")
    at = _data_page(project)
    held_reads()
    wait_for_job(Path(state.load_project(project["id"])["pending_read"]["job"]))
    at.run()
    at.text_input(key="data_folder_path").input(str(new)).run()
    at.button(key="data_folder_use").click().run()
    pending = state.load_project(project["id"])["pending_read"]
    held_reads()
    assert wait_for_job(Path(pending["job"]))["state"] == "done"
    scan_job.result(pending["job"])[0].unlink()  # e.g. the workspace tidied by hand meanwhile
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("stopped unexpectedly" in e.value for e in at.error), [e.value for e in at.error]
    saved = state.load_project(project["id"])
    assert saved.get("pending_read") is None and Path(saved["data_path"]) == old.resolve()
    assert _photos(at) == "10"


def test_both_ways_of_reading_share_one_bar_and_say_it_in_the_page_language():
    from core.data.scan_job import read_share, read_text
    from ui.i18n import say

    zip_steps = [("zip_check", 0, 10), ("zip_check", 10, 10), ("unzip", 1, 50000), ("unzip", 50000, 50000),
                 ("read", 64, 50000), ("read", 50000, 50000)]
    shares = [read_share(task, done, total, zipped=True) for task, done, total in zip_steps]
    assert shares == sorted(shares) and shares[0] == 0.0 and shares[-1] == pytest.approx(0.9)
    assert read_share("read", 25000, 50000, zipped=False) == pytest.approx(0.45)  # a folder's bar is all reading
    assert read_share("read", 60000, 50000, zipped=False) == pytest.approx(0.9)  # never past what is left to adopt
    text = read_text("read", 8768, 50000)
    assert say(text, "id") == "Membaca dan memeriksa setiap foto: 8.768 dari 50.000…"
    assert say(text, "en") == "Reading and checking every photo: 8,768 of 50,000…"
    assert "12,000" in say(read_text("unzip", 12000, 50000, 2 << 20, 9 << 20), "en")
