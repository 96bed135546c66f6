"""Checks a scanned dataset (see core.data.scan) for problems a domain expert can fix.

Each problem is a Finding in plain words with counts and names, the files concerned and,
when one click can fix it, a fix id: the files listed are the ones `drop_files` removes.
Fix ids: drop_unreadable, drop_not_images, drop_duplicates, drop_conflicting, drop_leaked,
drop_small. Copies are found as confirmed pairs by core.data.copies and reported by
core.data.copy_findings (a near-copy guess is never an error).
"""
from __future__ import annotations


import numpy as np
import pandas as pd

from core.data import copies
from core.data.copy_findings import copy_findings
from core.data.findings import Finding
from core.data.decode import NOT_IMAGE, stored_error
from core.i18n import Msg, names as _name_list

MIN_PHOTOS_ERROR = 2
MIN_PHOTOS_WARNING = 10
IMBALANCE_RATIO = 3.0
SIZE_SHORTCUT_RATIO = 1.3
SMALL_SIDE = 64
EXAMPLES = 3  # names quoted in a message; the full list is in Finding.files

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def drop_files(df: pd.DataFrame, files) -> pd.DataFrame:
    """A copy of df without the rows whose path is in files (attrs kept)."""
    out = df[~df["path"].isin(set(files))].reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out


# ---------------------------------------------------------------- duplicate groups


def duplicate_groups(df: pd.DataFrame, max_distance: int | None = None,
                     pairs: pd.DataFrame | None = None) -> pd.Series:
    """Group id per row, from CONFIRMED copy pairs (core.data.copies): rows joined by a chain
    of confirmed pairs share one group, so the split keeps them on one side. Unreadable rows
    each get their own group. `pairs`: the pairs already found (a background copy check);
    pairs naming photos not in df are ignored. `max_distance` is accepted for old callers and
    ignored: pHash distance alone no longer decides what a copy is."""
    positions = pd.Series(np.arange(len(df)), index=df["path"].astype(str).to_numpy())
    positions = positions[~positions.index.duplicated()]
    if pairs is None:
        pairs = copies.find_pairs(df)
    edges = np.stack([positions.reindex(pairs["file_a"]).to_numpy(), positions.reindex(pairs["file_b"]).to_numpy()],
                     axis=1) if len(pairs) else np.empty((0, 2))
    edges = edges[~np.isnan(edges).any(axis=1)].astype(np.int64) if len(edges) else np.empty((0, 2), np.int64)
    return pd.Series(copies.group_ids(len(df), edges), index=df.index, name="group")


# ---------------------------------------------------------------- checks


def check_dataset(df: pd.DataFrame, pairs: pd.DataFrame | None = None, decisions: dict | None = None) -> list[Finding]:
    """Every problem found in df, errors first. Findings are plain data (dataclasses.asdict).

    pairs: the confirmed copy pairs (copies.find_pairs(df)); found here when not given.
    decisions: {copies.pair_key(a, b): "keep" | "left" | "right"} the person already made;
    a pair kept on purpose is not reported again (byte-identical files in two classes are).
    """
    readable = df[df["readable"].astype(bool)]
    readable.attrs = dict(df.attrs)
    findings = [*_unreadable(df), *_classes(df, readable)]
    if len(readable):
        if pairs is None:
            pairs = copies.find_pairs(readable)
        findings += [*copy_findings(pairs, readable.attrs.get("root"), decisions),
                     *_size_shortcut(readable), *_small_images(readable)]
    return sorted(findings, key=lambda f: SEVERITY_ORDER[f.severity])


def _names(paths, root: str | None = None) -> Msg:
    """A few short names for a message: 'a.jpg, b.jpg and 10 more'."""
    return _name_list([_short(p, root) for p in paths], EXAMPLES)


def _short(path: str, root: str | None) -> str:
    if root and path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) + 1:]
    return path.rsplit("/", 1)[-1]


def _one(key: str, n: int) -> str:
    """The catalogue key of a message whose English differs for one thing ('.one') and more."""
    return f"{key}.one" if n == 1 else key


