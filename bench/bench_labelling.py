"""Does "label these next" need fewer labels than labelling in random order?

For each shared dataset: a fixed held-out evaluation set (hymenoptera: its val/ folder; the
others: a stratified 30% drawn once with seed 0), the rest is the unlabelled pool. Labels are
revealed in rounds of `batch` photos, either in the order `core.active.next_order` asks for
(from an empty start: diversity weighted by how typical a photo is, until every class has a
few labels, then alternately the most uncertain photo and a coverage pick) or in random order (several seeds,
curves averaged; the suggested order is deterministic given the pool, so one curve). After each round the same head
as the app's (`core.active.fit_head`) is fitted on the labels so far and scored on the held-out
set. Features are the frozen backbone's, computed once and cached (`core.active.photo_features`).

Prints both learning curves and, per dataset, how many labels the suggested order needs to
reach the random order's final accuracy (its mean over seeds with all pool labels), measured on
the mean curves, as a share of the pool. Bar: <= 60% on at least two of the three sets.

    .venv/bin/python bench/bench_labelling.py [--sets hymenoptera acrima plantvillage] [--seeds 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "datasets"
SETS = {"hymenoptera": "hymenoptera", "acrima": "acrima_glaucoma", "plantvillage": "plantvillage_potato_pepper"}


def load(name: str):
    from core import active
    from core.data.scan import scan

    df = scan(SHARED / SETS[name])
    df = df[df["readable"]].drop_duplicates("sha1").reset_index(drop=True)
    started = time.time()
    x = active.photo_features(df)
    print(f"{name}: {len(df)} photos, features {x.shape} in {time.time() - started:.1f} s", flush=True)
    y = df["label"].to_numpy()
    if (df["split"] == "val").any():
        held = (df["split"] == "val").to_numpy()
    else:
        from sklearn.model_selection import train_test_split

        idx = np.arange(len(df))
        _, test_idx = train_test_split(idx, test_size=0.3, stratify=y, random_state=0)
        held = np.zeros(len(df), bool)
        held[test_idx] = True
    return x[~held], y[~held], x[held], y[held]


def score(x_lab, y_lab, x_test, y_test) -> float:
    from core import active

    if not active.can_train(y_lab):
        return float("nan")
    return float((active.fit_head(x_lab, y_lab).predict(x_test) == y_test).mean())


def simulate(x, y, x_test, y_test, batch: int, order: str, seed: int = 0) -> list[tuple[int, float]]:
    """One learning curve: labels revealed `batch` at a time in random order (shuffled by `seed`)
    or in the order `core.active.next_order` asks for, exactly as the Label page computes it
    (the plain head's probabilities once `can_train`, else None); that order has no randomness,
    so its curve is the same for every seed."""
    from core import active

    n = len(y)
    labelled: list[int] = []
    random_order = list(np.random.default_rng(seed).permutation(n))
    curve = []
    while len(labelled) < n:
        if order == "random":
            picks = random_order[len(labelled):len(labelled) + batch]
        else:
            free = np.setdiff1d(np.arange(n), labelled)
            y_lab = y[labelled]
            probs = active.suggest(x[labelled], y_lab, x[free], calibrated=False) if active.can_train(y_lab) else None
            ranked = active.next_order(probs, x[free], x[labelled], greedy=batch)
            picks = [int(free[i]) for i in ranked[:batch]]
        labelled.extend(picks)
        curve.append((len(labelled), score(x[labelled], y[labelled], x_test, y_test)))
    return curve


def mean_curve(curves: list[list[tuple[int, float]]]) -> tuple[list[int], np.ndarray]:
    return [n for n, _ in curves[0]], np.nanmean(np.array([[a for _, a in c] for c in curves], dtype=float), axis=0)


def reach(ns: list[int], accuracy: np.ndarray, target: float) -> int | None:
    """The first number of labels at which `accuracy` is at or above `target`."""
    return next((n for n, a in zip(ns, accuracy) if a >= target - 1e-9), None)


def bulk_accept(x, y, per_class: int = 8, threshold: float = 0.9, seeds: int = 5,
                calibrated: bool = True) -> tuple[float, float, int]:
    """(precision, share of the rest accepted, photos accepted) of "accept all suggestions >=
    threshold" after `per_class` random labels per class, pooled over `seeds` draws."""
    from core import active

    right, accepted, rest_total = 0, 0, 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        labelled = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                                   for c in np.unique(y)])
        rest = np.setdiff1d(np.arange(len(y)), labelled)
        probs = active.suggest(x[labelled], y[labelled], x[rest], seed=seed, calibrated=calibrated)
        classes = np.unique(y[labelled])
        sure = probs.max(axis=1) >= threshold
        right += int((classes[probs.argmax(axis=1)][sure] == y[rest][sure]).sum())
        accepted += int(sure.sum())
        rest_total += len(rest)
    return (right / accepted if accepted else float("nan")), accepted / rest_total, accepted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seeds", type=int, default=5, help="random orders averaged")
    parser.add_argument("--rounds", type=int, default=40, help="rounds of labels over the whole pool")
    parser.add_argument("--bar", type=float, default=0.60)
    parser.add_argument("--accept-only", action="store_true", help="only the bulk-accept precision")
    args = parser.parse_args()
    os.environ.setdefault("LATIH_WORKSPACE", str(ROOT / "workspace"))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # as core.active.refresh: small fits, no thread spin
        return _run(args)


