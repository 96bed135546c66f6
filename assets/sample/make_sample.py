"""Rebuild the bundled sample photos from ../shared/datasets (deterministic).

    .venv/bin/python assets/sample/make_sample.py [--source ../shared/datasets]

For each class, the files of the source folder are sorted by name and every k-th one is
taken (k = count // PER_CLASS), so the same files are chosen every time. Each photo is
re-encoded as JPEG quality 85, downscaled so its longer side is at most 256 px, and given a
plain name; `manifest.csv` records which source file each one came from.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from PIL import Image, ImageOps

PER_CLASS = 30
MAX_SIDE = 256
QUALITY = 85
HERE = Path(__file__).resolve().parent

# sample set -> (source dataset, licence, [(source class folder, sample class folder)])
SETS = {
    "leaf": ("plantvillage_potato_pepper", "CC BY-SA 3.0", [
        ("Potato___Early_blight", "early_blight"),
        ("Potato___Late_blight", "late_blight"),
        ("Potato___healthy", "healthy"),
    ]),
    "retina": ("acrima_glaucoma", "CC BY 4.0", [
        ("glaucoma", "glaucoma"),
        ("normal", "normal"),
    ]),
}
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def pick(files: list[Path], n: int) -> list[Path]:
    files = sorted(files, key=lambda p: p.name)
    step = max(1, len(files) // n)
    return files[::step][:n]


def build(source: Path) -> list[dict]:
    rows = []
    for sample, (dataset, licence, classes) in SETS.items():
        for src_class, dst_class in classes:
            src_dir = source / dataset / src_class
            dst_dir = HERE / sample / dst_class
            dst_dir.mkdir(parents=True, exist_ok=True)
            for old in dst_dir.glob("*.jpg"):
                old.unlink()
            files = [p for p in src_dir.iterdir() if p.suffix.lower() in IMAGE_EXT]
            for i, src in enumerate(pick(files, PER_CLASS), start=1):
                with Image.open(src) as im:
                    im = ImageOps.exif_transpose(im).convert("RGB")
                    w0, h0 = im.size
                    im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
                    dst = dst_dir / f"{dst_class}_{i:02d}.jpg"
                    im.save(dst, "JPEG", quality=QUALITY, optimize=True)
                rows.append({
                    "file": dst.relative_to(HERE).as_posix(),
                    "source_dataset": dataset,
                    "source_file": f"{src_class}/{src.name}",
                    "original_size": f"{w0}x{h0}",
                    "licence": licence,
                })
    with open(HERE / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(HERE.parents[2] / "shared" / "datasets"),
                    help="folder holding acrima_glaucoma/ and plantvillage_potato_pepper/")
    rows = build(Path(ap.parse_args().source))
    total = sum((HERE / r["file"]).stat().st_size for r in rows)
    print(f"{len(rows)} photos, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
