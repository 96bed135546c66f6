"""Patient groups: patterns, CSV, folders; no group ever crosses a split or a fold; the
group_leak finding on a shipped split that puts one patient on two sides."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.config import TrainConfig
from core.cross_validation import corrected_interval, cross_validate, folds
from core.data.groups import assign_groups, group_leak, parse_spec, preview, suggest
from core.data.scan import scan
from core.data.split import assign_splits, split_groups
from core.errors import DataError
from tests.conftest import TINTS, generated_image, save_image


@pytest.fixture
def grouped_dataset(tmp_path):
    """24 'patients' with 2-4 photos each (eye pairs plus repeats), classes by patient."""
    def _make(split_of=None, name="clinic"):
        root = tmp_path / name
        rng = np.random.default_rng(0)
        seed = 0
        for patient in range(1000, 1024):
            label = "glaucoma" if patient % 3 == 0 else "normal"
            for k in range(int(rng.integers(2, 5))):
                seed += 1
                side = "left" if k % 2 == 0 else "right"
                folder = root / (split_of(patient, k) if split_of else "") / label
                save_image(generated_image(seed, 64, TINTS[0 if label == "glaucoma" else 1]),
                           folder / f"{patient}_{side}{'' if k < 2 else f'_{k}'}.png")
        return root
    return _make


def _patients(df):
    return df["path"].str.extract(r"/(\d{4})_")[0]


def test_ready_patterns_and_regex_preview():
    df = pd.DataFrame({"path": ["/d/a/1209_left.jpg", "/d/a/1209_right.jpg", "/d/b/77_R.png",
                                "/d/b/person12_bacteria_5.jpeg", "/d/b/person12_virus_9.jpeg", "/d/b/x.jpg"],
                       "label": ["a", "a", "b", "b", "b", "b"]})
    assert assign_groups(df, "eye-pair").tolist() == ["1209", "1209", "77", "", "", ""]
    assert assign_groups(df, "person").tolist() == ["", "", "", "person12", "person12", ""]
    assert assign_groups(df, "prefix").tolist() == ["1209", "1209", "77", "person12", "person12", ""]
    assert assign_groups(df, r"regex:^(\d+)").tolist() == ["1209", "1209", "77", "", "", ""]
    shown = preview(df, "person")
    assert (shown.n_groups, shown.n_grouped, shown.n_alone) == (1, 2, 4)
    assert shown.examples == [("person12", ["person12_bacteria_5.jpeg", "person12_virus_9.jpeg"])]
    with pytest.raises(DataError, match="regular expression"):
        parse_spec("regex:(unclosed")
    with pytest.raises(DataError, match="unknown kind"):
        parse_spec("colour")


def test_csv_and_folder_groups(tmp_path, make_image):
    root = tmp_path / "d"
    for label, patient, name in [("a", "p1", "x.png"), ("a", "p1", "y.png"), ("b", "p2", "z.png"), ("b", "", "w.png")]:
        make_image(root / label / patient / name if patient else root / label / name, seed=hash(name) % 100)
    df = scan(root)
    by_folder = dict(zip(df["path"].str.rsplit("/", n=1).str[-1], assign_groups(df, "folder")))
    assert by_folder == {"x.png": "p1", "y.png": "p1", "z.png": "p2", "w.png": ""}
    table = tmp_path / "groups.csv"
    table.write_text("file,group\nx.png,A\na/p1/y.png,A\nb/w.png,B\n", encoding="utf-8")
    by_csv = dict(zip(df["path"].str.rsplit("/", n=1).str[-1], assign_groups(df, f"csv:{table}")))
    assert by_csv == {"x.png": "A", "y.png": "A", "z.png": "", "w.png": "B"}
    bad = tmp_path / "bad.csv"
    bad.write_text("name,patient\nx.png,A\n", encoding="utf-8")
    with pytest.raises(DataError, match="file,group"):
        assign_groups(df, f"csv:{bad}")


def test_suggestion_when_names_look_like_eye_pairs(grouped_dataset):
    df = scan(grouped_dataset())
    hint = suggest(df)
    assert hint is not None and hint.spec == "eye-pair"
    assert hint.n_grouped == len(df) and hint.n_groups == 24 and "pairs of eyes" in hint.message
    plain = pd.DataFrame({"path": [f"/d/a/img{i:04d}.jpg" for i in range(20)], "label": ["a"] * 20})
    assert suggest(plain) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_group_crosses_a_split(grouped_dataset, seed):
    df = scan(grouped_dataset())
    groups = assign_groups(df, "eye-pair")
    split = assign_splits(df, 0.25, 0.2, seed=seed, groups=groups)
    sides = split.groupby(_patients(split))["split"].nunique()
    assert (sides == 1).all(), sides[sides > 1]
    assert set(split["split"]) == {"train", "val", "test"}
    # Without the groups, a random split by photo does put patients on two sides.
    plain = assign_splits(df, 0.25, 0.2, seed=seed)
    assert (plain.groupby(_patients(plain))["split"].nunique() > 1).any()


def test_patient_groups_merge_with_copy_groups(grouped_dataset):
    df = scan(grouped_dataset())
    copy = df.iloc[0]
    other = df.index[_patients(df) != _patients(df).iloc[0]][0]
    df.loc[other, "sha1"] = copy["sha1"]  # a copy of patient A's photo filed under patient B
    ids = split_groups(df, assign_groups(df, "eye-pair"))
    a, b = _patients(df).iloc[0], _patients(df).loc[other]
    assert ids[_patients(df) == a].nunique() == 1 and ids[_patients(df) == a].iloc[0] == ids.loc[other]
    assert (ids[_patients(df) == b] == ids.loc[other]).all()  # the copy joins both patients into one group


def test_no_group_crosses_a_fold(grouped_dataset):
    df = scan(grouped_dataset())
    patient = _patients(df).to_numpy()
    ids = split_groups(df, assign_groups(df, "eye-pair")).to_numpy()
    labels = (df["label"] == "glaucoma").astype(int).to_numpy()
    seen = 0
    for _, train_index, test_index in folds(labels, ids, 4, 3, seed=0):
        assert not set(patient[train_index]) & set(patient[test_index])
        assert set(labels[test_index]) == {0, 1}  # stratified: both classes in every fold
        seen += 1
    assert seen == 12


def test_group_leak_finding_on_a_shipped_split(grouped_dataset):
    # Every 4th patient is filed under val/, but patient 1000's first photo stays in train/:
    # one patient on both sides.
    def shipped(patient, k):
        if patient == 1000 and k == 0:
            return "train"
        return "val" if patient % 4 == 0 else "train"

    root = grouped_dataset(split_of=shipped)
    df = scan(root)
    groups = assign_groups(df, "eye-pair")
    findings = group_leak(df, groups)
    assert len(findings) == 1 and findings[0].code == "group_leak" and findings[0].fix == "resplit"
    leaking = set(_patients(df)[df["path"].isin(findings[0].files)])
    truth = df.assign(p=_patients(df)).groupby("p")["split"].nunique()
    assert leaking == set(truth[truth > 1].index) and "1000" in leaking
    assert findings[0].message.startswith("1 group has photos in more than one split")
    # the one-click re-split: each patient on one side again
    fixed = assign_splits(df, 0.25, 0.0, seed=0, groups=groups, resplit=True)
    assert group_leak(fixed, groups) == []
    assert (fixed.groupby(_patients(fixed))["split"].nunique() == 1).all()
    # a clean shipped split gives no finding
    clean = scan(grouped_dataset(split_of=lambda patient, k: "val" if patient % 4 == 0 else "train", name="clean"))
    assert group_leak(clean, assign_groups(clean, "eye-pair")) == []


def test_config_carries_groups(grouped_dataset, tmp_path):
    from core.prepare import prepare_data

    root = grouped_dataset()
    config = TrainConfig(data_path=str(root), groups="eye-pair", val_fraction=0.3)
    assert TrainConfig.from_json(config.to_json()) == config
    run = tmp_path / "run"
    run.mkdir()
    data = prepare_data(config, None, run)
    train_patients = set(_patients(data.frames["train"]))
    val_patients = set(_patients(data.frames["val"]))
    assert train_patients and val_patients and not train_patients & val_patients


def test_cross_validation_figures_on_separable_features():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 30)
    features = rng.normal(size=(90, 16)) + np.eye(3, 16)[labels] * 4
    groups = np.arange(90) // 2
    result = cross_validate(features, labels, groups, ["a", "b", "c"], n_splits=5, n_repeats=3)
    assert len(result.fold_accuracy) == 15 and result.n_groups == 45
    assert result.accuracy.low <= result.accuracy.mean <= result.accuracy.high
    assert result.accuracy.mean > 0.9 and result.auc.mean > 0.95
    assert set(result.per_class_recall) == {"a", "b", "c"}
    # the corrected interval is wider than the naive standard error would give
    scores = [0.8, 0.85, 0.9, 0.82, 0.88]
    naive = 2.776 * np.std(scores, ddof=1) / np.sqrt(5)
    corrected = corrected_interval(scores, 0.25)
    assert corrected.high - corrected.mean > naive


def test_no_suggestion_when_the_prefix_is_the_class_name(make_dataset):
    df = scan(make_dataset(("early_blight", "late_blight", "healthy"), n=12))
    assert suggest(df) is None  # early_blight_001.png: "early" names the class, not a patient


def test_data_check_reports_a_group_leak(grouped_dataset, workspace):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = grouped_dataset(split_of=lambda patient, k: "val" if patient == 1000 and k == 1 else "train")
    done = subprocess.run([sys.executable, "-m", "core.cli", "data", "check", str(root), "--groups", "eye-pair",
                           "--json"], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
                          env={**os.environ, "LATIH_WORKSPACE": str(workspace)}, timeout=300)
    report = json.loads(done.stdout)
    leaks = [f for f in report["findings"] if f["code"] == "group_leak"]
    assert len(leaks) == 1 and leaks[0]["fix"] == "resplit" and "'1000'" in leaks[0]["message"]
