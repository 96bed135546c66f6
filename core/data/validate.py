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
from core.data.decode import NOT_IMAGE

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


def duplicate_groups(df: pd.DataFrame, max_distance: int | None = None) -> pd.Series:
    """Group id per row, from CONFIRMED copy pairs (core.data.copies): rows joined by a chain
    of confirmed pairs share one group, so the split keeps them on one side. Unreadable rows
    each get their own group. `max_distance` is accepted for old callers and ignored: pHash
    distance alone no longer decides what a copy is."""
    positions = pd.Series(np.arange(len(df)), index=df["path"].astype(str).to_numpy())
    positions = positions[~positions.index.duplicated()]
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


def _names(paths, root: str | None = None) -> str:
    """A few short names for a message: 'a.jpg, b.jpg and 10 more'."""
    paths = list(paths)
    shown = [_short(p, root) for p in paths[:EXAMPLES]]
    more = f" and {len(paths) - EXAMPLES} more" if len(paths) > EXAMPLES else ""
    return ", ".join(shown) + more


def _short(path: str, root: str | None) -> str:
    if root and path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) + 1:]
    return path.rsplit("/", 1)[-1]


def _verb(n: int, singular: str, plural: str) -> str:
    return singular if n == 1 else plural


def _plural(n: int, word: str) -> str:
    plural = word + ("es" if word.endswith(("s", "sh", "ch", "x")) else "s")
    return f"{n:,} {word if n == 1 else plural}"


def _unreadable(df: pd.DataFrame) -> list[Finding]:
    bad = df[~df["readable"].astype(bool)]
    not_image = bad["error"].str.startswith(NOT_IMAGE)
    findings = []
    root = df.attrs.get("root")
    if (~not_image).any():
        files = bad.loc[~not_image, "path"].tolist()
        findings.append(Finding(
            "unreadable", "warning",
            f"{_plural(len(files), 'photo')} cannot be read (damaged, truncated or too large) and will be left out: "
            f"{_names(files, root)}. Example: {bad.loc[~not_image, 'error'].iloc[0]}",
            files, "drop_unreadable"))
    if not_image.any():
        files = bad.loc[not_image, "path"].tolist()
        findings.append(Finding(
            "not_image", "warning",
            f"{_plural(len(files), 'file')} in the class folders {_verb(len(files), 'is not a photo', 'are not photos')} and will be left out: {_names(files, root)}",
            files, "drop_not_images"))
    return findings


def _classes(df: pd.DataFrame, readable: pd.DataFrame) -> list[Finding]:
    findings = []
    for name in df.attrs.get("empty_classes", []):
        findings.append(Finding("empty_class", "error",
                                f"The class folder '{name}' has no photos: add photos to it or delete the folder"))
    # Classes whose files are all unreadable still count, with 0 photos.
    counts = readable["label"].value_counts().reindex(sorted(df["label"].unique()), fill_value=0)
    counts = counts.sort_values(ascending=False, kind="stable")
    if (counts > 0).sum() < 2:
        have = f"only '{counts.index[0]}'" if (counts > 0).any() else "none"
        findings.append(Finding("single_class", "error",
                                f"Training needs at least two classes with photos, this dataset has {have}: "
                                "add a folder of photos for each other class"))
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
            what = "cannot be learned" if severity == "error" else "are too few to learn reliably"
            findings.append(Finding(
                "too_few_images", severity,
                f"Fewer than {limit} photos in {_plural(len(few), 'class')}: {listed}; these {what}, add more photos",
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
                    f"Classes are unbalanced: '{big}' has {counts.max():,} photos but '{small}' only {counts.min():,} "
                    f"({ratio:.1f} times fewer); the model may favour '{big}', so add photos of '{small}' if you can")]


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
        f"Photos of '{big}' are {ratio:.1f} times larger than photos of '{small}' (typical longest side "
        f"{longest.max():,.0f} px vs {longest.min():,.0f} px): the model could learn image size instead of the "
        f"disease or feature you care about, and fail on new photos; take or export all photos the same way, "
        "or at least check that accuracy holds on photos of one size")]


def _small_images(readable: pd.DataFrame) -> list[Finding]:
    small = readable[readable[["width", "height"]].min(axis=1) < SMALL_SIDE]
    if small.empty:
        return []
    files = small["path"].tolist()
    return [Finding("small_images", "warning",
                    f"{_plural(len(files), 'photo')} are smaller than {SMALL_SIDE} px on a side and carry little detail: "
                    f"{_names(files, readable.attrs.get('root'))}; use larger photos or drop them",
                    files, "drop_small")]
