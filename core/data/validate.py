"""Checks a scanned dataset (see ingest.scan) for problems a domain expert can fix.

Each problem is a Finding in plain words with counts and names, the files concerned and,
when one click can fix it, a fix id: the files listed are the ones `drop_files` removes.
Fix ids: drop_unreadable, drop_not_images, drop_duplicates, drop_conflicting, drop_leaked,
drop_small.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import imagehash
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from core.data.ingest import NOT_IMAGE

NEAR_DUPLICATE_DISTANCE = 4   # phash bits (of 64) that may differ for "the same photo"
MIN_PHOTOS_ERROR = 2
MIN_PHOTOS_WARNING = 10
IMBALANCE_RATIO = 3.0
SIZE_SHORTCUT_RATIO = 1.3
SMALL_SIDE = 64
EXAMPLES = 3  # names quoted in a message; the full list is in Finding.files

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass
class Finding:
    code: str
    severity: str  # "error" blocks training, "warning" should be looked at, "info" is for the record
    message: str
    files: list[str] = field(default_factory=list)
    fix: str | None = None


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def drop_files(df: pd.DataFrame, files) -> pd.DataFrame:
    """A copy of df without the rows whose path is in files (attrs kept)."""
    out = df[~df["path"].isin(set(files))].reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out


# ---------------------------------------------------------------- duplicate groups


def duplicate_groups(df: pd.DataFrame, max_distance: int = NEAR_DUPLICATE_DISTANCE) -> pd.Series:
    """Group id per row: rows with the same sha1, or phashes within max_distance bits, share one.

    Near-duplicates chain (a~b, b~c -> one group). Unreadable rows each get their own group.
    """
    n = len(df)
    edges = [_sha1_edges(df), _phash_edges(df["phash"].tolist(), max_distance)]
    rows = np.concatenate([e[0] for e in edges])
    cols = np.concatenate([e[1] for e in edges])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return pd.Series(labels, index=df.index, name="group")


def _sha1_edges(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    sha1 = df["sha1"].to_numpy()
    positions = pd.Series(np.arange(len(df)))[sha1 != ""]
    first = positions.groupby(sha1[sha1 != ""]).transform("first")
    return first.to_numpy(), positions.to_numpy()


def _phash_edges(hashes: list[str], max_distance: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j), i < j, of phashes within max_distance bits; blocks keep memory small."""
    valid = np.array([i for i, h in enumerate(hashes) if h])
    if len(valid) < 2:
        return np.array([], dtype=int), np.array([], dtype=int)
    bits = np.array([imagehash.hex_to_hash(hashes[i]).hash.flatten() for i in valid])
    words = np.packbits(bits, axis=1).view(">u8").ravel()  # 64 bits -> one integer per photo
    found_i, found_j = [], []
    for start in range(0, len(words), chunk):
        block = words[start:start + chunk]
        distance = np.bitwise_count(block[:, None] ^ words[None, :])
        i, j = np.nonzero(distance <= max_distance)
        i = i + start
        keep = i < j
        found_i.append(valid[i[keep]])
        found_j.append(valid[j[keep]])
    return np.concatenate(found_i), np.concatenate(found_j)


# ---------------------------------------------------------------- checks


def check_dataset(df: pd.DataFrame) -> list[Finding]:
    """Every problem found in df, errors first. Findings are plain data (dataclasses.asdict)."""
    readable = df[df["readable"].astype(bool)]
    readable.attrs = dict(df.attrs)
    findings = [*_unreadable(df), *_classes(df, readable)]
    if len(readable):
        groups = duplicate_groups(readable)
        findings += [*_duplicates_within_class(readable, groups), *_conflicting_labels(readable, groups),
                     *_split_leakage(readable, groups), *_size_shortcut(readable), *_small_images(readable)]
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


def _copies_message(n: int, what: str, example: pd.DataFrame, root) -> str:
    pair = " and ".join(_short(p, root) for p in example["path"].head(2))
    return f"{_plural(n, 'photo')} {what} (for example {pair})"


def _duplicates_within_class(readable: pd.DataFrame, groups: pd.Series) -> list[Finding]:
    """Copies in the same class and split: keep the first of each, offer to drop the rest."""
    keyed = readable.assign(group=groups)
    keyed = keyed[keyed.duplicated(["group", "label", "split"], keep=False)].sort_values("path")
    if keyed.empty:
        return []
    extra = keyed[keyed.duplicated(["group", "label", "split"], keep="first")]
    example = keyed[keyed["group"] == extra["group"].iloc[0]]
    root = readable.attrs.get("root")
    message = _copies_message(len(extra), "are copies or near-copies of another photo in the same class", example, root)
    return [Finding("duplicate_within_class", "warning",
                    f"{message}; copies add nothing and can make accuracy look better than it is, drop the extra copies",
                    extra["path"].tolist(), "drop_duplicates")]


def _spread_groups(readable: pd.DataFrame, groups: pd.Series, column: str) -> pd.DataFrame:
    """Rows of the duplicate groups whose members have more than one value in column."""
    keyed = readable.assign(group=groups)
    spread = keyed.groupby("group")[column].transform("nunique")
    return keyed[spread > 1].sort_values(["group", "path"])


def _conflicting_labels(readable: pd.DataFrame, groups: pd.Series) -> list[Finding]:
    rows = _spread_groups(readable, groups, "label")
    if rows.empty:
        return []
    example = rows[rows["group"] == rows["group"].iloc[0]]
    labels = " and ".join(f"'{x}'" for x in example["label"].unique()[:2])
    message = _copies_message(len(rows), f"appear in more than one class ({labels})", example, readable.attrs.get("root"))
    return [Finding("conflicting_labels", "error",
                    f"{message}: the same photo cannot belong to two classes, move it to the right class or drop all its copies",
                    rows["path"].tolist(), "drop_conflicting")]


def _split_leakage(readable: pd.DataFrame, groups: pd.Series) -> list[Finding]:
    split_rows = readable[readable["split"] != ""]
    rows = _spread_groups(split_rows, groups[split_rows.index], "split")
    if rows.empty:
        return []
    # Keep the training copy; the val/test copies are what make the score too optimistic.
    has_train = rows.groupby("group")["split"].transform(lambda s: (s == "train").any())
    leaked = rows[(rows["split"] != "train") & has_train | (rows["split"] == "test") & ~has_train]
    example = rows[rows["group"] == rows["group"].iloc[0]]
    message = _copies_message(len(leaked), f"in val/test {_verb(len(leaked), 'appears', 'appear')} (or nearly) in another split", example,
                              readable.attrs.get("root"))
    return [Finding("split_leakage", "warning",
                    f"{message}: the model is tested on photos it trained on, so its score will look better than it is; "
                    "drop the copies from val/test", leaked["path"].tolist(), "drop_leaked")]


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
