"""Honest estimates on the shared photo sets (issue 8). Prints, for ../shared/datasets:

1. `latih train PATH` with no strategy flag on each set: the auto choice and its reason, the
   validation accuracy and the wall time (acrima and plantvillage: seeded 80/20 split;
   hymenoptera: its own val/ folder). --alternatives also trains the other strategy.
2. 5-fold x 3 cross-validation on plantvillage_potato_pepper with feature extraction (cached
   frozen features): the figures with 95% intervals and the wall time.
3. The learning curve on acrima_glaucoma, and how well the fit on the points up to 50%
   predicts the measured score at 100% (predicted vs measured).

    python bench/bench_estimates.py [--sets acrima hymenoptera plantvillage] [--skip-train]
                                    [--alternatives] [--workspace DIR]

Quote the machine load (`uptime`) with the times: they are printed at the start and end.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "datasets"
SETS = {"acrima": "acrima_glaucoma", "hymenoptera": "hymenoptera", "plantvillage": "plantvillage_potato_pepper"}


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def latih_train(path: Path, workspace: Path, *flags: str) -> tuple[dict, str, float]:
    env = {**os.environ, "LATIH_WORKSPACE": str(workspace), "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "core.cli", "train", str(path), "--json", *flags],
                          capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"latih train {path.name} failed ({done.returncode}): {done.stderr[-2000:]}")
    auto = [line for line in done.stderr.splitlines() if line.startswith("strategy (auto)")]
    return json.loads(done.stdout.strip().splitlines()[-1]), (auto[0] if auto else ""), wall


def part_train(names, workspace: Path, alternatives: bool) -> None:
    print("\n== 1. latih train PATH with no strategy flag ==")
    for name in names:
        path = DATA / SETS[name]
        print(f"\n-- {SETS[name]} (load {load()})")
        result, auto, wall = latih_train(path, workspace)
        print(auto)
        print(f"chosen {result['strategy']}: val accuracy {result['val_acc'] * 100:.1f}% "
              f"(best epoch {result['best_epoch']}), {wall:.0f} s including the probe; run {result['run_dir']}")
        if alternatives:
            other = ["--strategy", "feature-extraction"] if result["strategy"] != "feature-extraction" else \
                ["--strategy", "full", "--epochs", "4", "--lr", "1e-4", "--backbone-lr", "1e-4"]
            alt, _, alt_wall = latih_train(path, workspace, *other)
            print(f"alternative {' '.join(other[1:])}: val accuracy {alt['val_acc'] * 100:.1f}%, {alt_wall:.0f} s")


def part_cv(workspace: Path) -> None:
    from core.estimate import estimate, summary_lines

    print(f"\n== 2. 5-fold x 3 cross-validation, plantvillage_potato_pepper, frozen features (load {load()}) ==")
    started = time.perf_counter()
    result = estimate(str(DATA / SETS["plantvillage"]), curve=False, workspace=workspace)
    wall = time.perf_counter() - started
    print("\n".join(summary_lines(result)))
    print(f"wall time {wall:.1f} s (features {result['seconds']['features']:.1f} s, "
          f"15 folds {result['seconds']['cv']:.1f} s)")


def part_curve(workspace: Path) -> None:
    from core.estimate import estimate

    print(f"\n== 3. learning curve, acrima_glaucoma (load {load()}) ==")
    result = estimate(str(DATA / SETS["acrima"]), n_repeats=1, workspace=workspace)
    curve = result["learning_curve"]
    for p in curve["points"]:
        print(f"  {p['fraction'] * 100:>3.0f}% ({p['n_train']:.0f} photos): {p['accuracy'] * 100:.1f}% "
              f"(95% {p['low'] * 100:.1f} to {p['high'] * 100:.1f}; draws {[round(d * 100, 1) for d in p['draws']]})")
    if curve.get("fit"):
        print(f"  fit a - b*n^-c: a={curve['fit']['a']:.3f} b={curve['fit']['b']:.3f} c={curve['fit']['c']:.3f}")
    if curve.get("forecast"):
        print(f"  {curve['forecast']['sentence']}")
    check = result.get("forecast_check")
    if check:
        print(f"  fitted on {check['fit_on_fractions']}: predicted at 100% ({check['n_train_at_100']:.0f} photos) "
              f"{check['predicted'] * 100:.1f}% (95% {check['predicted_low'] * 100:.1f} to "
              f"{check['predicted_high'] * 100:.1f}); measured {check['measured'] * 100:.1f}% "
              f"({check['measured_low'] * 100:.1f} to {check['measured_high'] * 100:.1f}); "
              f"error {check['error_points']:+.1f} points")
    print(f"  took {result['seconds']['curve']:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--skip-train", action="store_true", help="only the estimates (parts 2 and 3)")
    parser.add_argument("--only-train", action="store_true", help="only part 1")
    parser.add_argument("--alternatives", action="store_true", help="also train the strategy not chosen")
    parser.add_argument("--workspace", type=Path, default=REPO / "workspace" / "bench-estimates")
    args = parser.parse_args()
    args.workspace.mkdir(parents=True, exist_ok=True)
    os.environ["LATIH_WORKSPACE"] = str(args.workspace)
    print(f"start {time.strftime('%H:%M:%S')}, load {load()}, {os.cpu_count()} CPUs")
    if not args.skip_train:
        part_train(args.sets, args.workspace, args.alternatives)
    if not args.only_train:
        part_cv(args.workspace)
        part_curve(args.workspace)
    print(f"\nend {time.strftime('%H:%M:%S')}, load {load()}")


if __name__ == "__main__":
    main()
