"""Issue 2 benchmark: the whole `latih train` command on hymenoptera, feature extraction.

Prints wall seconds of the full command (Python start and model loading included), val
accuracy on the set's own val/, and the ratio to the tutorial-style loop (106 s, 96.7%).
Usage: .venv/bin/python bench/bench_hymenoptera.py [--cold]   (--cold: empty workspace, no caches)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "hymenoptera"
TUTORIAL_SECONDS, TUTORIAL_ACC = 106.0, 0.967


def run_once(workspace: Path) -> dict:
    cmd = [str(ROOT / ".venv" / "bin" / "latih"), "--workspace", str(workspace), "train", str(DATA),
           "--strategy", "feature-extraction", "--json"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"latih train failed ({done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    result["command_wall_s"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2, help="runs; the first is cold, later ones reuse caches")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            r = run_once(Path(tmp))
            label = "cold (empty workspace)" if i == 0 else "warm (decoded-photo and feature caches)"
            print(f"run {i + 1} {label}: command {r['command_wall_s']:.1f} s, val accuracy {r['val_acc']:.3f}, "
                  f"val macro-F1 {r['val_f1']:.3f}, best epoch {r['best_epoch']}")
            print(f"  vs tutorial loop ({TUTORIAL_SECONDS:.0f} s, {TUTORIAL_ACC:.1%}): "
                  f"{TUTORIAL_SECONDS / r['command_wall_s']:.1f}x faster, accuracy {r['val_acc'] - TUTORIAL_ACC:+.3f}")
    print(f"cpu threads: {os.cpu_count()}")


if __name__ == "__main__":
    main()
