"""Issue 12 (large sets): big zips stream to disk and unpack member by member with progress; a
damaged zip says so plainly and leaves the project's photos as they were; the Data page's sample
grid shows one bounded page at a time. Small generated sets only (speed: bench/bench_data_page.py)."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data.archives import extract_zip
from core.errors import DataError

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app.py"
TIMEOUT = 120
EN = json.loads((REPO / "assets" / "i18n" / "en.json").read_text(encoding="utf-8"))

pytestmark = pytest.mark.usefixtures("navigation_like_a_running_server")


def _zip(folder: Path, archive: Path, prefix: str = "set/", method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(archive, "w", method) as zf:
        for path in sorted(folder.rglob("*.png")):
            zf.write(path, f"{prefix}{path.relative_to(folder).as_posix()}")
    return archive


def _uploaded(archive: Path):
    """A real Streamlit UploadedFile holding the archive's bytes (what st.file_uploader returns)."""
    from streamlit.proto.Common_pb2 import FileURLs
    from streamlit.runtime.uploaded_file_manager import UploadedFile, UploadedFileRec

    record = UploadedFileRec(file_id="f1", name=archive.name, type="application/zip", data=archive.read_bytes())
    return UploadedFile(record, FileURLs())


def test_an_upload_is_written_in_chunks_then_unpacked_member_by_member_with_progress(
        make_dataset, tmp_path, workspace, monkeypatch):
    from ui import data_ops

    data = make_dataset(("red", "green"), n=6)
    archive = _zip(data, tmp_path / "leaves.zip", method=zipfile.ZIP_STORED)  # ~100 KB: many 4 KiB chunks
    monkeypatch.setattr(data_ops, "CHUNK", 4096)
    written: list[tuple[int, int]] = []
    saved = data_ops.save_upload(_uploaded(archive), tmp_path / "uploads", progress=lambda d, t: written.append((d, t)))
    size = archive.stat().st_size
    assert saved.read_bytes() == archive.read_bytes()
    assert len(written) >= size // 4096  # one call per chunk, not one write of everything
    assert [d for d, _ in written] == sorted(d for d, _ in written) and written[-1] == (size, size)
    assert all(t == size for _, t in written)

    unpacked: list[tuple[int, int, int, int]] = []
    root = extract_zip(saved, workspace, progress=lambda *a: unpacked.append(a))
    members = zipfile.ZipFile(saved).infolist()
    assert unpacked[0] == (0, len(members), 0, sum(m.file_size for m in members))
    assert unpacked[-1] == (len(members), len(members), sum(m.file_size for m in members),
                            sum(m.file_size for m in members))
    assert [u[0] for u in unpacked] == list(range(len(members) + 1))
    for path in sorted(data.rglob("*.png")):
        assert (root / "set" / path.relative_to(data)).read_bytes() == path.read_bytes()


def _upload_of(name: str, data: bytes, file_id: str = "f"):
    from streamlit.proto.Common_pb2 import FileURLs
    from streamlit.runtime.uploaded_file_manager import UploadedFile, UploadedFileRec

    return UploadedFile(UploadedFileRec(file_id=file_id, name=name, type="image/jpeg", data=data), FileURLs())


def test_two_different_photos_under_one_name_are_both_kept_and_a_second_drop_adds_nothing(tmp_path):
    """Two phones' IMG_0001.jpg in one class: the second was skipped when its size matched and
    overwrote the first when it did not. Now each keeps its bytes under its own name."""
    from ui import data_ops

    folder = tmp_path / "photos" / "sehat"
    first, same_size, longer = b"A" * 5000, b"B" * 5000, b"C" * 7000
    saved_first = data_ops.save_upload(_upload_of("IMG_0001.jpg", first), folder)
    saved_same_size = data_ops.save_upload(_upload_of("IMG_0001.jpg", same_size), folder)
    saved_longer = data_ops.save_upload(_upload_of("IMG_0001.jpg", longer), folder)
    assert [saved_first.name, saved_same_size.name, saved_longer.name] == \
        ["IMG_0001.jpg", "IMG_0001-2.jpg", "IMG_0001-3.jpg"]
    assert [saved_first.read_bytes(), saved_same_size.read_bytes(), saved_longer.read_bytes()] == \
        [first, same_size, longer]
    # the same photos dropped again (or the page rerun): found where they are, nothing new written
    assert data_ops.save_upload(_upload_of("IMG_0001.jpg", longer), folder) == saved_longer
    assert data_ops.save_upload(_upload_of("IMG_0001.jpg", first), folder) == saved_first
    assert sorted(p.name for p in folder.iterdir()) == ["IMG_0001-2.jpg", "IMG_0001-3.jpg", "IMG_0001.jpg"]


