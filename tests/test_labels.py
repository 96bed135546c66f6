"""Labelling decisions (core.labels) and unlabelled / CSV-labelled photos (core.data.labelled)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from core.data import scan as scan_module
from core.data import scan_cache
from core.data.labelled import scan_csv, scan_loose
from core.errors import DataError
from core.labels import LabelError, LabelLog, write_training_csv


def _digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def loose(tmp_path, make_image):
    folder = tmp_path / "phone"
    for i in range(6):
        make_image(folder / ("DCIM" if i % 2 else "") / f"IMG_{i:03d}.jpg", seed=i, tint=(200, 40 * i, 40))
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_every_decision_is_one_appended_line_and_photos_are_untouched(tmp_path, loose):
    before = _digest(loose)
    photos = sorted(str(p) for p in loose.rglob("*.jpg"))
    log = LabelLog(tmp_path / "project")
    log.add_class("ant")
    log.label(photos[0], "ant")
    log.label(photos[1], "bee")  # a new class on the spot
    log.skip(photos[2])
    log.unsure(photos[3])
    lines = log.path.read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(line)["id"] for line in lines)
    state = log.state()
    assert state.labels == {photos[0]: "ant", photos[1]: "bee"}
    assert state.classes == ["ant", "bee"]
    assert state.status[photos[2]] == "skipped" and state.status[photos[3]] == "unsure"
    assert state.counts() == {"ant": 1, "bee": 1}
    assert state.done(photos[2]) and not state.done(photos[3]) and not state.done(photos[4])
    assert _digest(loose) == before, "labelling must never move or rewrite a photo"


def test_undo_takes_back_one_action_at_a_time_even_a_bulk_one(tmp_path, loose):
    photos = sorted(str(p) for p in loose.rglob("*.jpg"))
    log = LabelLog(tmp_path / "project")
    log.label(photos[0], "ant")
    log.label(photos[0], "bee")  # changed my mind
    log.accept({photos[1]: "ant", photos[2]: "bee", photos[3]: "ant", photos[4]: "bee"})  # bulk accept
    state = log.state()
    assert len(state.labels) == 5 and state.labels[photos[2]] == "bee"
    assert state.sources[photos[3]] == "suggestion" and state.sources[photos[0]] == "user"
    undone = log.undo()
    assert undone.paths == photos[1:5]
    assert log.state().labels == {photos[0]: "bee"}
    log.undo()
    assert log.state().labels == {photos[0]: "ant"}, "the earlier label comes back"
    log.undo()
    assert log.state().labels == {}
    with pytest.raises(LabelError, match="nothing to undo"):
        log.undo()
    # the log only grew: 3 actions + 3 undos
    assert len(log.path.read_text().splitlines()) == 6


def test_a_damaged_line_is_skipped_not_fatal(tmp_path, loose):
    photos = sorted(str(p) for p in loose.rglob("*.jpg"))
    log = LabelLog(tmp_path / "project")
    log.label(photos[0], "ant")
    with open(log.path, "a") as fh:
        fh.write('{"id": "x", "action": "lab')  # a write cut by a power cut
    fresh = LabelLog(tmp_path / "project")
    assert fresh.state().labels == {photos[0]: "ant"}


@pytest.mark.parametrize("name", ["", "   ", "a/b", "x" * 61, ".."])
def test_bad_class_names_are_refused_with_a_plain_message(tmp_path, name):
    log = LabelLog(tmp_path / "project")
    with pytest.raises(LabelError):
        log.add_class(name)
    assert not log.path.exists() or not log.path.read_text().strip()


def test_duplicate_class_is_refused(tmp_path):
    log = LabelLog(tmp_path / "project")
    log.add_class("healthy")
    with pytest.raises(LabelError, match="exists already"):
        log.add_class(" healthy ")


def test_loose_photos_are_scanned_and_checked_like_a_dataset(loose):
    df = scan_loose([loose])
    assert len(df) == 7 and set(df["label"]) == {""}
    assert df["readable"].sum() == 6
    bad = df[~df["readable"]]
    assert bad["path"].iloc[0].endswith("notes.txt") and "not an image" in bad["error"].iloc[0]
    assert list(df.columns) == scan_cache.COLUMNS


def test_labels_csv_is_a_training_source_for_scan(tmp_path, loose):
    photos = sorted(str(p) for p in loose.rglob("*.jpg"))
    log = LabelLog(tmp_path / "project")
    log.label(photos[:3], "ant")
    log.label(photos[3:], "bee")
    csv_path = write_training_csv(log.state(), tmp_path / "project" / "labels.csv")
    df = scan_module.scan(csv_path)  # the same entry point `latih train` and the app use
    assert sorted(df["path"]) == photos
    assert dict(zip(df["path"], df["label"])) == log.state().labels
    assert df["readable"].all() and (df["split"] == "").all()
    assert df["sha1"].str.len().eq(40).all()


def test_hand_written_csv_with_relative_paths(tmp_path, loose):
    (loose / "labels.csv").write_text("file,label\nIMG_000.jpg,ant\nDCIM/IMG_001.jpg,bee\n")
    df = scan_csv(loose / "labels.csv")
    assert dict(zip(df["path"].map(lambda p: Path(p).name), df["label"])) == {"IMG_000.jpg": "ant",
                                                                              "IMG_001.jpg": "bee"}


@pytest.mark.parametrize("text, message", [("name,class\na.jpg,x\n", "columns"),
                                           ("path,label\na.jpg,\n", "line 2"),
                                           ("path,label\n", "no photos")])
def test_bad_csv_is_a_one_line_data_error(tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        scan_module.scan(path)


def test_latih_data_check_reads_labels_csv(tmp_path, loose, capsys):
    from core.cli import main

    photos = sorted(str(p) for p in loose.rglob("*.jpg"))
    log = LabelLog(tmp_path / "project")
    log.label(photos[:3], "ant")
    log.label(photos[3:], "bee")
    csv_path = write_training_csv(log.state(), tmp_path / "project" / "labels.csv")
    main(["data", "check", str(csv_path), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["photos"] == 6 and report["counts"] == {"unsplit": {"ant": 3, "bee": 3}}
