"""core.data.scan / decode / archives / layout: layouts, zips (and their attacks), every photo mode, damaged files, scan cache."""
from __future__ import annotations

import os
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from core.data import archives, decode
from core.data import scan_cache
from core.data.decode import load_image
from core.data.scan import open_source, scan
from core.data.scan_cache import COLUMNS
from core.errors import DataError


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims width x height grey pixels: a decompression bomb in 100 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def zip_folder(folder: Path, archive: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.rglob("*")):
            zf.write(file, prefix + file.relative_to(folder).as_posix())
    return archive


def row(df, name: str):
    match = df[df["path"].str.endswith(name)]
    assert len(match) == 1, name
    return match.iloc[0]


# ---------------------------------------------------------------- layouts


def test_unsplit_folder_gives_one_row_per_photo_with_exact_columns(make_dataset):
    root = make_dataset(("ants", "bees"), n=3)
    df = scan(root)
    assert list(df.columns) == COLUMNS
    assert len(df) == 6 and df["readable"].all()
    assert sorted(df["label"].unique()) == ["ants", "bees"]
    assert set(df["split"]) == {""}
    assert all(Path(p).is_absolute() and Path(p).exists() for p in df["path"])
    assert (df["width"] == 64).all() and (df["mode"] == "RGB").all()
    assert df["sha1"].str.len().eq(40).all() and df["phash"].str.len().eq(16).all()
    assert df.attrs["empty_classes"] == [] and df.attrs["root"] == str(root.resolve())


def test_split_folders_are_read_and_valid_means_val(make_dataset, tmp_path):
    root = make_dataset(("a", "b"), split={"train": 3, "Valid": 2, "test": 1})
    df = scan(root)
    assert df.groupby("split").size().to_dict() == {"train": 6, "val": 4, "test": 2}


def test_mixing_split_and_class_folders_is_refused(make_dataset):
    root = make_dataset(("a", "b"), split={"train": 2})
    (root / "cats").mkdir()
    with pytest.raises(DataError, match="mixes split folders"):
        scan(root)


def test_photos_in_nested_subfolders_belong_to_the_class(make_dataset, make_image):
    root = make_dataset(("a", "b"), n=2)
    make_image(root / "a" / "day 2" / "IMG 1.JPG", seed=99)
    df = scan(root)
    assert row(df, "IMG 1.JPG")["label"] == "a"


def test_hidden_and_system_files_are_ignored(make_dataset, make_image):
    root = make_dataset(("a", "b"), n=2)
    make_image(root / "a" / ".hidden.png", seed=50)
    (root / "a" / "Thumbs.db").write_bytes(b"junk")
    (root / "a" / ".DS_Store").write_bytes(b"junk")
    make_image(root / "__MACOSX" / "a" / "x.png", seed=51)
    make_image(root / ".git" / "y.png", seed=52)
    df = scan(root)
    assert len(df) == 4 and sorted(df["label"].unique()) == ["a", "b"]


def test_empty_class_folder_is_reported(make_dataset):
    root = make_dataset(("a", "b"), n=2)
    (root / "c").mkdir()
    assert scan(root).attrs["empty_classes"] == ["c"]


def test_missing_path_and_folder_without_class_folders_are_refused(tmp_path, make_image):
    with pytest.raises(DataError, match="does not exist"):
        scan(tmp_path / "nowhere")
    make_image(tmp_path / "flat" / "x.png")
    with pytest.raises(DataError, match="no class folders"):
        scan(tmp_path / "flat")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="not a folder or a .zip"):
        scan(tmp_path / "notes.txt")


# ---------------------------------------------------------------- damaged and odd files


def test_text_file_named_jpg_is_an_unreadable_row(make_dataset):
    root = make_dataset(("a", "b"), n=2)
    (root / "a" / "notes.jpg").write_text("this is not a photo")
    bad = row(scan(root), "notes.jpg")
    assert not bad["readable"] and bad["error"].startswith("not an image")
    assert bad["width"] == 0 and bad["phash"] == "" and len(bad["sha1"]) == 40


