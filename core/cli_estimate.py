"""`latih estimate PATH`: repeated cross-validation and a learning curve on frozen features,
and the strategy advice `latih train` uses when --strategy is not given."""
from __future__ import annotations

import json
import os
from core.i18n import Msg


def add_estimate(commands, common) -> None:
    estimate = commands.add_parser(
        "estimate", parents=[common], help="how good a model these photos can give (cross-validation with "
        "95%% intervals) and whether more photos would help (learning curve)")
    estimate.add_argument("path", help="folder of class folders (or train/ val/ test/ folders of them), or a .zip")
    estimate.add_argument("--groups", default="", metavar="SPEC",
                          help="photos that belong together stay in one fold: eye-pair, person, prefix, folder, "
                               "regex:EXPR or csv:FILE (columns file,group)")
    estimate.add_argument("--folds", type=int, default=5, help="folds per repeat (default 5)")
    estimate.add_argument("--repeats", type=int, default=3, help="repeats of the k-fold (default 3)")
    estimate.add_argument("--no-curve", action="store_true", help="skip the learning curve")
    estimate.add_argument("--backbone", default=None, help="pretrained model whose frozen features are used")
    estimate.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    estimate.add_argument("--strategy", choices=("fine-tune", "full", "two-stage"), default=None,
                          help="cross-validate by really training this strategy on every fold (one training "
                               "per fold; the cost is printed first) instead of the frozen-feature probe")
    estimate.add_argument("--epochs", type=int, default=None, help="with --strategy: epochs per fold training")
    estimate.add_argument("--image-size", type=int, default=None, help="with --strategy: input size in pixels")
    estimate.set_defaults(func=cmd_estimate)


def cmd_estimate(args) -> int:
    from core.config import DEFAULT_BACKBONE
    from core.errors import LatihError
    from core.estimate import estimate, summary_lines

    if not 2 <= args.folds <= 20 or not 1 <= args.repeats <= 20:
        raise LatihError(Msg("err.cli.folds"))
    if args.strategy:
        return _fine_tune_estimate(args)
    result = estimate(args.path, args.groups, args.backbone or DEFAULT_BACKBONE, args.folds, args.repeats,
                      curve=not args.no_curve, workspace=os.environ.get("LATIH_WORKSPACE"))
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print("\n".join(summary_lines(result)))
    return 0


def fine_tune_config(data_path: str, strategy: str, groups: str = "", backbone: str | None = None,
                     epochs: int | None = None, image_size: int | None = None):
    """The TrainConfig a fine-tuned cross-validation trains per fold (the advice's recipe for full)."""
    from core.advice import FINE_TUNE_RECIPE
    from core.config import DEFAULT_BACKBONE, TrainConfig

    recipe = dict(FINE_TUNE_RECIPE) if strategy == "full" else {"strategy": strategy, "epochs": 4}
    if epochs:
        recipe["epochs"] = epochs
    return TrainConfig(data_path, backbone=backbone or DEFAULT_BACKBONE, groups=groups, image_size=image_size, **recipe)


def _fine_tune_estimate(args) -> int:
    import sys

    from core.fine_tune_cv import cost, fine_tune_cv, plan
    from core.estimate import summary_lines

    config = fine_tune_config(args.path, args.strategy, args.groups, args.backbone, args.epochs, args.image_size)
    workspace = os.environ.get("LATIH_WORKSPACE")
    layout = plan(config, args.folds, args.repeats, workspace)
    price = cost(config, layout["n_photos"], layout["n_splits"], args.repeats)
    print(f"fine-tuned cross-validation ({config.strategy}, {config.epochs} epochs): {price['trainings']} trainings, "
          f"about {price['seconds'] / 60:.0f} min on this kind of machine", file=sys.stderr if args.json else sys.stdout,
          flush=True)
    result = fine_tune_cv(config, args.folds, args.repeats, workspace, progress=lambda done, total: print(
        f"fold {min(done + 1, total)} of {total}", file=sys.stderr, flush=True) if done < total else None)
    result["cost"] = price
    if result["cross_validation"] is None:
        print(f"stopped after {result['folds_done']} of {result['folds_total']} folds: no summary", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print("\n".join(summary_lines(result)))
    return 0


def wants_auto(args) -> bool:
    """`latih train` without --strategy (and none in --config), or with --strategy auto."""
    from pathlib import Path

    if getattr(args, "strategy", None) is not None:
        return args.strategy == "auto"
    return not (args.config and "strategy" in json.loads(Path(args.config).read_text(encoding="utf-8")))


def auto_strategy(config, explicit: dict | None = None, to_stderr: bool = False):
    """The config with the strategy the photos call for (core.advice); prints choice and reason
    (on stderr when stdout carries --json). Settings the user gave (explicit) win over the recipe."""
    import sys

    from core.advice import minutes, recommend_for_config

    advice = recommend_for_config(config, workspace=os.environ.get("LATIH_WORKSPACE"))
    if advice is None:  # the photos cannot be trained on: train() says why
        return config, None
    from core.i18n import tr

    print(tr("cli.auto_strategy", strategy=tr(f"strategy.{advice.strategy}"), code=advice.strategy,
             reason=advice.reason, time=minutes(advice.expected_seconds), probe=f"{advice.probe_accuracy * 100:.1f}",
             familiarity=f"{advice.familiarity * 100:.0f}"),
          file=sys.stderr if to_stderr else sys.stdout, flush=True)
    chosen = advice.apply(config).replace(**(explicit or {}))
    if not chosen.notes:
        chosen = chosen.replace(notes=tr("cli.auto_strategy_note", reason=advice.reason))
    return chosen, advice
