"""The Model page's time estimate against the measured wall time of real trainings (issue 11).

For hymenoptera and acrima_glaucoma (../shared/datasets), in a fresh workspace:
  1. measure this machine's speed (core.machine_speed, what the Model page's button starts),
     again before each training, as a person would just before training;
  2. for feature extraction (the default 15 epochs) and full fine-tuning (2 epochs, to keep
     it short), print core.time_estimate.estimate(config, photos): the function the Model
     page calls, with what the caches hold at that moment;
  3. train that config for real (core.train.train, as the background job does) and print the
     measured wall time, the ratio estimate / measured and whether it is within 30%.

    python bench/bench_estimates_time.py [--sets hymenoptera acrima] [--full-epochs 2] [--workspace DIR]

The machine load (`uptime`) is printed with every figure: quote it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "datasets"
SETS = {"hymenoptera": "hymenoptera", "acrima": "acrima_glaucoma"}
BAR = 0.30


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def fmt(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--full-epochs", type=int, default=2)
    parser.add_argument("--workspace", default=None, help="default: a fresh temporary folder, removed at the end")
    args = parser.parse_args()

    from core.config import TrainConfig
    from core.data.scan import scan
    from core.machine_speed import measure
    from core.time_estimate import FEATURE_BATCH, estimate
    from core.train import train

    workspace = Path(args.workspace or tempfile.mkdtemp(prefix="latih-bench-time-"))
    print(f"workspace {workspace}; load at start {load()}")
    rows = []

    def measure_now(strategy: str) -> None:
        """What the Model page's "Measure this computer's speed" does, just before training (the
        train mode only for fine-tuning: on a busy 2-core box one batch of it takes a minute)."""
        started = time.perf_counter()
        modes = [("forward", 32), ("forward", FEATURE_BATCH)] + ([("train", 32)] if strategy != "feature-extraction" else [])
        for mode, batch in modes:
            speed = measure("tf_efficientnet_lite0", None, batch, mode, workspace=workspace)
            print(f"machine speed: {mode:7s} batch {batch}: {speed.images_per_s:6.1f} images/s "
                  f"(model built in {speed.model_s:.1f} s, weights saved in {speed.save_s:.2f} s, "
                  f"peak {speed.peak_mem_mb:.0f} MB; load {speed.load})")
        print(f"measuring took {time.perf_counter() - started:.0f} s")

    try:
        frames = {name: scan(DATA / SETS[name], workspace=workspace) for name in args.sets}
        # the short feature-extraction runs first, so that their figures are in even when a busy
        # machine makes the fine-tunes run long
        for strategy, epochs in (("feature-extraction", 15), ("full", args.full_epochs)):
            for name in args.sets:
                path, df = DATA / SETS[name], frames[name]
                config = TrainConfig(data_path=str(path), strategy=strategy, epochs=epochs,
                                     early_stopping_patience=0, run_name=f"bench-time-{name}")
                measure_now(strategy)
                guess = estimate(config, df, workspace)
                print(f"\n{name} {strategy} ({epochs} epochs): estimate {fmt(guess.seconds)} "
                      f"(measured speed: {guess.measured}; parts {guess.parts}; speeds used {guess.images_per_s}); load {load()}")
                result = train(config, workspace=workspace)
                ratio = guess.seconds / result.wall_s
                ok = abs(ratio - 1) <= BAR
                print(f"{name} {strategy}: measured {fmt(result.wall_s)} ({result.wall_s:.1f} s), estimate "
                      f"{guess.seconds:.1f} s, ratio {ratio:.2f} -> {'within' if ok else 'OUTSIDE'} 30%; "
                      f"val acc {result.metrics.get('val_acc', float('nan')):.3f}; load {load()}")
                rows.append((name, strategy, epochs, guess.seconds, result.wall_s, ratio, ok))
    finally:
        if args.workspace is None:
            shutil.rmtree(workspace, ignore_errors=True)
    print("\nset          strategy            epochs  estimate   measured  ratio  within 30%")
    for name, strategy, epochs, guess, wall, ratio, ok in rows:
        print(f"{name:12s} {strategy:19s} {epochs:6d} {guess:8.1f} s {wall:8.1f} s  {ratio:5.2f}  {'yes' if ok else 'NO'}")
    print(f"load at end {load()}")
    return 0 if rows and all(r[-1] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
