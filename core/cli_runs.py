"""`latih runs`: the runs of the workspace, newest first."""
from __future__ import annotations

import json

from core.cli_common import EXIT_OK, print_json


def add_runs(commands, common) -> None:
    runs = commands.add_parser("runs", parents=[common], help="list the runs of the workspace, newest first")
    runs.add_argument("--json", action="store_true", help="print the list as JSON")
    runs.set_defaults(func=cmd_runs)


def cmd_runs(args) -> int:
    from core.runs import list_runs

    frame = list_runs()
    if args.json:
        print_json(json.loads(frame.to_json(orient="records", date_format="iso")))
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

