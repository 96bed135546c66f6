"""AppTest tests of the pages that need a trained run (Train, Evaluate, Test, Runs).

One real, tiny training per test session (2 classes x 12 generated photos, EfficientNet-Lite0
with its bundled weights, 64 px, feature extraction, 2 epochs: ~10 s on 2 CPU cores); each test
copies that run folder into its own workspace and opens a project that owns it.
"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app.py"
TIMEOUT = 180
EN = json.loads((REPO / "assets" / "i18n" / "en.json").read_text(encoding="utf-8"))
CLASSES = {"red": (220, 40, 40), "green": (40, 200, 60)}


def _photo(seed: int, tint) -> Image.Image:
    grid = np.random.default_rng(seed).integers(0, 256, (8, 8, 3))
    return Image.fromarray((grid * 0.6 + np.array(tint) * 0.4).astype(np.uint8)).resize((64, 64), Image.NEAREST)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(dataset folder, run folder) of one real training on generated photos."""
    from core.config import TrainConfig
    from core.train import train

    root = tmp_path_factory.mktemp("app-run")
    data = root / "photos"
    for k, (label, tint) in enumerate(CLASSES.items()):
        (data / label).mkdir(parents=True)
        for i in range(12):
            _photo(1000 * k + i, tint).save(data / label / f"{label}_{i:02d}.png")
    config = TrainConfig(data_path=str(data), strategy="feature-extraction", epochs=2, image_size=64,
                         batch_size=8, val_fraction=0.25, test_fraction=0.25, augment="none",
                         early_stopping_patience=0)
    result = train(config, workspace=root / "ws")
    assert result.status == "done", result
    return data, Path(result.run_dir)


pytestmark = pytest.mark.usefixtures("navigation_like_a_running_server")


@pytest.fixture
def project(trained, workspace):
    """A project on the session's photos that owns a copy of the trained run."""
    from ui import state

    data, run = trained
    copy = workspace / "runs" / run.name
    shutil.copytree(run, copy)
    project = state.new_project("Colours", data_path=str(data), source_kind="folder", language="en")
    state.add_run(project, copy)
    return state.load_project(project["id"])


