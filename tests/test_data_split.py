"""core.data.split: stratified, seeded, deterministic, duplicate groups kept together."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

from core.data.scan import scan
from core.data.split import assign_splits
from core.data.validate import duplicate_groups
from core.errors import DataError


def table(df: pd.DataFrame) -> dict:
    return pd.crosstab(df["label"], df["split"]).to_dict()


def test_stratified_fractions_per_class(make_dataset):
    df = assign_splits(scan(make_dataset({"a": 50, "b": 20})), val_fraction=0.2, test_fraction=0.1, seed=0)
    assert table(df) == {"test": {"a": 5, "b": 2}, "train": {"a": 35, "b": 14}, "val": {"a": 10, "b": 4}}


def test_same_seed_same_split_whatever_the_row_order(make_dataset):
    df = scan(make_dataset(("a", "b", "c"), n=20))
    first = assign_splits(df, 0.25, 0.0, seed=3).set_index("path")["split"]
    shuffled = assign_splits(df.sample(frac=1, random_state=1), 0.25, 0.0, seed=3).set_index("path")["split"]
    assert first.equals(shuffled.reindex(first.index))
    other_seed = assign_splits(df, 0.25, 0.0, seed=4).set_index("path")["split"]
    assert not first.equals(other_seed)


def test_duplicate_groups_never_straddle_splits(make_dataset):
    root = make_dataset(("a", "b"), n=20)
    for i in range(6):  # six photos with two extra copies each
        for k in range(2):
            shutil.copy(root / "a" / f"a_{i:03d}.png", root / "a" / f"copy{k}_{i}.png")
    df = scan(root)
    for seed in range(5):
        split = assign_splits(df, 0.3, 0.2, seed=seed)
        groups = duplicate_groups(split)
        assert (split.groupby(groups)["split"].nunique() == 1).all()


def test_existing_splits_are_kept(make_dataset):
    df = scan(make_dataset(("a", "b"), split={"train": 5, "val": 2}))
    out = assign_splits(df, 0.5, 0.3, seed=0)
    assert out["split"].tolist() == df["split"].tolist()


def test_val_is_carved_out_of_train_only(make_dataset):
    df = scan(make_dataset(("a", "b"), split={"train": 10, "test": 3}))
    out = assign_splits(df, 0.2, 0.5, seed=0)
    assert table(out) == {"test": {"a": 3, "b": 3}, "train": {"a": 8, "b": 8}, "val": {"a": 2, "b": 2}}
    was_test = df["split"] == "test"
    assert (out.loc[was_test, "split"] == "test").all()


def test_unreadable_rows_are_left_out(make_dataset):
    root = make_dataset(("a", "b"), n=10)
    (root / "a" / "broken.jpg").write_text("text")
    out = assign_splits(scan(root))
    broken = out[out["path"].str.endswith("broken.jpg")].iloc[0]
    assert broken["split"] == "" and (out.loc[out["readable"], "split"] != "").all()


def test_tiny_classes_keep_a_training_photo(make_dataset):
    out = assign_splits(scan(make_dataset({"one": 1, "two": 2, "three": 3, "many": 20})), 0.2, 0.2, seed=0)
    counts = table(out)
    assert counts["train"]["one"] == 1 and counts["train"]["two"] == 1 and counts["train"]["three"] == 1
    assert counts["val"]["two"] == 1 and counts["val"]["three"] == 1 and counts["test"]["three"] == 1


def test_a_class_that_is_one_duplicate_group_stays_in_train(make_dataset):
    root = make_dataset(("a", "b"), n=10)
    (root / "c").mkdir()
    for k in range(4):
        shutil.copy(root / "a" / "a_000.png", root / "c" / f"same{k}.png")
    shutil.rmtree(root / "a")
    out = assign_splits(scan(root), 0.5, 0.0, seed=0)
    assert set(out.loc[out["label"] == "c", "split"]) == {"train"}


def test_returns_a_copy(make_dataset):
    df = scan(make_dataset(("a", "b"), n=5))
    out = assign_splits(df)
    assert set(df["split"]) == {""} and set(out["split"]) == {"train", "val"}
    assert out.attrs["root"] == df.attrs["root"]


@pytest.mark.parametrize("val,test", [(-0.1, 0.0), (1.0, 0.0), (0.6, 0.5)])
def test_impossible_fractions_are_refused(make_dataset, val, test):
    with pytest.raises(DataError, match="fractions"):
        assign_splits(scan(make_dataset(("a", "b"), n=3)), val, test)
