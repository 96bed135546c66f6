"""Copy detection (core.data.copies + copy_findings): pairs, not chains; severity fits the evidence;
the workspace is never scanned. All photos are generated here (see conftest)."""
from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance

from core.config import TrainConfig
from core.data import copies
from core.data import thumbs as thumbs_module
from core.data.scan import scan
from core.data.findings import has_errors
from core.data.validate import check_dataset, duplicate_groups


def by_code(findings):
    return {f.code: f for f in findings}


def near_copy(src: Path, dst: Path) -> Path:
    """The same photo, halved, brightened 10% and saved as JPEG: other bytes, same picture."""
    img = Image.open(src).convert("RGB")
    img = img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
    dst.parent.mkdir(parents=True, exist_ok=True)
    ImageEnhance.Brightness(img).enhance(1.1).save(dst, "JPEG", quality=80)
    return dst


def textured(seed: int, size: int = 192) -> np.ndarray:
    """A smooth random texture (float, zero mean, unit variance)."""
    grid = np.random.default_rng(seed).normal(0, 1, (24, 24)).astype(np.float32)
    big = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return (big - big.mean()) / big.std()


def save_grey(values: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(values * 40 + 128, 0, 255).astype(np.uint8)).convert("RGB").save(path)
    return path


def test_near_copy_across_classes_is_a_warning_and_training_is_not_blocked(make_dataset, tmp_path):
    root = make_dataset(("red", "green"), n=12, size=128)
    near_copy(root / "red" / "red_003.png", root / "green" / "looks_red.jpg")
    df = scan(root)
    found = by_code(check_dataset(df))
    assert not has_errors(list(found.values()))
    warning = found["near_copy_across_classes"]
    assert warning.severity == "warning" and warning.fix is None
    assert sorted(Path(p).name for p in warning.files) == ["looks_red.jpg", "red_003.png"]
    # The example names the two files and the two classes it speaks of.
    assert "'green/looks_red.jpg' (class 'green') and 'red/red_003.png' (class 'red')" in warning.message
    assert "training is not blocked" in warning.message
    pairs = copies.find_pairs(df)
    assert len(pairs) == 1 and pairs.loc[0, "kind"] == "near" and pairs.loc[0, "scope"] == "across_classes"
    assert pairs.loc[0, "similarity"] >= copies.FINE_SIMILARITY

    from core.prepare import prepare_data  # the engine's own gate: errors stop training, warnings do not

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    prepared = prepare_data(TrainConfig(data_path=str(root)), None, run_dir)
    assert sum(len(f) for f in prepared.frames.values()) == 25
    assert any("look like one photo" in w for w in prepared.warnings)


def test_byte_identical_photo_in_two_classes_is_an_error_naming_both(make_dataset, tmp_path):
    root = make_dataset(("red", "green"), n=12)
    shutil.copy(root / "red" / "red_004.png", root / "green" / "same.png")
    found = by_code(check_dataset(scan(root)))
    error = found["conflicting_labels"]
    assert error.severity == "error" and error.fix == "drop_conflicting"
    assert sorted(Path(p).name for p in error.files) == ["red_004.png", "same.png"]  # the pair only
    assert "'green/same.png' (class 'green') and 'red/red_004.png' (class 'red')" in error.message
    from core.errors import DataError
    from core.prepare import prepare_data

    with pytest.raises(DataError, match="byte-identical"):
        prepare_data(TrainConfig(data_path=str(root)), None, tmp_path)
    # Leaving out one file of the pair (as the review or --exclude does) lets training start.
    config = TrainConfig(data_path=str(root), exclude=(str(root / "green" / "same.png"),))
    prepare_data(config, None, tmp_path)


