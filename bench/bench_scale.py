"""Issue 12 benchmark: large photo sets in bounded memory (10,000 and 50,000 photos).

Generates N distinct photos from the shared sets (bench_duplicates.generate: random 35-60%
crops, turns, flips and colour changes; <= 320 px JPEGs; one process) into a temporary folder,
then runs each step as its own child process, so each step's peak memory (ru_maxrss of that
process, from wait4) is its own:
  scan + check   core scan (sha1, sizes, pHash) and the full data check (copies included)
  cache build    every photo decoded once into the decoded-photo cache (core/data/cache.py)
  features       one epoch of frozen-feature extraction (Lite0, 224 px) over the photos; with
                 --feature-photos K only the first K photos are run and the epoch time for N is
                 EXTRAPOLATED from their rate (printed as such): on a 2-core CPU a full epoch
                 over 50,000 photos takes over an hour.
Bar (issue 12): peak memory < 2 GB at 50,000, time growing near-linearly with N.
Measured 2026-12-03, 2-core CPU, quiet machine (load 0.3-1.1), --feature-photos 1000:
               10,000 photos             50,000 photos
  scan+check    18.5 s, peak 468 MB       87.2 s, peak 973 MB   (4.7x the time for 5x the photos)
  cache build   45.8 s, peak 706 MB      180.8 s, peak 753 MB   (3.9x)
  features      49.9 s / 1,000 photos    46.1 s / 1,000 photos  (peak 1,659 / 1,648 MB)
  largest peak of any step: 1,659 MB (< 2,048 MB)
  .venv/bin/python bench/bench_scale.py --sizes 10000 50000 [--feature-photos 1000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GENERATE = """
import sys, time
from pathlib import Path
sys.path.insert(0, "bench")
from bench_duplicates import generate
t = time.perf_counter()
generate(Path(sys.argv[1]), int(sys.argv[2]))
print(f"RESULT seconds={time.perf_counter() - t:.1f} photos={sys.argv[2]}")
"""

SCAN = """
import sys, time
try:
    from core.data.scan import scan
except ImportError:  # before the ingest module was cut
    from core.data.ingest import scan
from core.data.validate import check_dataset
t = time.perf_counter()
df = scan(sys.argv[1], workspace=sys.argv[2])
findings = check_dataset(df)
print(f"RESULT seconds={time.perf_counter() - t:.1f} photos={len(df)} findings={len(findings)}")
"""

CACHE = """
import sys, time, math
try:
    from core.data.scan import scan
except ImportError:  # before the ingest module was cut
    from core.data.ingest import scan
from core.data.cache import ImageCache
df = scan(sys.argv[1], workspace=sys.argv[2])  # from the scan's own cache: fast
cache = ImageCache(sys.argv[2] + "/cache/images", math.ceil(224 / 0.875))
t = time.perf_counter()
for path, sha1 in zip(df["path"], df["sha1"]):   # one photo at a time: nothing kept in memory
    cache.get(path, sha1)
print(f"RESULT seconds={time.perf_counter() - t:.1f} photos={len(df)}")
"""

FEATURES = """
import sys, time, math
try:
    from core.data.scan import scan
except ImportError:  # before the ingest module was cut
    from core.data.ingest import scan
from core.data.cache import ImageCache
from core.features import frozen_features
df = scan(sys.argv[1], workspace=sys.argv[2])
limit = int(sys.argv[3])
part = df.head(limit) if limit else df
t = time.perf_counter()
frozen_features(part, "tf_efficientnet_lite0", sys.argv[2])
print(f"RESULT seconds={time.perf_counter() - t:.1f} photos={len(part)}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--feature-photos", type=int, default=1000,
                        help="photos to extract features from (0 = all of them; the time for N is extrapolated)")
    parser.add_argument("--keep", type=Path, help="generate the photos here and keep them (default: a temp folder)")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="latih-scale-"))
    try:
        rows = []
        for n in sorted(args.sizes):
            photos = base / "photos"  # grows: the 50,000 are the 10,000 and 40,000 more
            # in a child too: the generator holds ~1 GB of source photos, and a child forked from a
            # big parent would inherit that high-water mark in its own ru_maxrss
            made = _measured(GENERATE, str(photos), str(n))
            print(f"{n:,} photos generated in {float(made['seconds']):.0f} s (load {os.getloadavg()[0]:.1f})",
                  flush=True)
            ws = base / f"ws-{n}"
            row = {"n": n, "load": os.getloadavg()[0]}
            for name, code, extra in (("scan+check", SCAN, ()), ("cache build", CACHE, ()),
                                      ("features", FEATURES, (str(args.feature_photos),))):
                child = _measured(code, str(photos), str(ws), *extra)
                row[name] = child
                seconds, done = float(child["seconds"]), int(child["photos"])
                note = ""
                if name == "features" and done < n:
                    note = f" on {done:,} photos; one epoch over {n:,} EXTRAPOLATED: {seconds * n / done:.0f} s"
                print(f"  {name:12s} {seconds:8.1f} s{note}, peak {child['peak_mb']:.0f} MB", flush=True)
            rows.append(row)
            shutil.rmtree(ws / "cache" / "images", ignore_errors=True)  # gigabytes of arrays at 50,000
        if len(rows) > 1:
            a, b = rows[0], rows[-1]
            for name in ("scan+check", "cache build"):
                growth = float(b[name]["seconds"]) / max(float(a[name]["seconds"]), 1e-9)
                print(f"{name}: {growth:.1f}x the time for {b['n'] / a['n']:.1f}x the photos")
        worst = max(child["peak_mb"] for row in rows for key, child in row.items() if isinstance(child, dict))
        print(f"largest peak of any step: {worst:.0f} MB (bar: < 2048 MB at 50,000)")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


def _measured(code: str, *args: str) -> dict:
    """run_step with that child's own peak RSS (wait4 gives each child's rusage)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:  # a file, so a chatty child never stalls on a full pipe
        proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=errors, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        out = proc.stdout.read()  # to the end, then reap the child ourselves: wait4 gives its rusage
        _, status, usage = os.wait4(proc.pid, 0)
        errors.seek(0)
        err = errors.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = {"wall_s": time.perf_counter() - started, "peak_mb": usage.ru_maxrss / 1024}
    for line in out.splitlines():
        if line.startswith("RESULT"):
            result.update(dict(field.split("=", 1) for field in line.split()[1:]))
    if "seconds" not in result:
        raise SystemExit(f"step failed (exit {proc.returncode}): {err[-2000:]}")
    return result


if __name__ == "__main__":
    main()
