"""`latih`: the command line over the same engine as the app.

    latih data check PATH            what is in a dataset and what is wrong with it
                                     (--pairs out.csv: the confirmed copy pairs, for review)
    latih train PATH [options]       train a classifier, leaving a run folder
    latih predict RUN PHOTOS...      label new photos with a trained run
    latih runs                       list the runs of the workspace
    latih repeat RUN                 train again from a run's saved settings
    latih resume RUN                 continue a run that stopped, from its last epoch
    latih threshold RUN [VALUE]      show or move a screening run's threshold
    latih serve [--lan]              start the app (--lan: field mode for phones, HTTPS + password)
    latih export RUN                 (when core.export is installed)

Bad input ends with ONE line `error: <what to do>` and exit status 2; never a traceback.
An unexpected failure is a bug: its traceback goes to <workspace>/logs/latih.log and the
one line says so (exit 1). Heavy libraries (torch, timm) are imported only by the commands
that need them, so `latih --help` and `latih runs` start quickly.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("latih")

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one `error:` line (exit 2) instead of a usage dump."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


# ---------------------------------------------------------------------------------------
# the parser
# ---------------------------------------------------------------------------------------
def _common_flags() -> argparse.ArgumentParser:
    # default=SUPPRESS so the flags work before or after the command without overwriting each other
    common = argparse.ArgumentParser(add_help=False)
    from core.workspace import describe_default

    common.add_argument("--workspace", default=argparse.SUPPRESS, metavar="FOLDER",
                        help="where runs, caches and extracted datasets are kept (default: "
                             f"{describe_default()}); it is marked with a .latih-workspace file and never "
                             "scanned as photos")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show what is happening in detail (log messages on the terminal)")
    return common


def build_parser(argv: list[str] | None = None) -> Parser:
    common = _common_flags()
    parser = Parser(prog="latih", parents=[common],
                    description="Train and use image classifiers from folders of labelled photos, offline.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    _add_data(commands, common)
    _add_train(commands, common)
    _add_predict(commands, common)
    _add_runs(commands, common)
    _add_repeat(commands, common)
    _add_resume(commands, common)
    from core.cli_threshold import register_threshold_command  # argparse only: cheap
    register_threshold_command(commands, [common])
    from core.cli_estimate import add_estimate

    add_estimate(commands, common)
    from core.cli_serve import add_serve_command

    add_serve_command(commands, common)
    if argv is None or _mentions_export(argv):
        _add_export(commands)
    return parser


def _mentions_export(argv: list[str]) -> bool:
    """core.export imports torch, ONNX and the evaluation stack (~5 s on a small laptop), so it
    is registered only when the command line can involve it: `export`, help, or nothing."""
    return not argv or any(arg in ("export", "-h", "--help") for arg in argv)


def _add_data(commands, common) -> None:
    data = commands.add_parser("data", parents=[common], help="look at a dataset before training")
    actions = data.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    actions.required = True
    check = actions.add_parser("check", parents=[common],
                               help="count the photos per class and split and list problems to fix")
    check.add_argument("path", help="folder of class folders (or train/ val/ test/ folders of them), or a .zip")
    check.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    check.add_argument("--pairs", metavar="OUT.csv", help="save every confirmed copy pair (file_a, file_b, their "
                       "classes and splits, similarity, kind: identical or near) to this CSV for review")
    check.add_argument("--exclude", metavar="LIST.txt", help="leave out the photos listed in this file (one path a "
                       "line, or a pairs CSV with a leave_out column) before checking")
    check.add_argument("--groups", metavar="SPEC", help="also check that no group of photos (eye-pair, person, "
                       "prefix, folder, regex:EXPR, csv:FILE) spans two of the dataset's splits")
    check.set_defaults(func=cmd_data_check)


def _add_train(commands, common) -> None:
    from core.config import AUGMENT_PRESETS, IMBALANCE_MODES, MONITOR_METRICS, STRATEGIES

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
    add("--head-epochs", type=int, help="two-stage only: epochs on the last layer before unfreezing (default 3)")
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
    add("--device", choices=("auto", "cpu", "cuda", "mps"), help="processor to train on (default auto)")
    add("--name", dest="run_name", help="short name for the run folder (default: the dataset folder's name)")
    add("--config", metavar="CONFIG.json", help="start from the settings in this file (e.g. a run's "
        "config.json); options given here override it")
    add("--exclude", metavar="LIST.txt", help="leave out the photos listed in this file (one path a line, "
        "absolute or relative to PATH; or a pairs CSV with a leave_out column); saved in the run's config")
    add("--json", action="store_true", help="print one JSON object with the result on stdout")
    train.set_defaults(func=cmd_train)


# flag dest -> TrainConfig field (when the names differ)
_FLAG_TO_FIELD = {"patience": "early_stopping_patience"}
_TRAIN_FLAGS = ("backbone", "strategy", "epochs", "head_epochs", "lr", "backbone_lr", "batch_size", "image_size",
                "augment", "seed", "val_fraction", "test_fraction", "weights", "positive_class",
                "target_sensitivity", "patience", "monitor", "imbalance", "label_smoothing", "device", "run_name",
                "groups", "resplit")


def _add_predict(commands, common) -> None:
    predict = commands.add_parser("predict", parents=[common], help="label new photos with a trained run")
    predict.add_argument("run", help="run folder or run id (see `latih runs`)")
    predict.add_argument("photos", nargs="+", metavar="PHOTO_OR_FOLDER", help="photos and/or folders of photos")
    predict.add_argument("--top-k", type=int, default=3, help="how many likely classes to show per photo (default 3)")
    predict.add_argument("--csv", metavar="OUT.csv", help="also save the predictions to this CSV file")
    predict.add_argument("--json", action="store_true", help="print the predictions as one JSON list")
    predict.set_defaults(func=cmd_predict)


def _add_runs(commands, common) -> None:
    runs = commands.add_parser("runs", parents=[common], help="list the runs of the workspace, newest first")
    runs.add_argument("--json", action="store_true", help="print the list as JSON")
    runs.set_defaults(func=cmd_runs)


def _add_repeat(commands, common) -> None:
    repeat = commands.add_parser("repeat", parents=[common], help="train again from a run's saved settings")
    repeat.add_argument("run", help="run folder or run id (see `latih runs`)")
    repeat.add_argument("--json", action="store_true", help="print one JSON object with the result on stdout")
    repeat.set_defaults(func=cmd_repeat)


def _add_resume(commands, common) -> None:
    resume = commands.add_parser("resume", parents=[common],
                                 help="continue a run that stopped or failed, from the end of its last epoch")
    resume.add_argument("run", help="run folder or run id (see `latih runs`)")
    resume.add_argument("--json", action="store_true", help="print one JSON object with the result on stdout")
    resume.set_defaults(func=cmd_resume)


def _add_export(commands) -> None:
    from core.export import register_export_command  # imported late: it costs seconds

    register_export_command(commands)


# ---------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------
def cmd_data_check(args) -> int:
    from core.cli_check import cmd_data_check as run  # scan + copies, without torch

    return run(args)


def config_from_args(args):
    from core.config import TrainConfig

    base = TrainConfig.from_json(_existing_file(args.config, "config file")).to_dict() if args.config else {}
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


def _existing_file(path: str, what: str) -> str:
    from core.errors import LatihError

    if not Path(path).is_file():
        raise LatihError(f"{what} {path} not found: check the path")
    return path


def _say_waiting(position: int) -> None:
    print(f"waiting: {position} run(s) ahead of this one in the workspace's queue; it starts when they end "
          "(Ctrl-C to cancel)", file=sys.stderr, flush=True)


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
    from core.runs import load_run, repeat_run

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
        _print_json(summary)
    else:
        _print_summary(summary, result.message)
    if result.status == "stopped":
        return EXIT_INTERRUPTED if "interrupted" in result.message else EXIT_FINDINGS
    return EXIT_OK


def _print_summary(summary: dict, message: str) -> None:
    if summary["best_epoch"] is None:
        print(f"{summary['status']}: {message}; run folder {summary['run_dir']}")
        return
    line = (f"{summary['status']} in {summary['wall_s']:.1f} s: best epoch {summary['best_epoch']}, "
            f"val accuracy {summary['val_acc']:.3f}, val macro-F1 {summary['val_f1']:.3f}")
    if "test_acc" in summary and summary["test_acc"] is not None:
        line += f", test accuracy {summary['test_acc']:.3f}, test macro-F1 {summary['test_f1']:.3f}"
    print(line)
    print(f"run folder: {summary['run_dir']}")


def cmd_predict(args) -> int:
    from core.errors import LatihError
    from core.predict import Predictor, photo_files, to_csv

    if args.top_k < 1:
        raise LatihError("--top-k must be 1 or more")
    predictor = Predictor.from_run(args.run)  # a wrong run is the likelier mistake: report it first
    if predictor.unfinished:
        print(f"warning: {predictor.unfinished}", file=sys.stderr)
    files = photo_files(args.photos)
    if not files:
        raise LatihError("no photos found in the given paths: give photo files or folders that hold photos")
    predictions = predictor.predict(files, top_k=args.top_k)
    if args.csv:
        to_csv(predictions, args.csv)
    if args.json:
        _print_json([p.to_row() | {"top_k": p.top_k} for p in predictions])
    else:
        _print_predictions(predictions)
        if args.csv:
            print(f"saved {args.csv}")
    # Any unreadable photo makes the exit non-zero, so a script notices; the rest are still predicted.
    return EXIT_OK if all(p.error is None for p in predictions) else EXIT_FINDINGS


def _print_predictions(predictions) -> None:
    for p in predictions:
        if p.error:
            print(f"{p.path}: error: {p.error}")
            continue
        others = ", ".join(f"{name} {prob:.2f}" for name, prob in p.top_k if name != p.label)
        if p.abstained:
            print(f"{p.path}: no answer: not like the training photos (the model's guess: "
                  f"{p.label} {p.probability:.2f}; a person should look at it)")
            continue
        print(f"{p.path}: {p.label} {p.probability:.2f}" + (f"  [{others}]" if others else ""))


def cmd_runs(args) -> int:
    from core.runs import list_runs

    frame = list_runs()
    if args.json:
        _print_json(json.loads(frame.to_json(orient="records", date_format="iso")))
        return EXIT_OK
    if frame.empty:
        print("no runs yet: train one with `latih train PATH`")
        return EXIT_OK
    shown = frame[["run_id", "status_text", "backbone", "strategy", "best_epoch", "val_acc", "val_f1", "eval_acc",
                   "wall_s"]].rename(columns={"status_text": "status"})
    import pandas as pd

    def fmt(pattern):
        return lambda v: "-" if v is None or pd.isna(v) else pattern.format(v)

    for column, pattern in (("best_epoch", "{:d}"), ("val_acc", "{:.3f}"), ("val_f1", "{:.3f}"),
                            ("eval_acc", "{:.3f}"), ("wall_s", "{:.1f}")):
        shown[column] = shown[column].astype(object).map(fmt(pattern))
    print(shown.to_string(index=False))
    for row in frame.itertuples():
        if row.damaged:
            print(f"{row.run_id}: damaged: {row.damaged}; delete this run (the others are fine)")
        elif row.status_text == "stopped unexpectedly":
            print(f"{row.run_id}: stopped unexpectedly; continue it with `latih resume {row.run_id}`")
    return EXIT_OK


def _print_json(data) -> None:
    print(json.dumps(data, default=str))


# ---------------------------------------------------------------------------------------
# main: one line per failure
# ---------------------------------------------------------------------------------------
def _setup_logging(verbose: bool) -> None:
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console.setLevel(logging.INFO if verbose else logging.ERROR + 10)  # errors are printed by main itself
    root = logging.getLogger()
    root.addHandler(console)
    root.setLevel(logging.INFO if verbose else logging.WARNING)


def _log_bug(exc: BaseException) -> Path | None:
    """Write the traceback of an unexpected failure to <workspace>/logs/latih.log."""
    import traceback

    try:
        from core.workspace import subdir

        path = subdir("logs") / "latih.log"
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"---- latih {' '.join(sys.argv[1:])}\n{traceback.format_exc()}\n")
        return path
    except OSError:  # cannot even write the log: print the traceback rather than lose it
        traceback.print_exc()
        return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if getattr(args, "workspace", None):
        # Through the environment so that every module (and the export command) uses it.
        os.environ["LATIH_WORKSPACE"] = str(Path(args.workspace).expanduser().resolve())
    _setup_logging(getattr(args, "verbose", False))
    from core.config import ConfigError
    from core.errors import LatihError

    try:
        _advance_queue()
        return args.func(args)
    except (LatihError, ConfigError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: stopped by the user", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        where = _log_bug(exc)
        print(f"error: unexpected failure ({type(exc).__name__}: {_one_line(exc)}); this is a bug, details in "
              f"{where or 'the output above'}", file=sys.stderr)
        return EXIT_FINDINGS


def _advance_queue() -> None:
    """Every `latih` command starts the next queued run when nothing is training (no page needed)."""
    workspace = os.environ.get("LATIH_WORKSPACE")
    root = Path(workspace or "workspace")
    if not (root / "queue").is_dir():
        return
    from core.jobs import ensure_worker

    try:
        ensure_worker(workspace, grace_s=3.0)
    except OSError as exc:
        log.warning("could not start the queue's worker: %s", exc)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