def test_a_chain_of_near_copies_does_not_join_its_ends(tmp_path):
    # A ~ B and B ~ C (each 18 degrees apart in band-pass space), but A and C are not alike.
    x, y = textured(1), textured(2)
    angle = np.deg2rad(18)
    root = tmp_path / "chain"
    for name, theta in (("a", 0.0), ("b", angle), ("c", 2 * angle)):
        save_grey(np.cos(theta) * x + np.sin(theta) * y, root / "leaf" / f"{name}.png")
    for i in range(10):
        save_grey(textured(100 + i), root / "leaf" / f"other{i}.png")
        save_grey(textured(200 + i), root / "stem" / f"s{i}.png")
    df = scan(root)
    pairs = copies.find_pairs(df)
    names = {frozenset((Path(a).name, Path(b).name)) for a, b in zip(pairs["file_a"], pairs["file_b"])}
    assert names == {frozenset(("a.png", "b.png")), frozenset(("b.png", "c.png"))}
    finding = by_code(check_dataset(df))["duplicate_within_class"]
    # One photo per pair is left out, and B alone covers both pairs: A and C both stay.
    assert [Path(p).name for p in finding.files] == ["b.png"]
    assert "a.png" not in finding.message or "c.png" not in finding.message


def test_distinct_photos_on_a_plain_background_are_not_copies(tmp_path):
    """Leaves of one outline on white paper, each with its own veins: pHash calls many of them
    the same photo; the confirmation does not."""
    root = tmp_path / "leaves"
    mask = np.zeros((256, 256), np.uint8)
    cv2.ellipse(mask, (128, 128), (90, 60), 30, 0, 360, 1, -1)
    for i in range(24):
        tex = cv2.resize(np.random.default_rng(i).normal(0, 1, (48, 48)).astype(np.float32), (256, 256),
                         interpolation=cv2.INTER_CUBIC)
        img = np.full((256, 256), 235, np.float32)
        img[mask > 0] = 90 + 30 * tex[mask > 0]
        label = "healthy" if i % 2 else "sick"
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.astype(np.uint8)).convert("RGB").save(root / label / f"leaf{i}.jpg", quality=90)
    df = scan(root)
    assert len(copies.phash_pairs(df["phash"].tolist(), 8)) > 0  # pHash would have flagged some
    assert copies.find_pairs(df).empty
    assert not {"conflicting_labels", "near_copy_across_classes"} & set(by_code(check_dataset(df)))


def test_copies_across_splits_leave_out_the_val_photo(make_dataset):
    root = make_dataset(("a", "b"), split={"train": 10, "val": 3}, size=128)
    near_copy(root / "train" / "a" / "a_002.png", root / "val" / "a" / "again.jpg")
    leak = by_code(check_dataset(scan(root)))["split_leakage"]
    assert [Path(p).name for p in leak.files] == ["again.jpg"] and leak.fix == "drop_leaked"
    assert "(train)" in leak.message and "(val)" in leak.message


def test_duplicate_groups_come_from_confirmed_pairs(make_dataset):
    root = make_dataset(("a", "b"), n=12, size=128)
    near_copy(root / "a" / "a_001.png", root / "a" / "copy.jpg")
    df = scan(root)
    groups = duplicate_groups(df)
    by_name = dict(zip(df["path"].map(lambda p: Path(p).name), groups))
    assert by_name["copy.jpg"] == by_name["a_001.png"]
    assert len(set(groups)) == len(df) - 1  # every other photo stands alone


def test_kept_pairs_are_not_reported_again(make_dataset):
    root = make_dataset(("red", "green"), n=12, size=128)
    near_copy(root / "red" / "red_003.png", root / "green" / "looks_red.jpg")
    df = scan(root)
    pairs = copies.find_pairs(df)
    key = copies.pair_key(pairs.loc[0, "file_b"], pairs.loc[0, "file_a"])  # order-free
    assert "near_copy_across_classes" not in by_code(check_dataset(df, pairs=pairs, decisions={key: "keep"}))


def test_thumbnails_are_cached_by_sha1(make_dataset, workspace):
    df = scan(make_dataset(("a", "b"), n=3))
    thumbs, ok = thumbs_module.thumbnails(df)
    assert ok.all() and thumbs.shape == (6, copies.THUMB, copies.THUMB)
    cached = thumbs_module.ThumbCache().lookup(df["sha1"].tolist())
    assert set(cached) == set(df["sha1"]) and (workspace / "cache" / "thumbs.sqlite").exists()