def test_a_big_zip_is_read_for_its_sha1_with_progress_before_it_is_unpacked(make_dataset, tmp_path, workspace,
                                                                              monkeypatch):
    import core.data.archives as archives

    archive = _zip(make_dataset(("red", "green"), n=6), tmp_path / "leaves.zip", method=zipfile.ZIP_STORED)
    monkeypatch.setattr(archives, "HASH_CHUNK", 4096)
    events: list[tuple[str, int, int]] = []
    extract_zip(archive, workspace, progress=lambda done, *_: events.append(("unpack", done, 0)),
                hashed=lambda done, total: events.append(("hash", done, total)))
    size = archive.stat().st_size
    hashing = [e for e in events if e[0] == "hash"]
    assert hashing[0] == ("hash", 0, size) and hashing[-1] == ("hash", size, size)
    assert len(hashing) >= size // 4096 and [d for _, d, _ in hashing] == sorted(d for _, d, _ in hashing)
    assert events.index(hashing[-1]) < events.index(("unpack", 0, 0))  # the bar moves before the first member


@pytest.mark.parametrize("member", ["../outside.png", "/tmp/latih-absolute.png", "set/../../up.png"])
def test_a_member_that_points_outside_is_refused_before_anything_is_written(tmp_path, workspace, member):
    archive = tmp_path / "slip.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("set/a/ok.png", b"x" * 100)
        zf.writestr(member, b"evil")
    calls = []
    with pytest.raises(DataError) as caught:
        extract_zip(archive, workspace, progress=lambda *a: calls.append(a))
    assert caught.value.args[0].key == "err.zip.outside"
    assert calls == [] and not (tmp_path / "outside.png").exists() and not Path("/tmp/latih-absolute.png").exists()
    assert not any((workspace / "datasets").iterdir())  # no half-unpacked folder left


