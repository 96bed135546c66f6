"""AppTest (in-process) checks of issue 8's pages: the group pattern and its preview on the
Data page, the re-split after a group_leak finding, and the Model page preselecting the
strategy that the photos' estimate recommends (with its recipe reaching the TrainConfig)."""
from __future__ import annotations

import pytest

from tests.conftest import TINTS, generated_image, save_image
from tests.test_app_pages import EN, _app, _no_exception, _open, _project  # noqa: F401

pytestmark = pytest.mark.usefixtures("navigation_like_a_running_server")  # AppTest keeps the clicks


def _clinic(root, split_of=None):
    for patient in range(12):
        label = "glaucoma" if patient % 2 else "normal"
        for k, side in enumerate(("left", "right")):
            folder = root / (split_of(patient, k) if split_of else "") / label
            save_image(generated_image(patient * 2 + k, 64, TINTS[patient % 2]), folder / f"{patient:04d}_{side}.png")
    return root


def test_data_page_group_pattern_preview_and_apply(tmp_path):
    from ui import state

    project = _project(_clinic(tmp_path / "clinic"))
    at = _open(_app(project=project["id"]), "data")
    assert any("look grouped" in i.value for i in at.info)  # the eye-pair suggestion
    at.selectbox(key="groups_kind").set_value("regex").run()
    at.text_input(key="groups_regex").input(r"^(\d+)_").run()
    _no_exception(at, "regex")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[EN["groups.n_groups"]] == "12" and metrics[EN["groups.n_alone"]] == "0"
    preview = next(d.value for d in at.dataframe if EN["groups.col_group"] in d.value.columns)
    assert list(preview.iloc[0]) == ["0000", "0000_left.png, 0000_right.png"]
    at.button(key="groups_apply").click().run()
    _no_exception(at, "apply")
    assert state.load_project(project["id"])["groups"] == r"regex:^(\d+)_"


def test_shipped_split_that_leaks_a_patient_offers_a_resplit(tmp_path):
    from ui import model_info, state

    root = _clinic(tmp_path / "shipped", split_of=lambda patient, k: "val" if patient in (3, 4) and k == 1 else "train")
    project = _project(root, groups="eye-pair")
    at = _open(_app(project=project["id"]), "data")
    warnings = [w.value for w in at.warning]
    assert any(r"2 groups have photos in more than one split" in w.replace("\\", "") for w in warnings), warnings
    at.button(key="groups_resplit").click().run()
    _no_exception(at, "resplit")
    saved = state.load_project(project["id"])
    assert saved["resplit"] is True
    config = model_info.build_config(saved, state.load_files_table(saved))
    assert config.groups == "eye-pair" and config.resplit


def test_model_page_preselects_the_strategy_the_photos_call_for(tmp_path, workspace):
    import json

    from core.background import STATUS_FILE
    from core.estimate import RESULT_FILE, estimate, job_dir
    from ui import model_info, state

    root = _clinic(tmp_path / "clinic")
    project = _project(root)
    result = estimate(str(root), n_splits=3, n_repeats=1, curve=False)  # the real probe on these photos
    folder = job_dir(model_info.training_data_path(project), "")
    folder.mkdir(parents=True)
    (folder / RESULT_FILE).write_text(json.dumps(result))
    (folder / STATUS_FILE).write_text(json.dumps({"state": "done", "message": ""}))
    at = _open(_app(project=project["id"]), "model")
    advice = result["advice"]
    assert at.radio(key="model_strategy").value == advice["strategy"]
    shown = [i.value for i in at.info]
    assert any(EN["strategy." + advice["strategy"]] in text and advice["code"] != "" for text in shown), shown
    saved = state.load_project(project["id"])
    assert saved["model"]["strategy"] == advice["strategy"]
    config = model_info.build_config(saved, state.load_files_table(saved))
    assert config.strategy == advice["strategy"]


def test_train_summary_shows_the_epochs_the_recipe_will_train(tmp_path):
    """The photos' recipe sets 4 epochs: the Train page's summary says 4, as the Start button
    trains (it said the project's default, 15, while the recipe trained 4)."""
    from core.config import default
    from ui import model_info, state

    root = _clinic(tmp_path / "clinic")
    recipe = {"strategy": "full", "epochs": 4, "lr": 1e-4}
    project = _project(root, model={"strategy": "full", "recipe": recipe})
    saved = state.load_project(project["id"])
    assert model_info.build_config(saved, state.load_files_table(saved)).epochs == 4 != default("epochs")
    at = _open(_app(project=project["id"]), "train")
    _no_exception(at, "train")
    shown = [m.value for m in at.markdown]
    assert "**4**" in shown and f"**{default('epochs')}**" not in shown, shown
