"""`latih threshold RUN [VALUE]`: show or move the operating point of a screening run.

Without VALUE it prints the saved threshold with its sensitivity, specificity, PPV and NPV
(95% intervals) and the history of changes; with VALUE it saves that threshold (recorded in
the run as changed "where: cli"), so `latih predict`, the Test page and export use it.
Kept apart from core/cli.py so that building the parser stays free of numpy and torch.
"""
from __future__ import annotations

import argparse
import json


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _band(ci) -> str:
    return f" ({_pct(ci[0])} - {_pct(ci[1])})" if ci else ""


def _print_figures(fig: dict) -> None:
    names = {"val": "validation", "test": "test"}
    print(f"threshold {fig['threshold']:.4f} on p({fig['positive_class']}); "
          f"target sensitivity {_pct(fig['target_sensitivity'])}")
    for split in ("val", "test"):
        if split not in fig["splits"]:
            continue
        f = fig["splits"][split]
        rates = ", ".join(f"{k} {_pct(f[k])}{_band(f['ci'].get(k))}"
                          for k in ("sensitivity", "specificity", "ppv", "npv"))
        print(f"  {names[split]} ({f['n']} photos, {f['n_positive']} positive): {rates}; "
              f"caught {f['tp']}, missed {f['fn']}, false alarms {f['fp']}")
    if fig["validation_only"]:
        print("  no test photos: these figures are on the validation photos only, which also chose the "
              "threshold, so they are optimistic")


def cmd_threshold(args) -> int:
    from core import operating_point as op
    from core.runs import resolve_run_dir

    run_dir = resolve_run_dir(args.run)
    if args.value is not None:
        op.set_threshold(run_dir, op.check_threshold(args.value), source="cli")
    scores = op.load_scores(run_dir)
    fig = op.figures_at(scores, scores.threshold if scores.threshold is not None
                        else scores.threshold_for_target())
    if args.json:
        print(json.dumps({**fig, "history": scores.history}, default=str))
        return 0
    if args.value is not None:
        print(f"saved: Test, `latih predict` and export of {run_dir.name} now use this threshold")
    _print_figures(fig)
    for entry in scores.history:
        old = "none" if entry.get("old") is None else f"{entry['old']:.4f}"
        print(f"  changed {entry.get('when')} ({entry.get('where')}): {old} -> {entry['new']:.4f}")
    return 0


def register_threshold_command(subparsers, parents=()) -> argparse.ArgumentParser:
    """Adds `latih threshold RUN [VALUE] [--json]`."""
    parser = subparsers.add_parser(
        "threshold", parents=list(parents), help="show or move the screening threshold of a trained run",
        description="Show the screening threshold of a run with its sensitivity, specificity, PPV and "
                    "NPV (95%% intervals), or save a new one that predict, the Test page and export use.")
    parser.add_argument("run", help="run folder or run id (see `latih runs`)")
    parser.add_argument("value", nargs="?", default=None,
                        help="the new threshold on the positive class's probability, 0 to 1 (omit to only show)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.set_defaults(func=cmd_threshold)
    return parser
