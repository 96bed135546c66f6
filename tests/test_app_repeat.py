"""A run started from the app is repeated by `latih repeat RUN` from its config alone, and the
Model page validates the project's TrainConfig while the person edits it.

The run is started the way a person starts it: the Model page's widgets, then the Train page's
Start button (queue_entry.submit_once -> the real background worker), on CPU.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import jobs
from core.cli import main as latih
from core.run_list import summarize_run
from core.runs import load_run

APP = Path(__file__).resolve().parent.parent / "app.py"
TIMEOUT = 180

pytestmark = pytest.mark.usefixtures("navigation_like_a_running_server")


def _project(data_path: Path) -> dict:
    from ui import state

    return state.new_project("Repeat me", data_path=str(data_path), source_kind="folder", language="en")


def _open(at: AppTest, page: str) -> AppTest:
    if not at.session_state.get("_latih_init"):
        at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, f"{page}: " + "\n".join(str(e.value) for e in at.exception)
    return at


def test_latih_repeat_reproduces_a_run_started_in_the_app(make_dataset, workspace, capsys):
    project = _project(make_dataset({"red": 12, "green": 12}))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["project"] = project["id"]
    _open(at, "data")  # the Data page scans the photos
    _open(at, "model")
    at.radio(key="model_strategy").set_value("two-stage").run()
    at.number_input(key="model_epochs").set_value(3).run()
    at.number_input(key="model_head_epochs").set_value(1).run()
    at.selectbox(key="model_image_size").set_value(64).run()
    assert not at.exception
    _open(at, "train")
    at.button(key="train_start").click().run()
    assert not at.exception, "\n".join(str(e.value) for e in at.exception)

    (run_dir,) = sorted((workspace / "runs").iterdir())
    status = jobs.wait(run_dir, timeout=900)
    assert status["state"] == "done", status
    original = load_run(run_dir)
    assert (original.config.strategy, original.config.epochs, original.config.head_epochs,
            original.config.image_size) == ("two-stage", 3, 1, 64)  # the page's choices, in config.json

    capsys.readouterr()
    assert latih(["--workspace", str(workspace), "repeat", run_dir.name, "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["run_dir"] != str(run_dir) and again["status"] == "done"
    first = summarize_run(run_dir)
    print(f"app run {run_dir.name}: val_acc {first['val_acc']}; latih repeat: val_acc {again['val_acc']}")
    assert again["val_acc"] == pytest.approx(first["val_acc"], abs=1e-9), (first, again)
    assert load_run(again["run_dir"]).config == original.config  # the same settings, from config.json alone


def test_the_model_page_says_when_a_choice_cannot_train(make_dataset):
    from ui import state

    project = _project(make_dataset({"red": 12, "green": 12}))
    state.change_fields(project, {"model/backbone": "vit_tiny_patch16_224", "settings/image_size": 128})
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["project"] = project["id"]
    _open(at, "model")
    errors = " ".join(str(e.value) for e in at.error)
    assert "only takes 224 px photos" in errors  # said on the page while editing, not by the worker later
    at.selectbox(key="model_image_size").set_value(224).run()
    assert "only takes" not in " ".join(str(e.value) for e in at.error)


def test_a_new_project_is_trainconfigs_defaults_from_the_first_click(make_dataset):
    from core.config import TrainConfig
    from ui import model_info, state

    data = make_dataset({"red": 4, "green": 4})
    project = _project(data)
    expected = TrainConfig(data_path=str(data), run_name="Repeat me", test_fraction=state.NEW_PROJECT_TEST_FRACTION,
                           backbone=project["model"]["backbone"])
    assert model_info.draft_config(project) == expected  # no second copy of any default
    state.change_fields(project, {"settings/unfreeze_blocks": 3, "settings/head_epochs": 0})
    draft = model_info.draft_config(state.load_project(project["id"]))
    assert draft == expected.replace(unfreeze_blocks=3, head_epochs=0)
    state.change_fields(project, {"settings/unfreeze_blocks": -1})
    assert "blocks to unfreeze" in model_info.config_problem(state.load_project(project["id"]))