def test_truncated_jpeg_is_detected(make_dataset, make_image):
    root = make_dataset(("a", "b"), n=2)
    good = make_image(root / "a" / "whole.jpg", seed=7, size=256)
    data = good.read_bytes()
    (root / "a" / "cut.jpg").write_bytes(data[: len(data) // 2])
    df = scan(root)
    assert row(df, "whole.jpg")["readable"]
    cut = row(df, "cut.jpg")
    assert not cut["readable"] and "truncated or damaged" in cut["error"]
    with pytest.raises(DataError, match="truncated"):
        load_image(root / "a" / "cut.jpg")


def test_importing_core_data_leaves_truncated_loading_off():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_decompression_bomb_png_is_refused_without_decoding(make_dataset):
    root = make_dataset(("a", "b"), n=2)
    (root / "a" / "bomb.png").write_bytes(png_header_only(20_000, 20_000))
    bomb = row(scan(root), "bomb.png")
    assert not bomb["readable"]
    assert bomb["error"].startswith("image is too large (400 megapixels)")
    with pytest.raises(DataError, match="too large"):
        load_image(root / "a" / "bomb.png")


def test_pixel_limit_is_ours_to_set(make_dataset, monkeypatch):
    root = make_dataset(("a", "b"), n=1, size=100)
    monkeypatch.setattr(decode, "MAX_PIXELS", 5_000)
    df = scan(root)
    assert not df["readable"].any()
    assert df["error"].str.startswith("image is too large").all()


def test_pil_warning_range_is_treated_as_an_error(make_dataset, monkeypatch):
    root = make_dataset(("a", "b"), n=1, size=100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6_000)  # 10,000 px: PIL only warns (< 2x limit)
    df = scan(root, use_cache=False)
    assert not df["readable"].any() and df["error"].str.contains(r"too large \(0 megapixels\)").all()


# ---------------------------------------------------------------- every mode and format


def _save(img: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def test_every_format_and_mode_loads_as_rgb(tmp_path):
    root = tmp_path / "modes"
    rgb = Image.new("RGB", (80, 60), (10, 120, 200))
    files = {
        "cmyk.jpg": (Image.new("CMYK", (80, 60), (0, 255, 255, 0)), "CMYK"),
        "grey.bmp": (rgb.convert("L"), "L"),
        "palette.png": (rgb.convert("P"), "P"),
        "la.png": (rgb.convert("LA"), "LA"),
        "photo.tiff": (rgb, "RGB"),
        "photo.webp": (rgb, "RGB"),
        "deep.png": (Image.fromarray(np.full((60, 80), 65535, np.uint16)), "I;16"),
    }
    for name, (img, _) in files.items():
        _save(img, root / "a" / name)
    _save(rgb, root / "b" / "plain.png")
    df = scan(root)
    assert df["readable"].all(), df["error"].tolist()
    for name, (_, mode) in files.items():
        assert row(df, name)["mode"] == mode
        image = load_image(root / "a" / name)
        assert image.mode == "RGB" and image.size == (80, 60)
    assert load_image(root / "a" / "cmyk.jpg").getpixel((40, 30))[0] > 200  # CMYK (0,255,255,0) is red
    assert load_image(root / "a" / "deep.png").getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 257 * 100, 32768, 65535]], np.uint16)
    path = _save(Image.fromarray(arr), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I;16")
    assert np.asarray(load_image(path))[0, :, 0].tolist() == [0, 100, 127, 255]


def test_transparency_is_composited_on_white(tmp_path):
    arr = np.zeros((10, 10, 4), np.uint8)
    arr[:, :5] = (200, 0, 0, 255)  # left half opaque red, right half fully transparent black
    path = _save(Image.fromarray(arr, "RGBA"), tmp_path / "clear.png")
    image = np.asarray(load_image(path))
    assert image[0, 0].tolist() == [200, 0, 0] and image[0, 9].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = _save(Image.new("RGB", (120, 40), "white"), tmp_path / "a" / "turned.jpg", exif=exif.tobytes())
    _save(Image.new("RGB", (50, 50), "black"), tmp_path / "b" / "x.jpg")
    assert load_image(path).size == (40, 120)
    turned = row(scan(tmp_path), "turned.jpg")
    assert (turned["width"], turned["height"]) == (40, 120)


# ---------------------------------------------------------------- zip archives


def test_zip_with_a_top_folder_is_extracted_into_the_workspace_once(make_dataset, tmp_path, workspace):
    root = make_dataset(("a", "b"), n=3)
    archive = zip_folder(root, tmp_path / "my photos.zip", prefix="my photos/")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("__MACOSX/my photos/a/._a_000.png", b"resource fork")
        zf.writestr("my photos/.DS_Store", b"junk")
    folder = open_source(archive)
    assert folder.name == "my photos" and workspace / "datasets" in folder.parents
    assert folder.parent.name.startswith("my photos-")
    df = scan(archive)
    assert len(df) == 6 and sorted(df["label"].unique()) == ["a", "b"]
    assert not list((workspace / "datasets").rglob("*MACOSX*"))
    marker = folder / "a" / "a_000.png"
    before = marker.stat().st_mtime_ns
    assert open_source(archive) == folder and marker.stat().st_mtime_ns == before  # reused, not re-extracted
    assert not [p for p in (workspace / "datasets").iterdir() if p.name.startswith(".extract")]


def test_zip_of_a_split_dataset(make_dataset, tmp_path):
    root = make_dataset(("a", "b"), split={"train": 2, "validation": 1})
    df = scan(zip_folder(root, tmp_path / "split.zip"))
    assert df.groupby("split").size().to_dict() == {"train": 4, "val": 2}


@pytest.mark.parametrize("member", ["../evil.png", "a/../../evil.png", "/tmp/evil.png", "C:/evil.png", "a\\..\\..\\evil.png"])
def test_zip_slip_is_refused_and_nothing_is_written(tmp_path, workspace, member):
    archive = tmp_path / "slip.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/ok.png", b"x")
        zf.writestr(member, b"evil")
    with pytest.raises(DataError, match="outside the archive"):
        open_source(archive)
    assert not (tmp_path / "evil.png").exists()
    assert not list((workspace / "datasets").iterdir())


