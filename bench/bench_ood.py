"""Issue 4 benchmark: the "not like your photos" warning.

Trains lite0 (feature extraction) on plantvillage_potato_pepper with a held-back test split,
then prints the share of hymenoptera photos (ants and bees: clearly not leaves) flagged as
unusual, and the share of held-back plant photos wrongly flagged.
Usage: .venv/bin/python bench/bench_ood.py
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from core.config import TrainConfig
from core.predict import Predictor
from core.train import train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def share_flagged(predictor: Predictor, paths: list[str]) -> float:
    predictions = predictor.predict(paths)
    return sum(bool(p.ood) for p in predictions) / len(predictions)


def main() -> None:
    config = TrainConfig(data_path=str(SHARED / "plantvillage_potato_pepper"), strategy="feature-extraction",
                         val_fraction=0.2, test_fraction=0.2, seed=0, epochs=30)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(config, workspace=tmp)
        predictor = Predictor.from_run(result.run_dir)
        splits = pd.read_csv(result.run_dir / "splits.csv")
        held_back = splits.loc[splits["split"] == "test", "path"].tolist()
        insects = sorted(str(p) for p in (SHARED / "hymenoptera").rglob("*.jpg"))
        plants = share_flagged(predictor, held_back)
        ants_bees = share_flagged(predictor, insects)
        print(f"trained on plantvillage_potato_pepper ({len(splits)} photos), val acc {result.metrics['val_acc']:.3f}")
        print(f"hymenoptera photos flagged as unusual: {ants_bees:.1%} of {len(insects)}")
        print(f"held-back plant photos wrongly flagged: {plants:.1%} of {len(held_back)}")


if __name__ == "__main__":
    main()
