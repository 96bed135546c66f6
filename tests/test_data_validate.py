"""core.data.validate: every check fires on the problem it names, and stays quiet otherwise."""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from core.data.scan import scan
from core.data.findings import has_errors
from core.data.validate import check_dataset, drop_files, duplicate_groups


def by_code(findings) -> dict:
    return {f.code: f for f in findings}


def test_clean_dataset_has_no_findings(make_dataset):
    assert check_dataset(scan(make_dataset(("a", "b", "c"), n=12))) == []


def test_findings_are_json_serialisable_and_errors_come_first(make_dataset):
    root = make_dataset({"a": 12, "b": 1})
    (root / "a" / "x.jpg").write_text("text")
    findings = check_dataset(scan(root))
    json.dumps([asdict(f) for f in findings])
    severities = [f.severity for f in findings]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)
    assert has_errors(findings)


def test_unreadable_and_not_image_are_separate_with_fixes(make_dataset, make_image):
    root = make_dataset(("a", "b"), n=12)
    (root / "a" / "notes.jpg").write_text("not a photo")
    data = make_image(root / "b" / "whole.jpg", seed=77, size=200).read_bytes()
    (root / "b" / "cut.jpg").write_bytes(data[:300])
    found = by_code(check_dataset(scan(root)))
    assert [p.rsplit("/", 1)[-1] for p in found["not_image"].files] == ["notes.jpg"]
    assert found["not_image"].fix == "drop_not_images"
    assert [p.rsplit("/", 1)[-1] for p in found["unreadable"].files] == ["cut.jpg"]
    assert "1 photo cannot be read" in found["unreadable"].message and found["unreadable"].fix == "drop_unreadable"


def test_exact_and_near_duplicates_within_a_class(make_dataset):
    root = make_dataset(("a", "b"), n=12)
    shutil.copy(root / "a" / "a_000.png", root / "a" / "copy.png")
    # A near-copy: re-saved as JPEG and slightly brightened (different bytes, same picture).
    near = ImageEnhance.Brightness(Image.open(root / "b" / "b_003.png")).enhance(1.05)
    near.save(root / "b" / "near.jpg", quality=85)
    finding = by_code(check_dataset(scan(root)))["duplicate_within_class"]
    # One photo of each pair is left out (the later name), never both.
    assert sorted(p.rsplit("/", 1)[-1] for p in finding.files) == ["copy.png", "near.jpg"]
    assert finding.fix == "drop_duplicates"
    assert finding.message.startswith("2 pairs of copies or near-copies in the same class")


def test_photo_copied_into_two_classes_is_a_conflict(make_dataset):
    root = make_dataset(("a", "b"), n=12)
    shutil.copy(root / "a" / "a_005.png", root / "b" / "same.png")
    finding = by_code(check_dataset(scan(root)))["conflicting_labels"]
    assert finding.severity == "error"
    assert sorted(p.rsplit("/", 1)[-1] for p in finding.files) == ["a_005.png", "same.png"]
    assert "'a/a_005.png' (class 'a') and 'b/same.png' (class 'b')" in finding.message


def test_photo_copied_into_train_and_val_is_leakage(make_dataset):
    root = make_dataset(("a", "b"), split={"train": 10, "val": 3})
    shutil.copy(root / "train" / "a" / "a_004.png", root / "val" / "a" / "leak.png")
    found = by_code(check_dataset(scan(root)))
    leak = found["split_leakage"]
    assert [p.rsplit("/", 1)[-1] for p in leak.files] == ["leak.png"]  # the train copy is kept
    assert leak.fix == "drop_leaked"
    assert "duplicate_within_class" not in found  # across splits it is leakage, not a within-split copy


def test_too_few_photos_warning_and_error(make_dataset):
    found = check_dataset(scan(make_dataset({"a": 12, "b": 5, "c": 1})))
    few = [f for f in found if f.code == "too_few_images"]
    assert {f.severity: f.message for f in few}.keys() == {"error", "warning"}
    error = next(f for f in few if f.severity == "error")
    warning = next(f for f in few if f.severity == "warning")
    assert "'c' (1)" in error.message and "'b'" not in error.message
    assert "'b' (5)" in warning.message and "'c'" not in warning.message


def test_class_with_only_unreadable_files_counts_as_empty_of_photos(make_dataset):
    root = make_dataset(("a", "b"), n=12)
    (root / "c").mkdir()
    (root / "c" / "x.jpg").write_text("text")
    (root / "c" / "y.jpg").write_text("text2")
    error = next(f for f in check_dataset(scan(root)) if f.code == "too_few_images" and f.severity == "error")
    assert "'c' (0)" in error.message


def test_imbalance_over_three_to_one(make_dataset):
    found = by_code(check_dataset(scan(make_dataset({"big": 40, "small": 12}))))
    assert "'big' has 40 photos but 'small' only 12" in found["imbalance"].message
    assert "imbalance" not in by_code(check_dataset(scan(make_dataset({"x": 30, "y": 12}, name="ok"))))


def test_size_shortcut_when_one_class_is_twice_as_large(make_dataset):
    root = make_dataset(("glaucoma", "normal"), n=12, sizes={"glaucoma": 160, "normal": 80})
    finding = by_code(check_dataset(scan(root)))["size_shortcut"]
    assert finding.severity == "warning"
    assert "'glaucoma' are 2.0 times larger" in finding.message
    assert "image size instead of the disease" in finding.message
    same = make_dataset(("x", "y"), n=12, sizes={"x": 100, "y": 90}, name="same")
    assert "size_shortcut" not in by_code(check_dataset(scan(same)))


def test_small_images(make_dataset):
    root = make_dataset(("a", "b"), n=12, size=(100, 40))
    finding = by_code(check_dataset(scan(root)))["small_images"]
    assert len(finding.files) == 24 and "smaller than 64 px" in finding.message


def test_single_class_is_an_error(make_dataset):
    finding = by_code(check_dataset(scan(make_dataset(("only",), n=12))))["single_class"]
    assert finding.severity == "error" and "needs at least two classes" in finding.message


def test_empty_class_folder_is_an_error(make_dataset):
    root = make_dataset(("a", "b"), n=12)
    (root / "forgotten").mkdir()
    finding = by_code(check_dataset(scan(root)))["empty_class"]
    assert finding.severity == "error" and "'forgotten'" in finding.message


def test_drop_files_applies_a_fix_and_keeps_attrs(make_dataset):
    root = make_dataset(("a", "b"), n=12)
    shutil.copy(root / "a" / "a_000.png", root / "a" / "copy.png")
    (root / "c").mkdir()
    df = scan(root)
    finding = by_code(check_dataset(df))["duplicate_within_class"]
    fixed = drop_files(df, finding.files)
    assert len(fixed) == len(df) - 1 and fixed.attrs["empty_classes"] == ["c"]
    assert "duplicate_within_class" not in by_code(check_dataset(fixed))
    assert len(df) == 25  # the original is untouched


# pHash-distance groups (and their chains) are gone: see tests/test_data_copies.py for copy pairs.