def test_zip_with_a_symlink_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        link = zipfile.ZipInfo("a/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(DataError, match="symbolic link"):
        open_source(archive)


def test_zip_bomb_is_refused(tmp_path, workspace):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/zeros.png", b"\0" * (11 * 1024 * 1024))
    assert archive.stat().st_size < 100_000
    with pytest.raises(DataError, match="zip bomb"):
        open_source(archive)
    assert not list((workspace / "datasets").iterdir())


def test_zip_limits_on_members_and_total_size(tmp_path, monkeypatch):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(6):
            zf.writestr(f"a/{i}.png", b"x" * 100)
    monkeypatch.setattr(archives, "MAX_ZIP_MEMBERS", 5)
    with pytest.raises(DataError, match="holds 6 files"):
        open_source(archive)
    monkeypatch.setattr(archives, "MAX_ZIP_MEMBERS", 100)
    monkeypatch.setattr(archives, "MAX_ZIP_UNCOMPRESSED", 500)
    with pytest.raises(DataError, match="would unpack to"):
        open_source(archive)


def test_damaged_zip_is_refused(tmp_path, make_dataset):
    (tmp_path / "fake.zip").write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="is damaged or incomplete"):
        open_source(tmp_path / "fake.zip")
    archive = zip_folder(make_dataset(("a", "b"), n=2), tmp_path / "cut.zip")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) - 40])  # central directory cut off
    with pytest.raises(DataError, match="is damaged or incomplete"):
        open_source(archive)


# ---------------------------------------------------------------- scan cache


def test_second_scan_comes_from_the_cache_and_changes_are_seen(make_dataset, make_image, monkeypatch, workspace):
    root = make_dataset(("a", "b"), n=3)
    first = scan(root)
    assert (workspace / "cache" / "scan.sqlite").exists()
    monkeypatch.setattr(scan_cache, "describe_file", lambda path: pytest.fail(f"decoded {path} again"))
    again = scan(root)
    assert again.equals(first)

    changed = root / "a" / "a_000.png"
    make_image(changed, seed=1234, size=80)
    os.utime(changed, ns=(1, 1))  # a different mtime, whatever the clock resolution
    decoded = []
    monkeypatch.setattr(scan_cache, "describe_file", lambda path: decoded.append(path) or decode.PhotoInfo(error="x"))
    scan(root)
    assert decoded == [str(changed)]