# ---------------------------------------------------------------- workspace hygiene


def test_the_workspace_and_os_debris_are_never_scanned(make_dataset, monkeypatch):
    from core.workspace import MARKER, workspace_dir

    root = make_dataset(("red", "green"), n=12)
    # `latih data check .` run inside the photo folder with the workspace there
    monkeypatch.setenv("LATIH_WORKSPACE", str(root / "workspace"))
    first = scan(root)
    assert (root / "workspace" / MARKER).exists()
    (root / "workspace" / "runs").mkdir(exist_ok=True)
    second = scan(root)
    assert sorted(second["label"].unique()) == ["green", "red"] and len(second) == len(first) == 24
    assert not second.attrs["empty_classes"]
    # an old workspace elsewhere in the folder (marked) is skipped too, and so is OS debris
    monkeypatch.setenv("LATIH_WORKSPACE", str(root.parent / "elsewhere"))
    old = workspace_dir(root / "old-workspace")
    (old / "datasets").mkdir()
    for junk in ("__MACOSX", ".hidden"):
        (root / junk / "x").mkdir(parents=True)
        shutil.copy(root / "red" / "red_000.png", root / junk / "x" / "a.png")
    for name in (".DS_Store", "Thumbs.db", "desktop.ini"):
        (root / "red" / name).write_bytes(b"junk")
    df = scan(root)
    assert sorted(df["label"].unique()) == ["green", "red"] and len(df) == 24
    assert "not_image" not in by_code(check_dataset(df))


