"""Assign each photo to train / val / test: stratified by class, seeded, duplicate-safe.

Copies and near-copies of a photo (one duplicate group: photos joined by confirmed copy
pairs of core.data.copies, see validate.duplicate_groups) always land in the same split, otherwise the model is tested on photos it trained on. Groups, not
files, are shuffled; the fractions are met in files as closely as whole groups allow.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from core.data.validate import duplicate_groups
from core.errors import DataError
from core.i18n import Msg

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def assign_splits(df: pd.DataFrame, val_fraction: float = 0.2, test_fraction: float = 0.0,
                  seed: int = 0, groups: pd.Series | None = None, resplit: bool = False,
                  pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """A copy of df with the `split` column filled in.

    groups: patient group per row (core.data.groups.assign_groups; "" = on its own): each
    group stays on one side, together with the copy groups. resplit: ignore the split the
    folders ship with (e.g. after a group_leak finding) and split again. pairs: the confirmed
    copy pairs when already known (core.data.copy_check); found here when not given.

    * Unreadable rows get split "" (left out).
    * Splits already present (a train/val folder layout) are kept; when there is train but no
      val, val is carved out of train (test_fraction is then ignored).
    * Every class with at least one photo keeps at least one photo in train; a class with 2+
      photos gets at least one val photo, and with 3+ one test photo when test_fraction > 0.
    """
    _check_fractions(val_fraction, test_fraction)
    out = df.copy()
    out.attrs = dict(df.attrs)
    readable = out["readable"].astype(bool)
    out.loc[~readable, "split"] = ""
    if resplit:
        out.loc[readable, "split"] = ""
    existing = set(out.loc[readable, "split"]) - {""}
    if "val" in existing:
        return out
    pool = readable & (out["split"] == "train") if "train" in existing else readable
    test = 0.0 if existing else test_fraction
    patient = groups.reindex(out.index) if groups is not None else None
    out.loc[pool, "split"] = _split_rows(out[pool], val_fraction, test, seed,
                                         patient[pool] if patient is not None else None, pairs)
    logger.info("split %s", out.loc[readable, "split"].value_counts().to_dict())
    return out


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(Msg("err.split.fractions", val=f"{val_fraction:g}", test=f"{test_fraction:g}"))


def split_groups(rows: pd.DataFrame, patient: pd.Series | None = None,
                 pairs: pd.DataFrame | None = None) -> pd.Series:
    """One id per row: the union of the copy groups (validate.duplicate_groups, from `pairs`
    when given) and the patient groups (a named group joins all its photos; "" joins nothing).
    Used by splits and folds."""
    copies = duplicate_groups(rows, pairs=pairs)
    if patient is None or not (patient.reindex(rows.index).fillna("") != "").any():
        return copies
    n = len(rows)
    named = patient.reindex(rows.index).fillna("").astype(str).to_numpy()
    ids = pd.Series(np.arange(n))
    first_of_patient = ids.groupby(named).transform("first").to_numpy()
    keep = named != ""
    edge_i = np.concatenate([np.arange(n), first_of_patient[keep]])
    # row i joins the node of its copy group (nodes n.. n+max), and the first row of its patient
    edge_j_nodes = np.concatenate([n + copies.to_numpy(), np.arange(n)[keep]])
    size = n + int(copies.max()) + 1
    graph = coo_matrix((np.ones(len(edge_i), dtype=np.int8), (edge_i, edge_j_nodes)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    return pd.Series(labels[:n], index=rows.index, name="group")


def _split_rows(rows: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int,
                patient: pd.Series | None = None, pairs: pd.DataFrame | None = None) -> pd.Series:
    """Split per row; groups are shuffled per class (the class of a group = its most common label)."""
    groups = split_groups(rows, patient, pairs)
    table = pd.DataFrame({"group": groups, "label": rows["label"], "path": rows["path"]})
    by_group = table.groupby("group")
    label = by_group["label"].first()
    mixed = by_group["label"].nunique()
    mixed = mixed[mixed > 1].index  # copies across classes: the most common label, as before
    if len(mixed):
        label.loc[mixed] = table[table["group"].isin(mixed)].groupby("group")["label"].agg(
            lambda s: s.value_counts().index[0])
    # One vectorised pass for the groups of one label (nearly all): a Python call per group took
    # 17 s at 10,000 photos.
    per_group = pd.DataFrame({"label": label, "size": by_group["path"].size(), "first": by_group["path"].min()})
    # Sorting by the first path makes the result independent of the row order of df.
    per_group = per_group.sort_values(["label", "first"])
    rng = np.random.default_rng(seed)
    group_split = {}
    for _, members in per_group.groupby("label", sort=True):
        order = members.iloc[rng.permutation(len(members))]
        group_split.update(zip(order.index, _fill_splits(order["size"].to_numpy(), val_fraction, test_fraction)))
    return table["group"].map(group_split)


def _fill_splits(sizes: np.ndarray, val_fraction: float, test_fraction: float) -> list[str]:
    """Walk the shuffled groups of one class: val first until its share is met, then test, rest train."""
    total = int(sizes.sum())
    want_val = _target(total, val_fraction, minimum_total=2)
    want_test = _target(total, test_fraction, minimum_total=3)
    splits, taken = [], {"val": 0, "test": 0}
    for index, size in enumerate(sizes):
        last_chance_for_train = index == len(sizes) - 1 and "train" not in splits
        if not last_chance_for_train and taken["val"] < want_val:
            split = "val"
        elif not last_chance_for_train and taken["test"] < want_test:
            split = "test"
        else:
            split = "train"
        taken[split] = taken.get(split, 0) + int(size)
        splits.append(split)
    return splits


def _target(total: int, fraction: float, minimum_total: int) -> int:
    """Photos wanted in a held-out split: at least one once the class is big enough to spare it."""
    if fraction <= 0 or total < minimum_total:
        return 0
    return max(1, round(total * fraction))


def assign_fold(df: pd.DataFrame, spec: str, seed: int = 0, groups: pd.Series | None = None) -> pd.DataFrame:
    """A copy of df whose `split` is one cross-validation fold (TrainConfig.cv_fold, e.g. "5x3:r0f2"):
    "val" for that fold's held-out photos, "train" for the rest, "" for unreadable ones. The
    dataset's own folders are ignored; the folds are core.cross_validation.folds over the same
    groups (copies + patients) and class labels as the frozen-feature estimate."""
    from core.cross_validation import fold_sides

    out = df.copy()
    out.attrs = dict(df.attrs)
    readable = out["readable"].astype(bool)
    out["split"] = ""
    rows = out[readable]
    patient = groups.reindex(rows.index) if groups is not None else None
    class_names = sorted(rows["label"].astype(str).unique())
    labels = rows["label"].astype(str).map({c: i for i, c in enumerate(class_names)}).to_numpy()
    out.loc[readable, "split"] = fold_sides(labels, split_groups(rows, patient).to_numpy(), spec, seed)
    logger.info("cross-validation fold %s: %s", spec, out.loc[readable, "split"].value_counts().to_dict())
    return out