def _damaged(make_dataset, tmp_path, how: str) -> Path:
    data = make_dataset(("red", "green"), n=6, name=f"damaged_{how}")
    archive = _zip(data, tmp_path / f"{how}.zip", method=zipfile.ZIP_STORED)
    raw = bytearray(archive.read_bytes())
    if how == "truncated":  # a download or copy that stopped half-way: no table of contents
        raw = raw[: len(raw) // 2]
    else:  # bytes of the last member flipped: its CRC check fails while it is unpacked
        info = zipfile.ZipFile(archive).infolist()[-1]
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        for k in range(start + 40, start + 60):
            raw[k] ^= 0xFF
    archive.write_bytes(bytes(raw))
    return archive


@pytest.mark.parametrize("how,key", [("truncated", "err.zip.unreadable"), ("corrupt", "err.zip.corrupt")])
def test_a_damaged_zip_is_a_plain_message_and_nothing_is_left_behind(make_dataset, tmp_path, workspace, how, key):
    archive = _damaged(make_dataset, tmp_path, how)
    with pytest.raises(DataError) as caught:
        extract_zip(archive, workspace)
    assert caught.value.args[0].key == key
    assert archive.name in str(caught.value) and "unchanged" in str(caught.value)
    assert not any((workspace / "datasets").iterdir())


def _app(**query) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(query)
    return at


def _open_data(project_id: str) -> AppTest:
    at = _app(project=project_id).run()
    at.switch_page("pages/data.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _photos(at: AppTest) -> int:
    return {m.label: m.value for m in at.metric}[EN["data.n_photos"]]


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
def test_a_damaged_upload_keeps_the_projects_photos(make_dataset, tmp_path, workspace, how):
    from ui import state

    project = state.new_project("Clinic", data_path=str(make_dataset(("red", "green"), n=7)), source_kind="folder",
                                language="en")
    at = _open_data(project["id"])
    assert _photos(at) == "14"
    left_out = str(sorted(Path(project["data_path"]).rglob("*.png"))[0])
    state.update_project(state.load_project(project["id"]), excluded=[left_out])  # a decision made earlier
    before = state.load_project(project["id"])
    table = state.files_table_path(before)
    version = (table.read_bytes(), table.stat().st_mtime_ns)
    archive = _damaged(make_dataset, tmp_path, how)
    at.file_uploader(key="data_zip_upload").upload(archive.name, archive.read_bytes(), "application/zip")
    at.run()
    at.button(key="data_zip_use").click().run()
    assert not at.exception, [e.value for e in at.exception]
    said = "damaged or incomplete" if how == "truncated" else "inside it cannot be read"
    assert any(said in e.value and "the photos you had are unchanged" in e.value.lower() for e in at.error), \
        [e.value for e in at.error]
    after = state.load_project(project["id"])
    assert after["data_path"] == before["data_path"] and after["excluded"] == [left_out]
    assert (table.read_bytes(), table.stat().st_mtime_ns) == version  # not even read again
    assert _photos(at) == "13"
    assert not list(workspace.glob("datasets/.extract-*")) and not list(workspace.rglob("*.zip"))


def test_a_zip_on_this_machine_is_read_where_it_lies(make_dataset, tmp_path):
    from ui import state

    archive = _zip(make_dataset(("ok", "bad"), n=5), tmp_path / "big.zip")
    project = state.new_project("Farm", data_path=None, source_kind="folder", language="en")
    at = _open_data(project["id"])
    at.text_input(key="data_zip_path").input(str(tmp_path / "nothing.zip")).run()
    at.button(key="data_zip_path_use").click().run()
    assert any("is not a .zip file" in e.value for e in at.error), [e.value for e in at.error]
    at.text_input(key="data_zip_path").input(str(archive)).run()
    at.button(key="data_zip_path_use").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert _photos(at) == "10"
    assert archive.exists()  # the person's own zip is never removed
    assert state.load_project(project["id"])["source"] == {"kind": "zip", "path": str(archive)}


def test_a_folder_the_system_refuses_is_said_in_plain_bahasa_not_a_traceback(make_dataset, monkeypatch):
    """PermissionError (a folder of another user; tests run as root, so chmod cannot make one)
    and a failing disk are OSErrors, which the page's guard let through as a traceback."""
    import core.data.scan as scan_module
    from ui import state

    data = make_dataset(("sehat", "sakit"), n=3)
    project = state.new_project("Klinik", data_path=None, source_kind="folder", language="id")
    at = _open_data(project["id"])

    def refused(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(scan_module, "open_source", refused)
    at.text_input(key="data_folder_path").input(str(data)).run()
    at.button(key="data_folder_use").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Tidak dapat memakai" in e.value and "akses ditolak" in e.value for e in at.error), \
        [e.value for e in at.error]
    assert all("Permission denied" not in e.value for e in at.error)
    assert not state.load_project(project["id"]).get("data_path")  # nothing half-read was kept


def test_the_sample_grid_shows_one_bounded_page_and_page_two_shows_others(make_dataset):
    from ui import data_ops, state

    data = make_dataset({"many": 2 * data_ops.SAMPLE_PAGE + 5, "few": 3})
    project = state.new_project("Grid", data_path=str(data), source_kind="folder", language="en")
    at = _open_data(project["id"])

    def shown() -> list[str]:
        return [c for image in at.get("image") for c in image.captions if c.startswith(("many_", "few_"))]

    at.selectbox(key="data_sample_class").set_value("many").run()  # classes sorted: few, many
    first = shown()
    assert len(first) == data_ops.SAMPLE_PAGE and all(c.startswith("many_") for c in first)
    at.number_input(key="data_sample_page_1").set_value(2).run()
    second = shown()
    assert len(second) == data_ops.SAMPLE_PAGE and not set(first) & set(second)
    at.number_input(key="data_sample_page_1").set_value(3).run()
    assert len(shown()) == 5
    at.selectbox(key="data_sample_class").set_value("few").run()
    assert sorted(shown()) == ["few_000.png", "few_001.png", "few_002.png"]
