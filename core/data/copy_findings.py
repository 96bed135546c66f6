"""Findings about copies, from confirmed pairs (core.data.copies.find_pairs), never from chains.

Severity fits the evidence:
* byte-identical files in two classes: error `conflicting_labels` (the same bytes cannot be
  two things); fix `drop_conflicting` leaves out both files of each such pair only;
* a confirmed near-copy in two classes: warning `near_copy_across_classes`, for the person to
  review pair by pair; it never blocks training and has no one-click fix;
* a copy (identical or near) in two splits: warning `split_leakage`; fix `drop_leaked`
  leaves out the val/test photo of each pair;
* a copy in one class and split: warning `duplicate_within_class`; fix `drop_duplicates`
  leaves out one photo per pair, never both (the one in more pairs first; a pair whose other
  photo is already left out is skipped, so a chain A~B~C loses B only).
Each message names one example pair: its two files and their two classes (or splits).
"""
from __future__ import annotations

import pandas as pd

from core.data.findings import Finding
from core.i18n import Msg

KEEP = "keep"


def copy_findings(pairs: pd.DataFrame, root: str | None, decisions: dict | None = None) -> list:
    from core.data.copies import pair_key

    if pairs is None or pairs.empty:
        return []
    decisions = decisions or {}
    kept = pairs.apply(lambda r: decisions.get(pair_key(r["file_a"], r["file_b"])) == KEEP, axis=1)
    identical_classes = (pairs["kind"] == "identical") & (pairs["scope"] == "across_classes")
    findings = []
    rows = pairs[identical_classes]
    if len(rows):
        ex = rows.iloc[0]
        files = sorted(set(rows["file_a"]) | set(rows["file_b"]))
        findings.append(Finding(
            "conflicting_labels", "error",
            Msg(_one("finding_body.conflicting_labels", len(rows)), n=f"{len(rows):,}",
                example=_pair_text(ex, root, "class")), files, "drop_conflicting"))
    open_pairs = pairs[~identical_classes & ~kept]
    rows = open_pairs[open_pairs["scope"] == "across_classes"]
    if len(rows):
        ex = rows.iloc[0]
        findings.append(Finding(
            "near_copy_across_classes", "warning",
            Msg(_one("finding_body.near_copy_across_classes", len(rows)), n=f"{len(rows):,}",
                example=_pair_text(ex, root, "class"), similarity=f"{ex['similarity']:.2f}"),
            sorted(set(rows["file_a"]) | set(rows["file_b"]))))
    rows = open_pairs[open_pairs["scope"] == "across_splits"]
    if len(rows):
        ex = rows.iloc[0]
        leaked = sorted({_held_out(r) for _, r in rows.iterrows()})
        findings.append(Finding(
            "split_leakage", "warning",
            Msg(_one("finding_body.split_leakage", len(rows)), n=f"{len(rows):,}",
                example=_pair_text(ex, root, "split")), leaked, "drop_leaked"))
    rows = open_pairs[open_pairs["scope"] == "within_class"]
    if len(rows):
        ex = rows.iloc[0]
        extra = _one_per_pair(rows)
        findings.append(Finding(
            "duplicate_within_class", "warning",
            Msg(_one("finding_body.duplicate_within_class", len(rows)), n=f"{len(rows):,}",
                example=_pair_text(ex, root, None)), extra, "drop_duplicates"))
    return findings


def _one_per_pair(rows: pd.DataFrame) -> list[str]:
    """One file per pair, never both: of a pair whose two files are both still in, the one in
    more pairs goes (the later name on a tie), so a chain A~B~C loses B only."""
    degree = pd.concat([rows["file_a"], rows["file_b"]]).value_counts()
    dropped: set[str] = set()
    for a, b in zip(rows["file_a"], rows["file_b"]):
        if a not in dropped and b not in dropped:
            dropped.add(a if degree[a] > degree[b] else b)
    return sorted(dropped)


def _held_out(row) -> str:
    """The val/test photo of a cross-split pair (the test one when neither is train)."""
    if row["split_a"] == "train":
        return row["file_b"]
    if row["split_b"] == "train":
        return row["file_a"]
    return row["file_a"] if row["split_a"] == "test" else row["file_b"]


def _pair_text(row, root: str | None, what: str | None) -> Msg:
    a, b = _short(row["file_a"], root), _short(row["file_b"], root)
    if what == "class":
        return Msg("finding_body.pair_classes", a=a, b=b, class_a=row["class_a"], class_b=row["class_b"])
    if what == "split":
        return Msg("finding_body.pair_splits", a=a, b=b, split_a=Msg(f"finding_body.split.{row['split_a']}"),
                   split_b=Msg(f"finding_body.split.{row['split_b']}"))
    return Msg("finding_body.pair", a=a, b=b)


def _short(path: str, root: str | None) -> str:
    if root and path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) + 1:]
    return path.rsplit("/", 1)[-1]


def _one(key: str, n: int) -> str:
    """The catalogue key of a message whose English differs for one pair ('.one') and more."""
    return f"{key}.one" if n == 1 else key
