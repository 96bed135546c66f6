"""Copy detection: precision and recall on pairs built from ../shared/datasets, and speed at 50k.

    python bench/bench_duplicates.py accuracy [--scales 1 4 16] [--sets NAME ...]
    python bench/bench_duplicates.py speed --sizes 10000 50000 [--out DIR] [--workspace DIR]

accuracy: for each shared set, every photo plus five copies of it (50% resize, JPEG quality
40, 90% centre crop, +15% brightness, 5 degree turn) go through the real detector
(core.data.copies: candidates, then confirmation at 64 and 128 px). A confirmed pair is right when both
photos come from one original (or from two originals labelled below as real near-copies,
checked by eye). Recall = confirmed (original, copy) pairs / all of them; precision =
right confirmed pairs / all confirmed pairs. Negatives are all pairs of distinct photos: a
pair that is not confirmed is "not a copy", so the confirmed false pairs are the errors on
all of them. At 4x and 16x, synthetic distinct photos (random 35-60% crops, turns of
20-340 degrees, flips, colour changes) are added and the false pairs are counted again.
Also printed: the closest negatives (look at them by eye) and the pHash pair counts at 4
and 8 bits among the distinct photos, for contrast.

speed: writes N distinct photos (<= 320 px JPEG, random crops/turns/colours of the shared
photos; generated once, kept in --out) and runs `latih data check` on the first N in a
fresh process and a fresh workspace per size (cold: every photo read, hashed and
thumbnailed) and prints seconds and peak RSS of that process (resource.getrusage), and the
machine load when it started. Use a new --workspace for a cold rerun.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data import copies  # noqa: E402
from core.data import thumbs as thumbs_module  # noqa: E402
from core.data.decode import _decode_rgb, perceptual_hash  # noqa: E402
from core.data.scan import scan  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/datasets")
SETS = ("hymenoptera", "acrima_glaucoma", "plantvillage_potato_pepper")
VARIANTS = ("resize50", "jpeg40", "crop90", "bright15", "rotate5")

# Closest distinct pairs looked at by eye (bench output, then the photos side by side):
# the same object photographed twice, moments apart. Not the same file, but a real
# near-copy (a leakage risk); a confirmed pair between them counts as right.
REAL_NEAR_COPIES = {
    ("JR_B.Spot 3372.JPG", "JR_B.Spot 3379.JPG"),  # plantvillage: one pepper leaf, shot twice, shifted
    ("JR_HL 8589.JPG", "JR_HL 8591.JPG"),          # plantvillage: one pepper leaf, shot twice
    ("JR_HL 8212.JPG", "JR_HL 8214.JPG"),          # plantvillage: one pepper leaf, shot twice (old check's "copy")
    ("JR_B.Spot 3234.JPG", "JR_B.Spot 3238.JPG"),  # plantvillage: one spotted leaf, shot twice
    ("Im228_ACRIMA.jpg", "Im229_ACRIMA.jpg"),      # acrima normal: one optic disc, two crops of one eye
    ("Im373_g_ACRIMA.jpg", "Im374_g_ACRIMA.jpg"),  # acrima glaucoma: one optic disc, shifted crop
}


def _short(name: str) -> str:
    """PlantVillage names start with a uuid: 'abc___JR_HL 8589.JPG' -> 'JR_HL 8589.JPG'."""
    return name.split("#")[0].split("<-")[-1].split("___")[-1]


def variant(img: Image.Image, name: str) -> bytes:
    """JPEG bytes of one copy of img (quality 90 except the recompressed one)."""
    quality = 90
    if name == "resize50":
        img = img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.LANCZOS)
    elif name == "jpeg40":
        quality = 40
    elif name == "crop90":
        w, h = img.size
        dw, dh = int(w * 0.05), int(h * 0.05)
        img = img.crop((dw, dh, w - dw, h - dh))
    elif name == "bright15":
        img = ImageEnhance.Brightness(img).enhance(1.15)
    elif name == "rotate5":
        img = img.rotate(5, resample=Image.Resampling.BILINEAR)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def synthetic(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A distinct photo made from img: a random 35-60% crop, turned, maybe flipped, recoloured."""
    w, h = img.size
    side = int(min(w, h) * rng.uniform(0.35, 0.6))
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    out = img.crop((x, y, x + side, y + side)).rotate(float(rng.uniform(20, 340)), resample=Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    out = ImageEnhance.Color(out).enhance(float(rng.uniform(0.5, 1.5)))
    out = ImageEnhance.Brightness(out).enhance(float(rng.uniform(0.7, 1.3)))
    return ImageEnhance.Contrast(out).enhance(float(rng.uniform(0.7, 1.3)))


def _from_bytes(data: bytes) -> Image.Image:
    return _decode_rgb(data, draft_size=2 * copies.FINE)[0]


class Collection:
    """Thumbnails, pHashes, fake sha1s and family ids of the photos in one experiment."""

    def __init__(self):
        self.thumbs, self.fine, self.phash, self.sha1, self.family, self.name = [], [], [], [], [], []

    def add(self, img: Image.Image, family: int, name: str, data: bytes | None = None):
        self.thumbs.append(thumbs_module.thumbnail_of(img))
        self.fine.append(thumbs_module.thumbnail_of(img, copies.FINE))
        self.phash.append(perceptual_hash(img))
        self.sha1.append(hashlib.sha1(data if data is not None else img.tobytes()).hexdigest())
        self.family.append(family)
        self.name.append(name)

    def frame(self):
        import pandas as pd

        return pd.DataFrame({"path": self.name, "sha1": self.sha1, "phash": self.phash})


def _save_pair(col: Collection, a: int, b: int, tag: str) -> None:
    """The two fine thumbnails side by side in /tmp/latih-bench-false/, to look at by eye."""
    folder = Path("/tmp/latih-bench-false")
    folder.mkdir(exist_ok=True)
    Image.fromarray(np.hstack([col.fine[a], col.fine[b]])).save(folder / f"{tag}-{a}-{b}.png")


def detect(col: Collection):
    df = col.frame()
    thumbs = np.stack(col.thumbs)
    ok = np.ones(len(df), dtype=bool)
    cand = copies.candidate_pairs(df, thumbs, ok)
    scores, confirmed = copies.confirm(thumbs, lambda rows: np.stack([col.fine[r] for r in rows]), cand)
    return cand, scores, confirmed


def accuracy(args) -> None:
    rng = np.random.default_rng(0)
    real = {frozenset(p) for p in REAL_NEAR_COPIES}
    totals = {"tp": 0, "pos": 0, "conf": 0, "right": 0}
    for set_name in args.sets:
        df = scan(SHARED / set_name)
        df = df[df["readable"]].reset_index(drop=True)
        originals = []
        for path in df["path"]:
            data = Path(path).read_bytes()
            originals.append((Path(path).name, _from_bytes(data), _decode_rgb(data)[0]))
        # distinct photos only: pHash contrast and closest negatives
        base = Collection()
        for i, (name, small, _) in enumerate(originals):
            base.add(small, i, name)
        # the pHash the scan stores (full-size decode), as the old check used it
        p4 = len(copies.phash_pairs(df["phash"].tolist(), 4))
        p8 = len(copies.phash_pairs(df["phash"].tolist(), 8))
        cand, scores, confirmed0 = detect(base)
        order = np.argsort(-scores)
        print(f"\n== {set_name}: {len(originals)} photos; pHash pairs among distinct photos: <=4 bits {p4}, "
              f"<=8 bits {p8}; candidates {len(cand)} ({len(cand) / max(1, len(originals)):.1f} per photo)")
        print("closest negatives (look at them by eye; similarity, then confirmed as a copy or not):")
        for k in order[:args.closest]:
            a, b = base.name[cand[k, 0]], base.name[cand[k, 1]]
            label = "  [labelled real near-copy]" if frozenset((_short(a), _short(b))) in real else ""
            print(f"  {scores[k]:.3f} {'COPY' if confirmed0[k] else 'no  '}  {a}  |  {b}{label}")
        # positives + negatives, growing
        for scale in args.scales:
            col = Collection()
            for i, (name, small, full) in enumerate(originals):
                col.add(small, i, name)
                for v in VARIANTS:
                    data = variant(full, v)
                    col.add(_from_bytes(data), i, f"{name}#{v}", data)
            n_real = len(col.name)
            for k in range((scale - 1) * len(originals)):
                src = int(rng.integers(len(originals)))
                img = synthetic(originals[src][1], rng)
                col.add(img, -1 - k, f"synthetic{k}<-{originals[src][0]}")
            cand, scores, confirmed = detect(col)
            conf = cand[confirmed]
            fam = np.array(col.family)
            base_name = [n.split("#")[0] for n in col.name]
            same = fam[conf[:, 0]] == fam[conf[:, 1]]
            labelled = np.array([frozenset((_short(col.name[a]), _short(col.name[b]))) in real for a, b in conf], dtype=bool)
            right = same | labelled
            is_pos = same & ((np.array(["#" not in col.name[a] for a in conf[:, 0]]))
                             | (np.array(["#" not in col.name[b] for b in conf[:, 1]])))
            tp = int(is_pos.sum())
            pos = len(originals) * len(VARIANTS)
            false = conf[~right]
            synth_src = [n.split("<-")[-1] for n in col.name]
            same_source = sum(1 for a, b in false if synth_src[a] == synth_src[b] or synth_src[a] == base_name[b]
                              or synth_src[b] == base_name[a])
            per_variant = {}
            for v_i, v in enumerate(VARIANTS):
                want = {(i * (len(VARIANTS) + 1), i * (len(VARIANTS) + 1) + 1 + v_i) for i in range(len(originals))}
                got = {(int(a), int(b)) for a, b in conf}
                per_variant[v] = len(want & got) / len(want)
            precision = right.sum() / max(1, len(conf))
            print(f"  {scale:>2}x: {len(col.name):,} photos ({len(col.name) - n_real:,} synthetic), candidates "
                  f"{len(cand):,}, confirmed {len(conf):,}; precision {precision:.4f}, recall {tp / pos:.4f} "
                  f"({', '.join(f'{v} {r:.3f}' for v, r in per_variant.items())}); false pairs {len(false)} "
                  f"(of which between crops of one source photo: {same_source})")
            for a, b in false[:5]:
                print(f"      false: {col.name[a]}  |  {col.name[b]}")
                _save_pair(col, a, b, f"{set_name}-{scale}x")
            if scale == 1:
                totals["tp"] += tp
                totals["pos"] += pos
                totals["conf"] += len(conf)
                totals["right"] += int(right.sum())
    print(f"\nall sets at 1x: precision {totals['right'] / max(1, totals['conf']):.4f}, "
          f"recall {totals['tp'] / max(1, totals['pos']):.4f} (bar 0.99 / 0.95); thresholds "
          f"{copies.CONFIRM_SIMILARITY} at {copies.THUMB} px, {copies.FINE_SIMILARITY} at {copies.FINE} px")


# ---------------------------------------------------------------- speed


def generate(out: Path, n: int, seed: int = 0) -> None:
    """n distinct <= 320 px JPEGs under out/<class>/ from the shared photos (kept between runs)."""
    have = sum(1 for _ in out.glob("*/*.jpg")) if out.is_dir() else 0
    if have >= n:
        return
    rng = np.random.default_rng(seed + have)
    sources = []
    for set_name in SETS:
        for path in sorted((SHARED / set_name).rglob("*")):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                img = Image.open(path)
                img.draft("RGB", (400, 400))
                img = img.convert("RGB")
                img.thumbnail((400, 400))
                sources.append((set_name, img))
    start = time.time()
    for k in range(have, n):
        set_name, img = sources[int(rng.integers(len(sources)))]
        shot = synthetic(img, rng)
        shot.thumbnail((320, 320))
        folder = out / f"{set_name}_{k % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        shot.save(folder / f"g{k:06d}.jpg", "JPEG", quality=85)
        if (k + 1) % 5000 == 0:
            print(f"  generated {k + 1:,} photos in {time.time() - start:.0f} s", flush=True)


def speed(args) -> None:
    out = Path(args.out)
    for n in sorted(args.sizes):
        generate(out, n)
        subset = out.parent / f"{out.name}-{n}"
        if not subset.is_dir():  # a folder of links to the first n photos
            for path in sorted(out.glob("*/*.jpg"))[:n]:
                (subset / path.parent.name).mkdir(parents=True, exist_ok=True)
                os.symlink(path, subset / path.parent.name / path.name)
        ws = Path(args.workspace) / f"n{n}"
        code = ("import resource, sys, time; from core.cli import main; t = time.time(); "
                f"rc = main(['data', 'check', {str(subset)!r}, '--workspace', {str(ws)!r}]); "
                "print(f'BENCH seconds={time.time() - t:.1f} peak_rss_mb='"
                "f'{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} modules_torch={\"torch\" in sys.modules}')")
        load = os.getloadavg()
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        tail = [line for line in proc.stdout.splitlines() if line.startswith("BENCH") or "error" in line][-3:]
        print(f"{n:,} photos (load {load[0]:.1f}): " + " ".join(tail), flush=True)
        if proc.returncode not in (0, 1):
            print(proc.stderr[-2000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    acc = sub.add_parser("accuracy")
    acc.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    acc.add_argument("--sets", nargs="+", default=list(SETS))
    acc.add_argument("--closest", type=int, default=8)
    spd = sub.add_parser("speed")
    spd.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    spd.add_argument("--out", default="/tmp/latih-copies-bench/photos")
    spd.add_argument("--workspace", default="/tmp/latih-copies-bench/ws")
    args = parser.parse_args()
    accuracy(args) if args.mode == "accuracy" else speed(args)


if __name__ == "__main__":
    main()