def test_default_workspace_is_a_per_user_data_folder(monkeypatch, tmp_path):
    from core import workspace

    monkeypatch.delenv("LATIH_WORKSPACE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    monkeypatch.chdir(tmp_path)
    path = workspace.workspace_dir()
    assert path == (tmp_path / "data-home" / "latih" / "workspace").resolve()
    assert (path / workspace.MARKER).exists() and not (tmp_path / "workspace").exists()
    assert str(path) in workspace.describe_default()


# ---------------------------------------------------------------- CLI


def run_cli(args, capsys):
    from core.cli import main

    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_data_check_writes_the_pairs_and_exclude_clears_them(make_dataset, tmp_path, capsys):
    root = make_dataset(("red", "green"), n=12, size=128)
    near_copy(root / "red" / "red_003.png", root / "green" / "looks_red.jpg")
    shutil.copy(root / "red" / "red_005.png", root / "green" / "same.png")
    out_csv = tmp_path / "pairs.csv"
    code, out, _ = run_cli(["data", "check", str(root), "--pairs", str(out_csv)], capsys)
    assert code == 1  # the byte-identical pair is an error
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert list(rows[0]) == copies.PAIR_COLUMNS
    assert {(r["kind"], r["scope"]) for r in rows} == {("identical", "across_classes"), ("near", "across_classes")}
    assert "saved 2 copy pairs" in out
    listing = tmp_path / "leave_out.txt"
    listing.write_text("# reviewed\ngreen/same.png\n")
    code, out, _ = run_cli(["data", "check", str(root), "--exclude", str(listing), "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["copy_pairs"] == 1
    assert [f["code"] for f in report["findings"] if f["severity"] == "error"] == []


def test_cli_train_exclude_goes_into_the_config(make_dataset, tmp_path):
    from core.cli import build_parser
    from core.cli_train import config_from_args

    root = make_dataset(("red", "green"), n=12)
    listing = tmp_path / "list.txt"
    listing.write_text(f"red/red_000.png\n{root / 'green' / 'green_001.png'}\n\n")
    args = build_parser(["train"]).parse_args(["train", str(root), "--exclude", str(listing)])
    config = config_from_args(args)
    assert config.exclude == tuple(sorted((str(root / "green" / "green_001.png"), str(root / "red" / "red_000.png"))))
    again = TrainConfig.from_json(config.to_json())
    assert again == config and isinstance(again.exclude, tuple)


def test_data_check_does_not_import_torch(make_dataset):
    import subprocess

    root = make_dataset(("red", "green"), n=4)
    code = ("import sys; from core.cli import main; main(['data', 'check', sys.argv[1], '--json']); "
            "print('TORCH', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert "TORCH False" in out.stdout, out.stderr[-2000:]


def test_similarity_in_small_blocks_of_left_photos_gives_the_same_scores(monkeypatch):
    """similarity() holds the left photos' vectors a block at a time (bounded memory at 50,000
    photos): forced into blocks of 3 photos, every pair's score is the one-block score, and the
    known answers hold (a photo against its own 5-degree turn is a near-copy, others are not)."""
    rng = np.random.default_rng(4)
    base = [np.clip(cv2.resize(textured(seed), (64, 64), interpolation=cv2.INTER_AREA) * 40 + 128, 0, 255)
            for seed in range(6)]
    turned = [cv2.warpAffine(b, cv2.getRotationMatrix2D((31.5, 31.5), 5, 1.0), (64, 64),
                             borderMode=cv2.BORDER_REFLECT) for b in base]
    thumbs = np.stack(base + turned).astype(np.uint8)
    pairs = np.array([(i, 6 + i) for i in range(6)] + [(int(a), int(b)) for a, b in rng.integers(0, 12, (40, 2)) if a != b])
    whole = copies.similarity(thumbs, pairs)
    monkeypatch.setattr(copies, "PLAIN_BLOCK_BYTES", 3 * 4 * int(copies.DISC.sum()))
    blocked = copies.similarity(thumbs, pairs)
    np.testing.assert_array_equal(blocked, whole)
    assert (whole[:6] >= copies.CONFIRM_SIMILARITY).all(), whole[:6]
    distinct = [k for k, (a, b) in enumerate(pairs) if a % 6 != b % 6]
    assert distinct and (whole[distinct] < copies.CONFIRM_SIMILARITY).all()


def _no_new_work(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the pairs were found again instead of read from the cache")

    monkeypatch.setattr(copies, "candidate_pairs", refuse)


def test_pairs_found_once_are_read_from_the_workspace_cache_until_a_photo_changes(make_dataset, monkeypatch):
    root = make_dataset(("red", "green"), n=10, size=128)
    near_copy(root / "red" / "red_003.png", root / "green" / "looks_red.jpg")
    df = scan(root)
    first = copies.find_pairs(df)
    assert len(first) == 1
    copies._MEMO.clear()  # a new process: only the cache on disk is left
    with monkeypatch.context() as patched:
        _no_new_work(patched)
        again = copies.find_pairs(df)
    assert again.values.tolist() == first.values.tolist()
    near_copy(root / "green" / "green_002.png", root / "green" / "looks_red.jpg")  # other bytes, same name
    copies._MEMO.clear()
    changed = copies.find_pairs(scan(root))
    assert changed["file_b"].tolist() != first["file_b"].tolist() or \
        changed["file_a"].tolist() != first["file_a"].tolist()


def test_the_training_run_takes_the_pairs_the_data_page_found(make_dataset, tmp_path, monkeypatch):
    from core.prepare import prepare_data

    root = make_dataset(("red", "green"), n=10, size=128)
    shutil.copy(root / "green" / "green_004.png", root / "green" / "green_again.png")
    df = scan(root)
    pairs = copies.find_pairs(df[df["readable"]])  # what the Data page's copy check runs
    assert len(pairs) == 1
    copies._MEMO.clear()
    _no_new_work(monkeypatch)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    prepared = prepare_data(TrainConfig(data_path=str(root)), None, run_dir)
    where = {row["path"]: split for split, frame in prepared.frames.items() for _, row in frame.iterrows()}
    a, b = str(root / "green" / "green_004.png"), str(root / "green" / "green_again.png")
    assert where[a] == where[b]  # the copies stay on one side of the split
