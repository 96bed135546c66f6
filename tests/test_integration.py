"""Real photos end to end: train the default backbone on a hymenoptera subset, then predict.

Runs in CI (which has ../shared/datasets). 40 ants + 40 bees for training, 25 + 25 of the
set's own val/ for validation, symlinked so nothing is copied.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from core.config import TrainConfig
from core.predict import Predictor
from core.runs import load_run
from core.train import train

pytestmark = pytest.mark.integration

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
HYMENOPTERA = DATASETS / "hymenoptera"
TRAIN_PER_CLASS, VAL_PER_CLASS = 40, 25


def link_subset(target: Path) -> Path:
    for split, count in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
        for class_dir in sorted((HYMENOPTERA / split).iterdir()):
            out = target / split / class_dir.name
            out.mkdir(parents=True)
            for photo in sorted(class_dir.iterdir())[:count]:
                (out / photo.name).symlink_to(photo)
    return target


@pytest.mark.skipif(not HYMENOPTERA.exists(), reason="shared datasets not available")
def test_default_backbone_learns_ants_and_bees_then_predicts(tmp_path, workspace):
    data = link_subset(tmp_path / "hymenoptera-subset")
    result = train(TrainConfig(data_path=str(data), strategy="feature-extraction"), workspace=workspace)

    assert result.status == "done"
    assert result.metrics["val_acc"] >= 0.8, result.metrics  # chance is 0.5
    run = load_run(result.run_dir)
    assert run.evaluation is not None and run.meta.get("temperature")

    val_bees = sorted((HYMENOPTERA / "val" / "bees").iterdir())[VAL_PER_CLASS:VAL_PER_CLASS + 10]
    predictions = Predictor.from_run(result.run_dir).predict(val_bees)
    assert all(p.error is None for p in predictions)
    assert sum(p.label == "bees" for p in predictions) >= 7  # unseen real photos
