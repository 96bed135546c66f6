"""`latih data check`: what is in a dataset and what is wrong with it, with a progress bar.

Imports no torch (core.data is lazy), so checking 50,000 photos stays in bounded memory.
"""
from __future__ import annotations

import sys

from core.cli_common import EXIT_FINDINGS, EXIT_OK, Parser, print_json


def add_data(commands, common) -> None:
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



def cmd_data_check(args) -> int:
    from dataclasses import asdict

    from core.data.copies import find_pairs
    from core.data.exclude import read_list
    from core.data.scan import scan
    from core.data.validate import check_dataset, drop_files

    with _Progress(enabled=not args.json) as bar:
        df = scan(args.path, progress=lambda done, total: bar("read photos", done, total))
        if args.exclude:
            df = drop_files(df, read_list(args.exclude, df.attrs.get("root", args.path)))
        readable = df[df["readable"].astype(bool)]
        pairs = find_pairs(readable, progress=bar)
    findings = check_dataset(df, pairs=pairs)
    if getattr(args, "groups", None):
        from core.data.groups import assign_groups, group_leak

        findings += group_leak(df, assign_groups(df, args.groups))
    counts = _counts(df)
    if args.pairs:
        pairs.to_csv(args.pairs, index=False)
    if args.json:
        print_json({"root": df.attrs.get("root"), "photos": int(len(df)), "counts": counts,
                     "copy_pairs": int(len(pairs)), "findings": [asdict(f) for f in findings]})
    else:
        _print_check(df, counts, findings)
        if args.pairs:
            print(f"saved {len(pairs):,} copy pairs to {args.pairs}")
    return EXIT_FINDINGS if any(f.severity == "error" for f in findings) else EXIT_OK


class _Progress:
    """One tqdm bar per task (with its ETA) on stderr: `bar(task, done, total)`."""

    LABELS = {"read photos": "cli.task.read", "thumbnails": "cli.task.thumbnails", "compare": "cli.task.compare"}

    def __init__(self, enabled: bool = True):
        self.enabled, self.task, self.bar = enabled, None, None

    def __enter__(self):
        return self

    def __call__(self, task: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if task != self.task:
            self._close()
            self.task = task
            from core.i18n import tr

            desc = tr(self.LABELS[task]) if task in self.LABELS else task
            self.bar = tqdm(total=total, desc=desc, unit=tr("cli.unit.photo" if task != "compare" else "cli.unit.pair"),
                            file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
        self.bar.update(done - self.bar.n)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __exit__(self, *exc) -> None:
        self._close()


def _counts(df) -> dict:
    readable = df[df["readable"].astype(bool)]
    split = readable["split"].replace("", "unsplit")
    table = readable.assign(split=split).groupby(["split", "label"]).size()
    out: dict = {}
    for (split_name, label), n in table.items():
        out.setdefault(split_name, {})[label] = int(n)
    return out


def _print_check(df, counts: dict, findings) -> None:
    """The report in the process's language (LATIH_LANG); split names stay the folder names."""
    from core.i18n import tr

    print(tr("cli.check.files", root=df.attrs.get("root", ""), n=len(df)))
    for split_name, per_class in counts.items():
        shown = tr("cli.check.unsplit") if split_name == "unsplit" else split_name
        print(f"  {shown}: " + ", ".join(f"{label} {n}" for label, n in sorted(per_class.items())))
    if not findings:
        print(tr("cli.check.no_problems"))
    for finding in findings:
        fix = " " + tr("cli.check.fix", fix=tr(f"fix.{finding.fix}")) if finding.fix else ""
        print(tr(f"cli.severity.{finding.severity}") + f": {finding.message}{fix}")

