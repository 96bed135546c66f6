"""Predicting with a trained run: inputs of every kind, calibration, screening, bad photos."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.config import TrainConfig
from core.errors import DataError
from core.predict import Prediction, Predictor, photo_files, to_csv
from core.train import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small feature-extraction run shared by this module's tests (training is the slow part)."""
    from conftest import TINTS, generated_image, save_image

    root = tmp_path_factory.mktemp("predict")
    data = root / "data"
    seed = 0
    for index, label in enumerate(("green", "red")):
        for i in range(12):
            seed += 1
            save_image(generated_image(seed, 64, TINTS[1 - index]), data / label / f"{label}_{i:03d}.png")
    config = TrainConfig(data_path=str(data), image_size=64, epochs=8, batch_size=8, lr=0.01, augment="none",
                         val_fraction=0.25, early_stopping_patience=0)
    result = train(config, workspace=root / "workspace")
    return result.run_dir, data


def test_predicts_paths_pil_images_and_arrays(trained):
    run_dir, data = trained
    predictor = Predictor.from_run(run_dir)
    red = sorted((data / "red").iterdir())[0]
    items = [str(red), Image.open(red), np.asarray(Image.open(red).convert("RGB"))]
    predictions = predictor.predict(items, top_k=2)
    assert [p.label for p in predictions] == ["red"] * 3
    first = predictions[0]
    assert first.path == str(red) and predictions[1].path is None
    assert len(first.top_k) == 2 and sum(prob for _, prob in first.top_k) == pytest.approx(1.0, abs=1e-5)
    assert first.probability == first.top_k[0][1]
    assert predictions[0].probability == pytest.approx(predictions[1].probability, abs=1e-6)


def test_matches_the_validation_outputs_saved_by_training(trained):
    run_dir, _ = trained
    with np.load(run_dir / "outputs_val.npz") as out:
        paths, logits = list(out["paths"]), out["logits"]
    meta = json.loads((run_dir / "meta.json").read_text())
    predictions = Predictor.from_run(run_dir).predict(paths, top_k=2)
    scaled = logits / (meta.get("temperature") or 1.0)
    expected = np.exp(scaled - scaled.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    got = np.array([[dict(p.top_k)[name] for name in meta["class_names"]] for p in predictions])
    np.testing.assert_allclose(got, expected, atol=1e-4)  # same preprocessing as training


def test_unreadable_photo_gets_an_error_row_and_others_still_predicted(trained, tmp_path):
    run_dir, data = trained
    bad = tmp_path / "broken.jpg"
    bad.write_text("this is not a photo")
    good = sorted((data / "green").iterdir())[0]
    predictions = Predictor.from_run(run_dir).predict([bad, good])
    assert predictions[0].error and predictions[0].label is None and "\n" not in predictions[0].error
    assert predictions[1].error is None and predictions[1].label == "green"


def test_predict_folder_and_csv(trained, tmp_path):
    run_dir, data = trained
    frame = Predictor.from_run(run_dir).predict_folder(data / "red")
    assert len(frame) == 12 and set(frame["label"]) <= {"red", "green"}
    assert (frame["label"] == "red").mean() > 0.5
    out = to_csv(frame, tmp_path / "predictions.csv")
    assert pd.read_csv(out).shape[0] == 12


def test_temperature_softens_probabilities(trained):
    run_dir, data = trained
    photo = sorted((data / "red").iterdir())[0]
    predictor = Predictor.from_run(run_dir)
    sharp = predictor.predict([photo])[0].probability
    predictor.temperature = predictor.temperature * 4
    soft = predictor.predict([photo])[0].probability
    assert 0.5 <= soft < sharp


def test_screening_threshold_decides_the_positive_class(trained):
    run_dir, data = trained
    predictor = Predictor.from_run(run_dir)
    predictor.positive_index, predictor.threshold = predictor.class_names.index("red"), 0.0
    prediction = predictor.predict([sorted((data / "green").iterdir())[0]])[0]
    assert prediction.positive is True and prediction.label == "red"  # threshold 0 flags everything
    assert prediction.positive_score is not None


def test_ood_flag_separates_training_photos_from_unlike_ones(trained):
    run_dir, data = trained
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta.get("ood"), "evaluation fits the out-of-distribution check on every run"
    predictor = Predictor.from_run(run_dir)
    seen = predictor.predict(sorted((data / "red").iterdir())[:4])
    # A photo of nothing the model was trained on: smooth stripes, not a tinted grid.
    stripes = np.tile((np.sin(np.arange(64) / 3.0)[None, :, None] * 127 + 128), (64, 1, 3)).astype(np.uint8)
    unlike = predictor.predict([stripes])[0]
    assert sum(p.ood is False for p in seen) >= 3
    assert unlike.ood is True


def test_unlike_photo_gets_no_answer_in_predict_csv_and_cli(trained, tmp_path):
    import subprocess
    import sys

    run_dir, data = trained
    stripes = np.tile((np.sin(np.arange(64) / 3.0)[None, :, None] * 127 + 128), (64, 1, 3)).astype(np.uint8)
    Image.fromarray(stripes).save(tmp_path / "stripes.png")
    known = sorted((data / "red").iterdir())[0]
    predictions = Predictor.from_run(run_dir).predict([str(tmp_path / "stripes.png"), str(known)])
    assert predictions[0].abstained and predictions[0].answer is None
    assert predictions[0].label in ("red", "green")  # the guess is kept, to show below the headline
    assert predictions[1].answer == predictions[1].label
    frame = pd.read_csv(to_csv(predictions, tmp_path / "out.csv"))
    assert list(frame.columns[:3]) == ["path", "answer", "label"]
    assert pd.isna(frame.loc[0, "answer"]) and frame.loc[1, "answer"] == predictions[1].label
    done = subprocess.run([sys.executable, "-m", "core.cli", "predict", str(run_dir), str(tmp_path / "stripes.png")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "no answer: not like the training photos" in done.stdout


def test_photo_files_expands_folders_and_rejects_missing_paths(tmp_path, make_image):
    make_image(tmp_path / "a" / "one.png")
    make_image(tmp_path / "a" / "sub" / "two.JPG")
    (tmp_path / "a" / "notes.txt").write_text("x")
    assert [p.split("/")[-1] for p in photo_files([tmp_path / "a"])] == ["one.png", "two.JPG"]
    with pytest.raises(DataError):
        photo_files([tmp_path / "missing"])


def test_prediction_row_is_flat():
    row = Prediction(path="x.jpg", label="a", probability=0.9, top_k=[("a", 0.9), ("b", 0.1)]).to_row()
    assert row["top_k"] == "a 0.900; b 0.100"


def test_the_app_download_and_latih_predict_csv_are_one_format(tmp_path):
    from core.predict import Prediction, csv_text, to_csv

    predictions = [Prediction(path="leaf 1.jpg", label="healthy", probability=0.91, top_k=[("healthy", 0.91)],
                              ood=False),
                   Prediction(path="odd.png", label="rust", probability=0.4, ood=True),
                   Prediction(path="broken.jpg", error="file is damaged")]
    written = to_csv(predictions, tmp_path / "out.csv").read_text()
    assert csv_text(predictions) == written
    assert written.splitlines()[0] == "path,answer,label,probability,top_k,ood,positive_score,positive,error"
    assert written.splitlines()[2].startswith("odd.png,,rust")  # no answer where Latih abstains