def _open(project: dict, page: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["project"] = project["id"]
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    _ok(at, page)
    return at


def _ok(at: AppTest, where: str) -> None:
    assert not at.exception, f"{where}: " + "\n".join(str(e.value) for e in at.exception)
    assert not at.error, f"{where}: " + "\n".join(e.value for e in at.error)


def _png(label: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    _photo(seed, CLASSES[label]).save(buffer, "PNG")
    return buffer.getvalue()


def test_train_page_reattaches_to_the_finished_run(project):
    at = _open(project, "train")
    run_name = Path(project["last_run"]).name
    assert any(run_name in m.value for m in at.markdown)
    assert any(EN["train.done"].split("{")[0] in s.value for s in at.success)
    charts = [c for c in at.get("plotly_chart") if "train_curves" in str(getattr(c, "proto", ""))]
    assert charts or len(at.get("plotly_chart")) >= 1
    assert not at.button(key="train_start").disabled  # finished: a new run may start


def test_evaluate_page_shows_metrics_with_intervals(project):
    at = _open(project, "evaluate")
    table = at.dataframe[0].value
    assert EN["metric.accuracy"] in table[EN["eval.col_metric"]].tolist()
    accuracy = table[table[EN["eval.col_metric"]] == EN["metric.accuracy"]]
    assert accuracy[EN["eval.col_interval"]].str.contains("% – ").all()
    assert len(at.get("plotly_chart")) >= 4  # confusion, per class, ROC, reliability
    subheaders = [s.value for s in at.subheader]
    assert EN["eval.mistakes_title"] in subheaders


def test_evaluate_gradcam_on_mistakes(project):
    """Force one mistake into evaluation.json so the gallery and its Grad-CAM toggle render."""
    run = Path(project["last_run"])
    evaluation = json.loads((run / "evaluation.json").read_text())
    photo = next((Path(project["data_path"]) / "red").glob("*.png"))
    evaluation["misclassified"] = [{"path": str(photo), "true": "red", "predicted": "green", "confidence": 0.6}]
    (run / "evaluation.json").write_text(json.dumps(evaluation))
    at = _open(project, "evaluate")
    assert at.image, "no photo in the mistakes gallery"
    at.toggle(key="eval_gradcam").set_value(True).run()
    _ok(at, "grad-cam")
    assert at.image


def test_test_page_predicts_an_uploaded_photo(project):
    at = _open(project, "test")
    at.file_uploader(key="test_upload").upload("leaf.png", _png("red", 7), "image/png")
    at.run()
    _ok(at, "one photo")
    verdict = " ".join(m.value for m in at.markdown)
    assert "red" in verdict or "green" in verdict
    at.toggle(key="test_gradcam_upload").set_value(True).run()
    _ok(at, "grad-cam")


def test_test_page_many_photos_and_a_bad_file(project):
    at = _open(project, "test")
    uploader = at.file_uploader(key="test_upload")
    uploader.upload("a.png", _png("red", 1), "image/png")
    uploader.upload("b.png", _png("green", 2), "image/png")
    uploader.upload("c.png", b"not a photo", "image/png")
    at.run()
    assert not at.exception
    assert any("c.png" in e.value for e in at.error)  # plain message for the bad file
    table = at.dataframe[0].value
    assert table[EN["test.col_file"]].tolist() == ["a.png", "b.png"]
    assert at.get("download_button")


def test_test_page_folder(project, tmp_path):
    folder = tmp_path / "new"
    folder.mkdir()
    for i in range(3):
        (folder / f"p{i}.png").write_bytes(_png("green", 50 + i))
    at = _open(project, "test")
    at.text_input(key="test_folder_path").input(str(folder)).run()
    at.button(key="test_folder_run").click().run()
    _ok(at, "folder")
    assert len(at.dataframe[0].value) == 3
    at.text_input(key="test_folder_path").input(str(tmp_path / "missing")).run()
    at.button(key="test_folder_run").click().run()
    assert not at.exception and at.error


def test_runs_page_lists_marks_best_and_deletes(project):
    at = _open(project, "runs")
    table = at.dataframe[0].value
    run_name = Path(project["last_run"]).name
    assert table[EN["runs.col_run"]].tolist() == [run_name]
    assert table[EN["runs.col_best"]].tolist() == ["★"]
    assert "(" in table[EN["runs.metric_eval_acc"]].iloc[0]  # value with its 95% interval
    at.button(key="runs_delete").click().run()
    _ok(at, "delete asked")
    assert Path(project["last_run"]).exists()  # nothing deleted before the confirmation
    at.button(key="runs_delete_confirm").click().run()
    assert not at.exception
    assert not Path(project["last_run"]).exists()
    from ui import state

    assert state.load_project(project["id"])["runs"] == []


def test_runs_page_exports_a_model_package(project):
    at = _open(project, "runs")
    at.button(key="runs_export").click().run(timeout=300)
    _ok(at, "export")
    assert at.get("download_button"), "no download button after packing the model"


def test_test_page_camera_photo(project):
    at = _open(project, "test")
    assert not at.camera_input  # the camera is only asked for after the toggle
    at.toggle(key="test_camera_on").set_value(True).run()
    buffer = io.BytesIO()
    _photo(3, CLASSES["green"]).save(buffer, "JPEG")
    at.camera_input(key="test_camera").upload("camera.jpg", buffer.getvalue())
    at.run()
    _ok(at, "camera")
    assert any("red" in m.value or "green" in m.value for m in at.markdown)


def _stripes_png() -> bytes:
    """A photo of nothing the model was trained on: smooth stripes, not a tinted grid."""
    stripes = np.tile((np.sin(np.arange(64) / 3.0)[None, :, None] * 127 + 128), (64, 1, 3)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(stripes).save(buffer, "PNG")
    return buffer.getvalue()


def test_test_page_gives_no_answer_for_a_photo_unlike_the_training_photos(project):
    at = _open(project, "test")
    at.file_uploader(key="test_upload").upload("stripes.png", _stripes_png(), "image/png")
    at.run()
    _ok(at, "unlike photo")
    headline = EN["test.no_answer_title"].lstrip("# ")
    texts = [m.value for m in at.markdown]
    assert any(headline in text for text in texts), texts
    assert not any(text.startswith("### red") or text.startswith("### green") for text in texts)
    assert any(EN["test.model_guess"].split(":")[0] in c.value for c in at.caption)  # the guess, below
    # Among several photos, the table's answer column says "no answer" for it, the guess beside it.
    uploader = at.file_uploader(key="test_upload")
    uploader.upload("stripes.png", _stripes_png(), "image/png")
    uploader.upload("a.png", _png("red", 1), "image/png")
    at.run()
    table = at.dataframe[0].value
    answers = dict(zip(table[EN["test.col_file"]], table[EN["test.col_prediction"]]))
    assert answers["stripes.png"] == EN["test.no_answer_short"]
    assert answers["a.png"] in ("red", "green")
    assert set(table[EN["test.col_guess"]]) <= {"red", "green"}
