"""`latih train`, `latih resume RUN`, `latih repeat RUN`: training from the command line, in the
same queue as the app (one training at a time per workspace)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from core.cli_common import EXIT_FINDINGS, EXIT_INTERRUPTED, EXIT_OK, print_json
from core.i18n import Msg


def add_train(commands, common) -> None:
    from core.config import AUGMENT_PRESETS, FINETUNE_SCHEDULES, IMBALANCE_MODES, MONITOR_METRICS, STRATEGIES

    train = commands.add_parser("train", parents=[common], help="train a classifier on a folder of photos",
                                description="Train a classifier. Unset options use the defaults (or the "
                                            "values in --config).")
    train.add_argument("path", help="folder of class folders (or train/ val/ test/ folders of them), or a .zip")
    add = train.add_argument
    add("--backbone", help="pretrained model to start from (default tf_efficientnet_lite0, works offline)")
    add("--strategy", choices=(*STRATEGIES, "auto"), help="how much of the model learns: auto (default: picked "
        "from the photos, the choice and its reason are printed), feature-extraction (only a new "
        "last layer; fast, best under ~300 photos), fine-tune (the last blocks), full (everything), "
        "two-stage (last layer first, then everything gently)")
    add("--groups", help="photos that belong together stay in one split: eye-pair, person, prefix, folder, "
        "regex:EXPR or csv:FILE (columns file,group)")
    add("--resplit", action="store_true", default=None, help="ignore the dataset's own train/val/test folders "
        "and split again (by group)")
    add("--epochs", type=int, help="passes over the training photos (default 15)")
    add("--head-epochs", type=int, help="two-stage and gradual: epochs on the last layer before unfreezing "
        "(gradual: also on the last blocks before unfreezing all; default 3)")
    add("--unfreeze-blocks", type=int, help="fine-tune: how many of the last blocks learn (default 2)")
    add("--lr", type=float, help="learning rate of the new last layer (default 0.001)")
    add("--backbone-lr", type=float, help="learning rate of the pretrained layers that learn "
        "(default depends on the strategy; smaller than --lr)")
    add("--batch-size", type=int, help="photos per training step (default 32; lower it if memory runs out)")
    add("--image-size", type=int, help="side in pixels the photos are resized to (default: the model's own)")
    add("--augment", choices=AUGMENT_PRESETS, help="random changes applied to training photos so the model "
        "generalises (default light; fundus/leaf are tuned for those photos)")
    add("--seed", type=int, help="random seed: the same seed and settings give the same result (default 0)")
    add("--val-fraction", type=float, help="share of photos held out to pick the best epoch (default 0.2; "
        "ignored when the dataset has a val/ folder)")
    add("--test-fraction", type=float, help="share of photos held out for the final, untouched test "
        "(default 0)")
    add("--weights", help="'pretrained' (default), 'scratch' (random start, needs far more photos) or a "
        "path to a .safetensors/.pth file")
    add("--positive-class", help="screening: the class that must not be missed (a threshold is chosen for it)")
    add("--target-sensitivity", type=float, help="screening: share of positive photos to catch (default 0.95)")
    add("--patience", type=int, help="stop after this many epochs without improvement (default 5, 0 = never)")
    add("--monitor", choices=MONITOR_METRICS, help="validation number that picks the best epoch (default val_loss)")
    add("--imbalance", choices=IMBALANCE_MODES, help="when classes have very different counts: class-weights "
        "or balanced-sampler (default none)")
    add("--label-smoothing", type=float, help="soften the training targets a little, e.g. 0.1 (default 0)")
    add("--finetune-schedule", choices=FINETUNE_SCHEDULES, help="how the fine-tuning learning rate moves: "
        "flat-cosine (default: held, then lowered over the last quarter) or cosine (lowered from the start)")
    add("--device", choices=("auto", "cpu", "cuda", "mps"), help="processor to train on (default auto)")
    add("--precision", choices=("auto", "fp32", "bf16", "fp16"), help="number format of fine-tuning (default "
        "auto: bf16/channels_last only where measured to help on this processor and model; fp16 needs CUDA)")
    add("--compile", action="store_true", default=None, help="torch.compile the model before fine-tuning "
        "(CUDA only; pays off only for long runs)")
    add("--workers", dest="num_workers", type=int, help="photo-loading processes (default auto: none on the CPU, "
        "up to 8 on a GPU machine)")
    add("--name", dest="run_name", help="short name for the run folder (default: the dataset folder's name)")
    add("--config", metavar="CONFIG.json", help="start from the settings in this file (e.g. a run's "
        "config.json); options given here override it")
    add("--exclude", metavar="LIST.txt", help="leave out the photos listed in this file (one path a line, "
        "absolute or relative to PATH; or a pairs CSV with a leave_out column); saved in the run's config")
    add("--json", action="store_true", help="print one JSON object with the result on stdout")
    train.set_defaults(func=cmd_train)


# flag dest -> TrainConfig field (when the names differ)
_FLAG_TO_FIELD = {"patience": "early_stopping_patience"}
_TRAIN_FLAGS = ("backbone", "strategy", "epochs", "head_epochs", "unfreeze_blocks", "lr", "backbone_lr", "batch_size", "image_size",
                "augment", "seed", "val_fraction", "test_fraction", "weights", "positive_class",
                "target_sensitivity", "patience", "monitor", "imbalance", "label_smoothing", "finetune_schedule", "device", "run_name",
                "groups", "resplit", "precision", "compile", "num_workers")

def add_repeat(commands, common) -> None:
    repeat = commands.add_parser("repeat", parents=[common], help="train again from a run's saved settings")
    repeat.add_argument("run", help="run folder or run id (see `latih runs`)")
    repeat.add_argument("--json", action="store_true", help="print one JSON object with the result on stdout")
    repeat.set_defaults(func=cmd_repeat)


def add_resume(commands, common) -> None:
    resume = commands.add_parser("resume", parents=[common],
                                 help="continue a run that stopped or failed, from the end of its last epoch")
    resume.add_argument("run", help="run folder or run id (see `latih runs`)")
    resume.add_argument("--json", action="store_true", help="print one JSON object with the result on stdout")
    resume.set_defaults(func=cmd_resume)


def config_from_args(args):
    from core.config import TrainConfig

    base = TrainConfig.from_json(_existing_file(args.config, Msg("err.cli.config_file"))).to_dict() if args.config else {}
    base["data_path"] = str(Path(args.path).expanduser().resolve())
    if getattr(args, "exclude", None):
        from core.data.exclude import read_list

        base["exclude"] = list(read_list(args.exclude, base["data_path"]))
    for flag in _TRAIN_FLAGS:
        value = getattr(args, flag, None)
        if flag == "strategy" and value == "auto":
            continue
        if value is not None:
            base[_FLAG_TO_FIELD.get(flag, flag)] = value
    return TrainConfig.from_dict(base)


def _existing_file(path: str, what) -> str:
    from core.errors import LatihError

    if not Path(path).is_file():
        raise LatihError(Msg("err.cli.file_missing", what=what, path=path))
    return path


def _say_waiting(position: int) -> None:
    from core.i18n import tr

    print(tr("cli.train.waiting", position=position), file=sys.stderr, flush=True)


def cmd_train(args) -> int:
    from core.callbacks import ProgressBar
    from core.queue_entry import train_in_queue

    from core.cli_estimate import auto_strategy, wants_auto

    config = config_from_args(args)
    if wants_auto(args):
        explicit = {_FLAG_TO_FIELD.get(f, f): getattr(args, f) for f in _TRAIN_FLAGS
                    if getattr(args, f, None) is not None and f != "strategy"}
        config, _ = auto_strategy(config, explicit, to_stderr=args.json)
    # The same queue as the app: one training at a time per workspace, in order.
    result = train_in_queue(config, os.environ.get("LATIH_WORKSPACE"), callbacks=[ProgressBar()],
                            on_wait=_say_waiting)
    return _report_result(result, config, args.json)


def cmd_resume(args) -> int:
    from core.callbacks import ProgressBar
    from core.queue_entry import train_in_queue
    from core.runs import load_run

    run = load_run(args.run)
    result = train_in_queue(None, run.run_dir.parent.parent, callbacks=[ProgressBar()], on_wait=_say_waiting,
                            resume_run=run.run_dir)
    return _report_result(result, run.config, args.json)


def cmd_repeat(args) -> int:
    from core.callbacks import ProgressBar
    from core.runs import load_run
    from core.train import repeat_run

    run = load_run(args.run)
    result = repeat_run(run.run_dir, callbacks=[ProgressBar()])
    return _report_result(result, run.config, args.json)


def _report_result(result, config, as_json: bool) -> int:
    m = result.metrics
    summary = {"run_dir": str(result.run_dir), "status": result.status, "backbone": config.backbone,
               "strategy": config.strategy, "best_epoch": result.best_epoch, "val_acc": m.get("val_acc"),
               "val_f1": m.get("val_f1"), "wall_s": round(result.wall_s, 2), "classes": result.class_names}
    if m.get("evaluated_on") == "test":
        summary.update(test_acc=m.get("test_accuracy"), test_f1=m.get("test_macro_f1"))
    if as_json:
        print_json(summary)
    else:
        _print_summary(summary, result.message)
    if result.status == "stopped":
        return EXIT_INTERRUPTED if "interrupted" in result.message else EXIT_FINDINGS
    return EXIT_OK


def _print_summary(summary: dict, message: str) -> None:
    """The result in the process's language (LATIH_LANG); `status` words are the run states."""
    from core.i18n import render, tr
    from core.runs import state_word

    status = render(state_word(summary["status"]))
    if summary["best_epoch"] is None:
        print(tr("cli.train.no_epoch", status=status, message=message, run_dir=summary["run_dir"]))
        return
    line = tr("cli.train.summary", status=status, seconds=f"{summary['wall_s']:.1f}", epoch=summary["best_epoch"],
              acc=f"{summary['val_acc']:.3f}", f1=f"{summary['val_f1']:.3f}")
    if "test_acc" in summary and summary["test_acc"] is not None:
        line += tr("cli.train.summary_test", acc=f"{summary['test_acc']:.3f}", f1=f"{summary['test_f1']:.3f}")
    print(line)
    print(tr("cli.train.run_folder", run_dir=summary["run_dir"]))

