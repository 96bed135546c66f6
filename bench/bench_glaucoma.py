"""Issues 2 and 4 benchmark: a two-stage fine-tune on acrima_glaucoma (real fundus photos).

Prints val accuracy and ROC AUC (issue 2: seeded 80/20 split), and, with --test 0.2, the
held-out test ROC AUC with its bootstrap 95% interval, ECE before and after temperature
scaling, and the threshold chosen on val for 95% sensitivity with its test specificity.
Usage: .venv/bin/python bench/bench_glaucoma.py [--strategy two-stage] [--epochs 8] [--test 0.2]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from core.config import TrainConfig
from core.train import train

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "acrima_glaucoma"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--strategy", default="two-stage")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--head-epochs", type=int, default=3)
    parser.add_argument("--val", type=float, default=0.2)
    parser.add_argument("--test", type=float, default=0.0)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workspace", default=None, help="keep the run here (default: a temp folder)")
    args = parser.parse_args()
    config = TrainConfig(
        data_path=str(DATA), strategy=args.strategy, epochs=args.epochs, head_epochs=args.head_epochs,
        val_fraction=args.val, test_fraction=args.test, seed=args.seed, image_size=args.image_size,
        augment="fundus", positive_class="glaucoma", target_sensitivity=0.95,
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = train(config, workspace=args.workspace or tmp)
        evaluation = json.loads((result.run_dir / "evaluation.json").read_text())
        report(config, result, evaluation)


def report(config, result, ev: dict) -> None:
    m = result.metrics
    print(f"acrima_glaucoma, {config.backbone}, {config.strategy}, split val={config.val_fraction} "
          f"test={config.test_fraction}, seed {config.seed}: {result.wall_s:.0f} s, best epoch {result.best_epoch}")
    print(f"  val accuracy {m['val_acc']:.3f}, val macro-F1 {m['val_f1']:.3f}")
    print(f"  evaluated on: {ev['evaluated_on']} (sizes {ev['split_sizes']})")
    met, ci = ev["metrics"], ev.get("ci", {})
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc"):
        if key in met and met[key] is not None:
            lo, hi = ci.get(key, [float("nan")] * 2)
            print(f"  {key}: {met[key]:.3f} (95% CI {lo:.3f}-{hi:.3f})")
    cal = ev.get("calibration", {})
    if cal:
        print(f"  temperature {cal.get('temperature')}: ECE {cal.get('ece_before'):.3f} -> {cal.get('ece_after'):.3f}")
    scr = ev.get("screening")
    if scr:
        print("  screening:", json.dumps({k: v for k, v in scr.items() if not isinstance(v, (list, dict))}))
        for key in ("val", "test", "evaluated"):
            if isinstance(scr.get(key), dict):
                print(f"    {key}:", json.dumps(scr[key]))


if __name__ == "__main__":
    main()
