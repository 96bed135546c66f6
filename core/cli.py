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

Each subcommand lives in its own module (core/cli_<name>.py: check, train, predict, runs,
estimate, threshold, serve; export in core/export.py); this one builds the parser and turns
failures into one line.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from core.cli_check import add_data
from core.cli_common import EXIT_FINDINGS, EXIT_INTERRUPTED, EXIT_USAGE, Parser
from core.i18n import tr
from core.cli_predict import add_predict
from core.cli_runs import add_runs
from core.cli_train import add_repeat, add_resume, add_train

log = logging.getLogger("latih")


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
    add_data(commands, common)
    add_train(commands, common)
    add_predict(commands, common)
    add_runs(commands, common)
    add_repeat(commands, common)
    add_resume(commands, common)
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


def _add_export(commands) -> None:
    from core.export import register_export_command  # imported late: it costs seconds

    register_export_command(commands)


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
        print(tr("cli.error", message=_one_line(exc)), file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # the system refused a file (permission, a missing disk): not a bug in Latih
        from core.errors import os_message

        log.warning("file operation failed: %r", exc)
        print(tr("cli.error", message=_in_cli_lang(os_message(exc))), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(tr("cli.interrupted"), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        where = _log_bug(exc)
        print(tr("cli.bug", kind=type(exc).__name__, message=_one_line(exc),
                 where=where or tr("cli.bug_where_output")), file=sys.stderr)
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
    """The error's message in the process's language (LATIH_LANG) when it is a catalogue text."""
    from core.i18n import Msg

    message = exc.args[0] if len(exc.args) == 1 else None
    return _in_cli_lang(message if isinstance(message, Msg) else str(exc)) or type(exc).__name__


def _in_cli_lang(text) -> str:
    """A catalogue text (Msg) in LATIH_LANG, any other text as is; on one line."""
    from core.i18n import Msg

    if isinstance(text, Msg):
        text = text.in_lang(os.environ.get("LATIH_LANG") or "en")
    return " ".join(str(text).split())


if __name__ == "__main__":
    sys.exit(main())