def _unreadable(df: pd.DataFrame) -> list[Finding]:
    bad = df[~df["readable"].astype(bool)]
    not_image = bad["error"].str.startswith(NOT_IMAGE)
    findings = []
    root = df.attrs.get("root")
    if (~not_image).any():
        files = bad.loc[~not_image, "path"].tolist()
        findings.append(Finding(
            "unreadable", "warning",
            Msg(_one("finding_body.unreadable", len(files)), n=f"{len(files):,}", names=_names(files, root),
                example=stored_error(bad.loc[~not_image, "error"].iloc[0])),
            files, "drop_unreadable"))
    if not_image.any():
        files = bad.loc[not_image, "path"].tolist()
        findings.append(Finding(
            "not_image", "warning",
            Msg(_one("finding_body.not_image", len(files)), n=f"{len(files):,}", names=_names(files, root)),
            files, "drop_not_images"))
    return findings


def _classes(df: pd.DataFrame, readable: pd.DataFrame) -> list[Finding]:
    findings = []
    for name in df.attrs.get("empty_classes", []):
        findings.append(Finding("empty_class", "error", Msg("finding_body.empty_class", name=name)))
    # Classes whose files are all unreadable still count, with 0 photos.
    counts = readable["label"].value_counts().reindex(sorted(df["label"].unique()), fill_value=0)
    counts = counts.sort_values(ascending=False, kind="stable")
    if (counts > 0).sum() < 2:
        message = (Msg("finding_body.single_class", name=counts.index[0]) if (counts > 0).any()
                   else Msg("finding_body.no_class"))
        findings.append(Finding("single_class", "error", message))
    findings += _too_few(readable, counts)
    findings += _imbalance(counts)
    return findings


def _too_few(readable: pd.DataFrame, counts: pd.Series) -> list[Finding]:
    findings = []
    for severity, limit in (("error", MIN_PHOTOS_ERROR), ("warning", MIN_PHOTOS_WARNING)):
        few = counts[counts < limit]
        if severity == "warning":
            few = few[few >= MIN_PHOTOS_ERROR]  # already an error; do not say it twice
        if len(few):
            listed = ", ".join(f"'{label}' ({n})" for label, n in few.items())
            key = _one(f"finding_body.too_few_{severity}", len(few))
            findings.append(Finding(
                "too_few_images", severity, Msg(key, limit=limit, n=f"{len(few):,}", listed=listed),
                readable.loc[readable["label"].isin(few.index), "path"].tolist()))
    return findings


def _imbalance(counts: pd.Series) -> list[Finding]:
    if len(counts) < 2 or counts.min() == 0:
        return []
    ratio = counts.max() / counts.min()
    if ratio <= IMBALANCE_RATIO:
        return []
    big, small = counts.idxmax(), counts.idxmin()
    return [Finding("imbalance", "warning",
                    Msg("finding_body.imbalance", big=big, small=small, n_big=f"{counts.max():,}",
                        n_small=f"{counts.min():,}", ratio=f"{ratio:.1f}"))]


def _size_shortcut(readable: pd.DataFrame) -> list[Finding]:
    longest = readable[["width", "height"]].max(axis=1).groupby(readable["label"]).median()
    if len(longest) < 2 or longest.min() <= 0:
        return []
    ratio = longest.max() / longest.min()
    if ratio <= SIZE_SHORTCUT_RATIO:
        return []
    big, small = longest.idxmax(), longest.idxmin()
    return [Finding(
        "size_shortcut", "warning",
        Msg("finding_body.size_shortcut", big=big, small=small, ratio=f"{ratio:.1f}",
            side_big=f"{longest.max():,.0f}", side_small=f"{longest.min():,.0f}"))]


def _small_images(readable: pd.DataFrame) -> list[Finding]:
    small = readable[readable[["width", "height"]].min(axis=1) < SMALL_SIDE]
    if small.empty:
        return []
    files = small["path"].tolist()
    return [Finding("small_images", "warning",
                    Msg(_one("finding_body.small_images", len(files)), n=f"{len(files):,}", side=SMALL_SIDE,
                        names=_names(files, readable.attrs.get("root"))),
                    files, "drop_small")]
