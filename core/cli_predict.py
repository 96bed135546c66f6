"""`latih predict RUN PHOTOS...`: label new photos with a trained run."""
from __future__ import annotations

import sys

from core.cli_common import EXIT_FINDINGS, EXIT_OK, print_json
from core.i18n import Msg, render, tr


def add_predict(commands, common) -> None:
    predict = commands.add_parser("predict", parents=[common], help="label new photos with a trained run")
    predict.add_argument("run", help="run folder or run id (see `latih runs`)")
    predict.add_argument("photos", nargs="+", metavar="PHOTO_OR_FOLDER", help="photos and/or folders of photos")
    predict.add_argument("--top-k", type=int, default=3, help="how many likely classes to show per photo (default 3)")
    predict.add_argument("--csv", metavar="OUT.csv", help="also save the predictions to this CSV file")
    predict.add_argument("--json", action="store_true", help="print the predictions as one JSON list")
    predict.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    from core.errors import LatihError
    from core.predict import Predictor, photo_files, to_csv

    if args.top_k < 1:
        raise LatihError(Msg("err.cli.top_k"))
    predictor = Predictor.from_run(args.run)  # a wrong run is the likelier mistake: report it first
    if predictor.unfinished:
        print(tr("cli.warning", message=predictor.unfinished), file=sys.stderr)
    files = photo_files(args.photos)
    if not files:
        raise LatihError(Msg("err.cli.no_photos"))
    predictions = predictor.predict(files, top_k=args.top_k)
    if args.csv:
        to_csv(predictions, args.csv)
    if args.json:
        print_json([p.to_row() | {"top_k": p.top_k} for p in predictions])
    else:
        _print_predictions(predictions)
        if args.csv:
            print(tr("cli.saved", path=args.csv))
    # Any unreadable photo makes the exit non-zero, so a script notices; the rest are still predicted.
    return EXIT_OK if all(p.error is None for p in predictions) else EXIT_FINDINGS


def _print_predictions(predictions) -> None:
    from core.data.decode import stored_error

    for p in predictions:
        if p.error:
            print(f"{p.path}: {tr('cli.error', message=render(stored_error(p.error)))}")
            continue
        others = ", ".join(f"{name} {prob:.2f}" for name, prob in p.top_k if name != p.label)
        if p.abstained:
            print(f"{p.path}: " + tr("cli.predict_abstained", label=p.label, p=f"{p.probability:.2f}"))
            continue
        print(f"{p.path}: {p.label} {p.probability:.2f}" + (f"  [{others}]" if others else ""))

