"""Streamlit AppTest tests of the app: every page renders, state persists, language switches.

Each test runs the real `app.py` (navigation, sidebar) in-process and switches to a page, with
LATIH_WORKSPACE in tmp_path (conftest's autouse `workspace` fixture). No training here: pages
that need a trained run are in test_app_runs.py.
"""
from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app.py"
PAGES = ["home", "data", "model", "train", "evaluate", "test", "runs"]
TIMEOUT = 120  # first imports of torch/timm in a page can be slow on a busy 2-core box


pytestmark = pytest.mark.usefixtures("navigation_like_a_running_server")


def _app(**query) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(query)
    return at


def _open(at: AppTest, page: str) -> AppTest:
    if not at.session_state.get("_latih_init"):  # first run registers the navigation
        at.run()
    at.switch_page(f"pages/{page}.py").run()
    _no_exception(at, page)
    return at


def _no_exception(at: AppTest, where: str = "") -> None:
    assert not at.exception, f"{where}: " + "\n".join(str(e.value) for e in at.exception)


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning",
                                  "error", "success") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def _catalogue(lang: str) -> dict[str, str]:
    return json.loads((REPO / "assets" / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


EN, ID = _catalogue("en"), _catalogue("id")


def _project(data_path: Path | None, **changes) -> dict:
    from ui import state

    project = state.new_project("Test project", data_path=str(data_path) if data_path else None,
                                source_kind="folder", language="en")
    if changes:
        state.update_project(project, **changes)
    return project


@pytest.mark.parametrize("page", ["data", "test"])
def test_first_run_after_a_server_start_still_goes_through_app_py(page, make_dataset):
    """A reload of /data right after the app started: the page must come with app.py's frame."""
    project = _project(make_dataset(("red", "green"), n=12))
    at = _app(project=project["id"]).run()
    at.switch_page(f"pages/{page}.py").run()
    _no_exception(at, page)
    assert at.selectbox(key="ui_lang").value == "en"  # the sidebar of app.py is there
    assert at.title[0].value == EN["data.title" if page == "data" else "test.title"]
    assert at.query_params.get("project") == project["id"]


def test_the_private_pages_switch_that_frame_relies_on_still_exists():
    """ui.components.frame() is the one user of Streamlit's private PagesManager; an upgrade
    that renames it must fail here, not silently show pages without app.py's sidebar."""
    from ui.components import pages_manager

    manager = pages_manager()
    assert manager is not None and isinstance(manager.uses_pages_directory, (bool, type(None)))


# ---- no project -----------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_a_project(page):
    at = _open(_app(), page)
    if page != "home":
        assert any(EN["common.no_project"] in i.value for i in at.info), _texts(at)


def test_home_starts_a_project_from_the_sample():
    at = _app().run()
    _no_exception(at, "home")
    assert at.title[0].value == EN["home.title"]
    at.radio(key="home_sample").set_value("leaf")
    at.button(key="home_start_sample").click().run()
    _no_exception(at, "after starting the sample")
    pid = at.query_params.get("project")
    assert pid, at.query_params
    from ui import state

    project = state.load_project(pid)
    assert project["data_path"].endswith("assets/sample/leaf")
    assert at.title[0].value == EN["data.title"]  # switched to the Data page and read the sample
    assert state.files_table_path(project).exists()
    assert "early_blight" in at.selectbox(key="data_sample_class").options  # one class at a time


def test_new_empty_project_then_folder_source(make_dataset):
    data = make_dataset(("cats", "dogs"), n=6)
    at = _app().run()
    at.text_input(key="home_project_name").input("Pets")
    at.button(key="home_new_project").click().run()
    _no_exception(at, "new project")
    assert at.title[0].value == EN["data.title"]
    at.text_input(key="data_folder_path").input(str(data)).run()
    at.button(key="data_folder_use").click().run()
    _no_exception(at, "folder source")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[EN["data.n_photos"]] == "12"
    assert metrics[EN["data.n_classes"]] == "2"


# ---- with a project on a tiny dataset --------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_a_project(page, make_dataset):
    project = _project(make_dataset(("red", "green"), n=12))
    at = _open(_app(project=project["id"]), page)
    assert at.query_params.get("project") == project["id"]
    if page in ("evaluate", "test"):
        assert any(EN["common.no_run"] in i.value for i in at.info), _texts(at)
    if page == "runs":
        assert any(EN["runs.none"] in i.value for i in at.info), _texts(at)


def test_data_page_shows_counts_samples_split(make_dataset):
    project = _project(make_dataset(("red", "green", "blue"), n=10))
    at = _open(_app(project=project["id"]), "data")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[EN["data.n_photos"]] == "30"
    assert at.selectbox(key="data_sample_class").options == ["blue", "green", "red"]
    assert len(at.get("plotly_chart")) >= 1
    at.slider(key="data_test_fraction").set_value(0.2).run()
    _no_exception(at, "split slider")
    from ui import state

    assert state.load_project(project["id"])["split"]["test_fraction"] == pytest.approx(0.2)


def test_the_data_page_parses_its_photo_table_once(make_dataset, monkeypatch):
    """The findings, the copy check and the split preview use the table the page already parsed
    (at 50,000 photos each parse costs about 0.6 s), and a rerun parses nothing."""
    from core.data import scan
    from ui import state

    parsed, real = [], scan.read_table
    monkeypatch.setattr(scan, "read_table", lambda path: parsed.append(str(path)) or real(path))
    project = _project(make_dataset(("red", "green"), n=10))
    at = _open(_app(project=project["id"]), "data")
    table = str(state.files_table_path(project))
    assert parsed.count(table) == 1, parsed
    assert {m.label: m.value for m in at.metric}[EN["data.n_photos"]] == "20"
    at.slider(key="data_test_fraction").set_value(0.2).run()  # a new split preview
    _no_exception(at, "split slider")
    assert parsed.count(table) == 1, parsed


def test_data_page_shows_duplicate_across_classes_and_fixes_it(make_dataset):
    data = make_dataset(("red", "green"), n=12)
    shutil.copy(data / "red" / "red_000.png", data / "green" / "copied_from_red.png")
    project = _project(data)
    at = _open(_app(project=project["id"]), "data")
    title = EN["finding.conflicting_labels"].split("(")[0].strip()
    shown = [e.value for e in at.error]
    assert any(title in text for text in shown), shown
    fix = [b for b in at.button if b.key and b.key.startswith("data_fix_") and "conflicting" in b.key]
    assert fix, [b.key for b in at.button]
    fix[0].click().run()
    _no_exception(at, "after the fix")
    from ui import state

    excluded = state.load_project(project["id"])["excluded"]
    assert len(excluded) == 2 and all(Path(p).exists() for p in excluded)  # left out, not deleted
    assert not any(title in e.value for e in at.error)
    assert {m.label: m.value for m in at.metric}[EN["data.n_excluded"]] == "2"


def test_data_page_reads_an_uploaded_zip(make_dataset):
    data = make_dataset(("ok", "bad"), n=5)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(data.rglob("*.png")):
            zf.write(path, f"leaves/{path.relative_to(data)}")
    project = _project(None)
    at = _open(_app(project=project["id"]), "data")
    at.file_uploader(key="data_zip_upload").upload("leaves.zip", buffer.getvalue(), "application/zip")
    at.run()
    at.button(key="data_zip_use").click().run()
    _no_exception(at, "zip upload")
    assert {m.label: m.value for m in at.metric}[EN["data.n_photos"]] == "10"


def test_data_page_bad_folder_is_a_plain_error(tmp_path):
    project = _project(None)
    at = _open(_app(project=project["id"]), "data")
    at.text_input(key="data_folder_path").input(str(tmp_path / "nowhere")).run()
    at.button(key="data_folder_use").click().run()
    _no_exception(at, "bad folder")
    assert at.error and "does not exist" in at.error[0].value


def test_model_page_preselects_the_recommended_strategy(make_dataset):
    from core.config import recommend_strategy

    project = _project(make_dataset(("red", "green"), n=12))
    at = _open(_app(project=project["id"]), "model")
    expected = recommend_strategy(17)[0]
    assert at.radio(key="model_strategy").value == expected == "feature-extraction"
    assert any(EN["model.offline_ready"] in m.value for m in at.markdown)


def test_model_page_follows_the_engine_recommendation(make_dataset, monkeypatch):
    import core.config

    monkeypatch.setattr(core.config, "recommend_strategy", lambda n: ("two-stage", "because"))
    project = _project(make_dataset(("red", "green"), n=12))
    at = _open(_app(project=project["id"]), "model")
    assert at.radio(key="model_strategy").value == "two-stage"


def test_model_choices_persist_in_the_project(make_dataset):
    from ui import state

    project = _project(make_dataset(("red", "green"), n=12))
    at = _open(_app(project=project["id"]), "model")
    at.radio(key="model_strategy").set_value("fine-tune").run()
    at.number_input(key="model_epochs").set_value(7).run()
    at.button(key="model_choose_mobilenetv3_large_100").click().run()
    _no_exception(at, "model choices")
    saved = state.load_project(project["id"])
    assert saved["model"] == {"backbone": "mobilenetv3_large_100", "strategy": "fine-tune"}
    assert saved["settings"]["epochs"] == 7
    # a new browser session (reload / restart) on the same URL sees the same choices
    again = _open(_app(project=project["id"]), "model")
    assert again.radio(key="model_strategy").value == "fine-tune"
    assert again.number_input(key="model_epochs").value == 7


def test_screening_class_chosen_on_the_model_page_reaches_the_training_config(make_dataset):
    from ui import model_info, state

    project = _project(make_dataset(("glaucoma", "normal"), n=12))
    at = _open(_app(project=project["id"]), "model")
    assert at.selectbox(key="model_positive_class").value is None  # ordinary sorting by default
    at.selectbox(key="model_positive_class").set_value("glaucoma").run()
    at.slider(key="model_target_sensitivity").set_value(0.9).run()
    _no_exception(at, "screening choice")
    saved = state.load_project(project["id"])
    config = model_info.build_config(saved, state.load_files_table(saved))
    assert config.positive_class == "glaucoma" and config.target_sensitivity == 0.9


def test_every_technical_term_has_help(make_dataset):
    project = _project(make_dataset(("red", "green"), n=12))
    at = _open(_app(project=project["id"]), "model")
    for key in ("model_strategy", "model_epochs", "model_lr", "model_batch_size", "model_image_size",
                "model_augment", "model_patience"):
        widget = at.get_widget(key) if hasattr(at, "get_widget") else None
        widget = widget or next(w for kind in ("radio", "number_input", "select_slider", "selectbox")
                                for w in getattr(at, kind) if w.key == key)
        assert widget.help, f"{key} has no help text"


def test_language_switch_changes_text_and_persists(make_dataset):
    from ui import state

    project = _project(make_dataset(("red", "green"), n=12))
    at = _open(_app(project=project["id"]), "data")
    assert at.title[0].value == EN["data.title"]
    assert EN["data.findings_title"] in [s.value for s in at.subheader]
    at.selectbox(key="ui_lang").set_value("id").run()
    _no_exception(at, "language switch")
    assert ID["data.findings_title"] in [s.value for s in at.subheader]
    assert at.query_params.get("lang") == "id"
    assert state.load_project(project["id"])["language"] == "id"
    # a new session opened on the project (no lang in the URL) comes back in Bahasa Indonesia
    again = _open(_app(project=project["id"]), "model")
    assert again.title[0].value == ID["model.title"]
    assert again.selectbox(key="ui_lang").value == "id"


def test_language_from_the_url_without_a_project():
    at = _app(lang="id").run()
    _no_exception(at, "home in id")
    assert at.subheader[0].value == ID["home.new_title"]


def test_train_page_submits_to_the_background_job(make_dataset, monkeypatch, workspace):
    """Start calls core.jobs.submit (faked: no worker, no training) and the page follows the run."""
    import os

    from core import jobs, runs

    submitted = []

    def fake_submit(config, workspace=None):
        run_dir = runs.new_run_dir(config)
        run_dir.mkdir(parents=True, exist_ok=True)
        config.to_json(run_dir / "config.json")
        runs.write_status(run_dir, "running", "training", pid=os.getpid())
        submitted.append(config)
        return run_dir

    monkeypatch.setattr(jobs, "submit", fake_submit)
    project = _project(make_dataset(("red", "green"), n=12))
    at = _open(_app(project=project["id"]), "train")
    at.button(key="train_start").click().run()
    _no_exception(at, "start")
    assert len(submitted) == 1 and submitted[0].strategy == "feature-extraction"
    assert submitted[0].data_path == project["data_path"]
    from ui import state

    run_dir = state.load_project(project["id"])["last_run"]
    assert run_dir and Path(run_dir).is_dir()
    assert at.button(key="train_start").disabled
    assert at.button(key="train_stop")
    # a fresh session (page reload) reattaches to the same run
    again = _open(_app(project=project["id"]), "train")
    assert any(Path(run_dir).name in m.value for m in again.markdown)
    again.button(key="train_stop").click().run()
    assert (Path(run_dir) / "STOP").exists()


def test_train_page_passes_excluded_photos_in_the_config(make_dataset, monkeypatch):
    from core import jobs

    captured = {}

    def fake_submit(config, workspace=None):
        captured["config"] = config
        raise jobs.RunError("queue is full (test)")  # shown as a plain error

    monkeypatch.setattr(jobs, "submit", fake_submit)
    data = make_dataset(("red", "green"), n=12)
    project = _project(data)
    _open(_app(project=project["id"]), "data")  # reads the photos
    from ui import state

    left_out = str(data / "red" / "red_000.png")
    state.update_project(state.load_project(project["id"]), excluded=[left_out])
    at = _open(_app(project=project["id"]), "train")
    at.button(key="train_start").click().run()
    _no_exception(at, "start with exclusions")
    assert at.error and "queue is full" in at.error[0].value
    config = captured["config"]
    assert Path(config.data_path) == data.resolve() or Path(config.data_path) == data
    assert config.exclude == (left_out,)
    assert (data / "red" / "red_000.png").exists()  # left out, never deleted


def test_data_page_classes_and_photos_dropped_per_class(make_image, tmp_path):
    from ui import state

    project = _project(None)
    at = _open(_app(project=project["id"]), "data")
    for name in ("healthy", "sick"):
        at.text_input(key="data_new_class").input(name)
        at.button(key="data_add_class").click().run()
        _no_exception(at, f"add class {name}")
    for i, uploader_key in enumerate(("data_class_upload_0", "data_class_upload_1")):
        uploader = at.file_uploader(key=uploader_key)
        for j in range(3):
            path = make_image(tmp_path / f"c{i}_{j}.png", seed=10 * i + j, tint=(200, 40 * i, 40))
            uploader.upload(path.name, path.read_bytes(), "image/png")
    at.run()
    at.button(key="data_classes_use").click().run()
    _no_exception(at, "use classes")
    saved = state.load_project(project["id"])
    assert Path(saved["data_path"]).parent == state.project_dir(project["id"])  # copied into the project
    assert {m.label: m.value for m in at.metric}[EN["data.n_photos"]] == "6"
    assert sorted(p.name for p in Path(saved["data_path"]).iterdir()) == ["healthy", "sick"]


def test_train_page_says_when_the_run_waits_in_the_queue(make_dataset, monkeypatch):
    """Another training holds the machine: the new run is queued and the page says so."""
    import os

    from core import jobs, runs
    from core.config import TrainConfig

    project = _project(make_dataset(("red", "green"), n=12))
    other = runs.new_run_dir(TrainConfig(data_path="elsewhere", run_name="other project"))
    other.mkdir(parents=True, exist_ok=True)
    runs.write_status(other, "running", "training", pid=os.getpid())
    queued = []

    def fake_submit(config, workspace=None):
        run_dir = runs.new_run_dir(config)
        run_dir.mkdir(parents=True, exist_ok=True)
        runs.write_status(run_dir, "queued", "waiting for its turn")
        queued.append(run_dir)
        return run_dir

    monkeypatch.setattr(jobs, "submit", fake_submit)
    monkeypatch.setattr(jobs, "active_job", lambda workspace=None: other)
    monkeypatch.setattr(jobs, "job_status", lambda run_dir: {
        "state": "queued" if Path(run_dir) in queued else "running", "position": 1, "message": "",
        "started": None, "updated": None, "run_dir": str(run_dir)})
    at = _open(_app(project=project["id"]), "train")
    assert any(other.name in i.value for i in at.info)  # "another training is running"
    at.button(key="train_start").click().run()
    _no_exception(at, "queued")
    assert queued
    assert any(EN["train.queued"].split(":")[0] in i.value for i in at.info), [i.value for i in at.info]


def test_data_page_lists_left_out_photos_by_class_and_file_not_the_workspace_path(make_dataset):
    data = make_dataset(("red", "green"), n=12)
    shutil.copy(data / "red" / "red_000.png", data / "green" / "copied_from_red.png")
    project = _project(data)
    at = _open(_app(project=project["id"]), "data")
    fix = [b for b in at.button if b.key and b.key.startswith("data_fix_") and "conflicting" in b.key]
    fix[0].click().run()
    _no_exception(at, "after the fix")
    tables = [d.value for d in at.dataframe if EN["data.col_file"] in getattr(d.value, "columns", [])]
    assert tables, "no table of left-out photos"
    shown = sorted(tables[0][EN["data.col_file"]].tolist())
    assert shown == ["green/copied_from_red.png", "red/red_000.png"], shown