def _run(args) -> int:
    passed = 0
    for name in args.sets:
        x, y, x_test, y_test = load(name)
        for calibrated in (False, True):
            precision, coverage, accepted = bulk_accept(x, y, calibrated=calibrated)
            print(f"{name}: after 8 random labels per class, 'accept all >= 90%' "
                  f"({'calibrated' if calibrated else 'plain head'}) takes {coverage:.0%} of the rest "
                  f"({accepted} photos over 5 draws) with precision {precision:.1%}", flush=True)
        if args.accept_only:
            continue
        batch = max(4, int(np.ceil(len(y) / args.rounds)))
        started = time.time()
        ns, suggested = mean_curve([simulate(x, y, x_test, y_test, batch, "suggested")])
        _, random_mean = mean_curve([simulate(x, y, x_test, y_test, batch, "random", s) for s in range(args.seeds)])
        # The bar's target: the random order's mean accuracy with every pool photo labelled.
        final = float(random_mean[-1])
        hit = reach(ns, suggested, final)
        share = hit / len(y) if hit else float("nan")
        ok = hit is not None and share <= args.bar
        passed += ok
        own = reach(ns, random_mean, final)
        # Reported beside the bar, not instead of it: the 100% point is one model (every seed
        # labels the same full pool), which on these sets sits above the random order's own mean
        # curve until the very end; the random order's mean accuracy at 90% of the pool is a
        # target both curves can reach before the last label.
        at90 = float(random_mean[int(np.argmin([abs(n / len(y) - 0.9) for n in ns]))])
        hit90 = reach(ns, suggested, at90)
        print(f"\n{name}: pool {len(y)}, held-out {len(y_test)}, {batch} labels a round, "
              f"random: mean of {args.seeds} seeds, {time.time() - started:.0f} s")
        print(f"{'labels':>7} {'share':>6} {'suggested':>10} {'random':>8}")
        for n, a, r in zip(ns, suggested, random_mean):
            print(f"{n:7d} {n / len(y):6.0%} {a:10.3f} {r:8.3f}")
        print(f"{name}: random order's final accuracy {final:.3f} (random itself first reaches it at "
              f"{own / len(y):.0%}); the suggested order reaches it with {hit} labels ({share:.0%} of the pool) "
              f"-> {'PASS' if ok else 'FAIL'} (bar {args.bar:.0%}); best suggested {np.nanmax(suggested):.3f} "
              f"at {ns[int(np.nanargmax(suggested))] / len(y):.0%}", flush=True)
        print(f"{name}: beside the bar: the random order's mean accuracy at 90% of the pool is {at90:.3f}; the "
              f"suggested order reaches it with {hit90} labels ({hit90 / len(y):.0%})" if hit90 else
              f"{name}: beside the bar: the suggested order never reaches the random order's 90% accuracy "
              f"{at90:.3f}", flush=True)
    if args.accept_only:
        return 0
    print(f"\n{passed} of {len(args.sets)} sets reach it with <= {args.bar:.0%} of the labels "
          f"({'bar met' if passed >= 2 else 'bar NOT met'}: needs 2 of 3)")
    return 0 if passed >= 2 else 1

if __name__ == "__main__":
    sys.exit(main())
