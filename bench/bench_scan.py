"""Scan speed: how long `core.data.scan.scan` takes on real photos, cold and with its cache.

Moved here from the test suite (speed is measured in bench/, never asserted in tests).
Prints photos, seconds and photos per second for each shared dataset, without and with the
scan cache. Usage: .venv/bin/python bench/bench_scan.py
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATASETS = ROOT.parent / "shared" / "datasets"


def main() -> None:
    with tempfile.TemporaryDirectory() as workspace:
        os.environ["LATIH_WORKSPACE"] = workspace
        from core.data.scan import scan

        print(f"{'dataset':30s} {'photos':>7s} {'cold s':>8s} {'photo/s':>8s} {'cached s':>9s}")
        for name in ("hymenoptera", "acrima_glaucoma", "plantvillage_potato_pepper"):
            folder = DATASETS / name
            if not folder.exists():
                print(f"{name:30s} missing")
                continue
            start = time.perf_counter()
            df = scan(folder, use_cache=False)
            cold = time.perf_counter() - start
            scan(folder)  # fills the cache
            start = time.perf_counter()
            scan(folder)
            cached = time.perf_counter() - start
            print(f"{name:30s} {len(df):7d} {cold:8.2f} {len(df) / cold:8.0f} {cached:9.3f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores; above 2 the figures are pessimistic)")


if __name__ == "__main__":
    main()
