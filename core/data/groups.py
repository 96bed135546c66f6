"""Which photos belong together: the eyes of one patient, the X-rays of one child.

A split by photo puts `1209_left.jpg` in training and `1209_right.jpg` in test, and the score
looks better than the model is. A *group* per photo keeps each patient on one side of every
split and cross-validation fold (core/data/split.py merges it with the copy groups).

Where the groups come from is one short text, `TrainConfig.groups`, so a run can be repeated:

    ""                      no groups (every photo on its own)
    "eye-pair"              the number before _left / _right   (1209_left.jpg -> 1209)
    "person"                personNNN_ at the start            (person1234_bacteria_5678.jpeg -> person1234)
    "prefix"                the text before the first _ or -   (tree7-leaf3.jpg -> tree7)
    "regex:<expression>"    the first bracketed part of the match, or the whole match
    "csv:<path>"            a CSV file with columns file,group (a clinic's patient ids)
    "folder"                the folder between the class folder and the photo (class/patient/photo.jpg)

A photo that a pattern does not match stays on its own (its own group).
"""
from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.data.findings import Finding
from core.errors import DataError
from core.i18n import Msg

logger = logging.getLogger(__name__)

PATTERNS = {
    "eye-pair": r"^(\d+)[ _-]*(?:left|right|l|r|od|os)(?![a-z])",
    "person": r"^(person\d+)_",
    "prefix": r"^([^_-]+)[_-]",
}
KINDS = (*PATTERNS, "regex", "csv", "folder")
EXAMPLES = 8  # groups shown in a preview
# A pattern is suggested when it puts at least this share of photos in groups of 2 or more.
SUGGEST_MIN_SHARE = 0.5
SUGGEST_MAX_SIZE = 20  # median photos per suggested group: a patient, a tree, not a whole class


@dataclass
class GroupPreview:
    spec: str
    n_photos: int
    n_groups: int  # groups with 2 or more photos
    n_grouped: int  # photos in those groups
    n_alone: int  # photos that stay on their own (no match, or a group of one)
    largest: int
    examples: list[tuple[str, list[str]]] = field(default_factory=list)  # (group, file names)


@dataclass
class GroupSuggestion:
    spec: str
    n_grouped: int
    n_groups: int
    message: str


def parse_spec(spec: str | None) -> tuple[str, str]:
    """("", "") for no groups, else (kind, argument); a bad spec is one plain DataError line."""
    spec = (spec or "").strip()
    if not spec:
        return "", ""
    kind, _, arg = spec.partition(":")
    kind = kind.strip()
    if kind in PATTERNS or kind == "folder":
        return kind, ""
    if kind == "regex":
        try:
            compiled = re.compile(arg, re.IGNORECASE)
        except re.error as exc:
            raise DataError(Msg("err.groups.bad_pattern", pattern=repr(arg), detail=str(exc))) from exc
        if not arg:
            raise DataError(Msg("err.groups.empty_pattern"))
        del compiled
        return kind, arg
    if kind == "csv":
        if not arg or not Path(arg).expanduser().is_file():
            raise DataError(Msg("err.groups.file_missing", name=arg or Msg("err.groups.none")))
        return kind, str(Path(arg).expanduser())
    raise DataError(Msg("err.groups.unknown_kind", kind=repr(kind), choices=', '.join(KINDS)))


def file_names(df: pd.DataFrame) -> pd.Series:
    """Each photo's file name. os.path, not Path: a Path per photo made the Data page's group
    suggestion take 3 s at 50,000 photos (700,000 Path objects)."""
    return df["path"].map(os.path.basename)


def assign_groups(df: pd.DataFrame, spec: str | None, names: pd.Series | None = None) -> pd.Series:
    """Group name per row ("" = on its own). Names are plain text from the user's files.
    `names`: file_names(df), when the caller has them already."""
    kind, arg = parse_spec(spec)
    if kind == "":
        return pd.Series("", index=df.index, name="patient")
    names = file_names(df) if names is None else names
    if kind == "folder":
        parents = df["path"].map(lambda p: os.path.basename(os.path.dirname(p)))
        out = parents.where(parents != df["label"].astype(str), "")
    elif kind == "csv":
        out = _from_csv(df, names, arg)
    else:
        out = names.map(_matcher(PATTERNS.get(kind, arg)))
    return out.fillna("").astype(str).rename("patient")


def _matcher(expression: str):
    compiled = re.compile(expression, re.IGNORECASE)

    def group_of(name: str) -> str:
        stem = name.rsplit(".", 1)[0]
        found = compiled.search(stem)
        if not found:
            return ""
        return (found.group(1) if compiled.groups else found.group(0)) or ""

    return group_of


def _from_csv(df: pd.DataFrame, names: pd.Series, path: str) -> pd.Series:
    """file,group rows; `file` may be a name, a path relative to the dataset, or absolute."""
    mapping: dict[str, str] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            if "file" not in fields or "group" not in fields:
                raise DataError(Msg("err.groups.columns", name=Path(path).name))
            for row in reader:
                row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                if row.get("file"):
                    mapping[row["file"]] = row.get("group", "")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(Msg("err.groups.unreadable", name=Path(path).name, detail=str(exc))) from exc
    root = str(df.attrs.get("root") or "").rstrip("/")
    relative = df["path"].map(lambda p: p[len(root) + 1:] if root and p.startswith(root + "/") else p)
    out = df["path"].map(mapping).fillna(relative.map(mapping)).fillna(names.map(mapping))
    logger.info("groups file %s: %d of %d photos named", Path(path).name, int(out.notna().sum()), len(df))
    return out


def group_sizes(groups: pd.Series) -> pd.Series:
    named = groups[groups != ""]
    return named.value_counts()


def preview(df: pd.DataFrame, spec: str | None, n_examples: int = EXAMPLES, groups: pd.Series | None = None,
            names: pd.Series | None = None) -> GroupPreview:
    """What a spec does to these photos: how many groups, how many photos stay alone, examples.
    `groups`, `names`: assign_groups(df, spec) and file_names(df), when the caller has them."""
    names = file_names(df) if names is None else names
    groups = assign_groups(df, spec, names) if groups is None else groups
    sizes = group_sizes(groups)
    multi = sizes[sizes >= 2]
    order = sorted(multi.index, key=lambda g: (-int(multi[g]), str(g)))  # largest first, then by name
    examples = [(str(g), sorted(names[groups == g].tolist())[:6]) for g in order[:n_examples]]
    n_grouped = int(multi.sum())
    return GroupPreview(spec or "", len(df), len(multi), n_grouped, len(df) - n_grouped,
                        int(multi.max()) if len(multi) else 0, examples)


def suggest(df: pd.DataFrame) -> GroupSuggestion | None:
    """A ready pattern when the file names look grouped (most photos share a group with another)."""
    if len(df) < 4:
        return None
    best: GroupPreview | None = None
    n_classes = int(df["label"].nunique()) if "label" in df else 1
    names = file_names(df)
    for spec in ("eye-pair", "person", "folder", "prefix"):
        groups = assign_groups(df, spec, names)
        p = preview(df, spec, n_examples=0, groups=groups, names=names)
        # Groups must be small and many: "text before _" on early_blight_01.jpg names the class, not a tree.
        sizes = group_sizes(groups)
        small_and_many = len(sizes) >= 3 * n_classes and float(sizes[sizes >= 2].median() or 0) <= SUGGEST_MAX_SIZE
        if small_and_many and p.n_grouped >= SUGGEST_MIN_SHARE * len(df) and p.n_groups < 0.9 * p.n_grouped and \
                (best is None or p.n_grouped > best.n_grouped):
            best = p
            if spec in ("eye-pair", "person"):  # the specific patterns win over the generic ones
                break
    if best is None:
        return None
    what = {"eye-pair": "look like pairs of eyes", "person": "look like several photos per person",
            "folder": "are in one folder per patient", "prefix": "share a name before the first _ or -"}[best.spec]
    message = (f"{best.n_grouped:,} photos {what} ({best.n_groups:,} groups): keep each group's photos in one "
               "split?")
    return GroupSuggestion(best.spec, best.n_grouped, best.n_groups, message)


def group_leak(df: pd.DataFrame, groups: pd.Series) -> list[Finding]:
    """A shipped train/val/test split that puts one group on two sides: the score is too kind.

    The fix id "resplit" means: ignore the folders' split and split again by group
    (TrainConfig.resplit).
    """
    keyed = pd.DataFrame({"group": groups, "split": df["split"], "path": df["path"]})
    keyed = keyed[(keyed["group"] != "") & (keyed["split"] != "")]
    if keyed.empty:
        return []
    sides = keyed.groupby("group")["split"].nunique()
    leaking = sides[sides > 1].index
    if not len(leaking):
        return []
    rows = keyed[keyed["group"].isin(leaking)].sort_values(["group", "path"])
    pairs = rows.groupby("group")["split"].agg(lambda s: " and ".join(sorted(set(s))))

    sides_of_common = pairs.value_counts().index[0].split(" and ")
    split_names = [Msg(f"finding_body.split.{s}") for s in sides_of_common]
    common = (Msg("finding_body.splits_2", a=split_names[0], b=split_names[1]) if len(split_names) == 2
              else Msg("finding_body.splits_3", a=split_names[0], b=split_names[1], c=split_names[-1]))
    example = str(leaking[0])
    message = Msg("finding_body.group_leak.one" if len(leaking) == 1 else "finding_body.group_leak",
                  n=f"{len(leaking):,}", common=common, example=example)
    return [Finding("group_leak", "warning", message, rows["path"].tolist(), "resplit")]


__all__ = ["PATTERNS", "KINDS", "GroupPreview", "GroupSuggestion", "parse_spec", "assign_groups", "preview",
           "suggest", "group_leak", "group_sizes"]
