"""AppTest tests of issue 9 in the app: hostile names shown as plain text on every page, two
tabs on one project (field-wise writes, a stale tab is told and reloaded, Start joins the
project's run), a dead run shown as stopped unexpectedly with a Resume button.

The browser-level checks (no request reaches a recording server, nothing drawn as a link,
image, formula or colour; two real tabs) are in tests/test_e2e_hardening.py.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from ui.safe_text import md

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app.py"
TIMEOUT = 180
EN = json.loads((REPO / "assets" / "i18n" / "en.json").read_text(encoding="utf-8"))
TRACKER = "http:127.0.0.2:9"  # browsers read "http:host" as http://host/; a folder name cannot hold "/"
HOSTILE_CLASSES = {f"![t]({TRACKER})": (220, 40, 40),
                   f"[click]({TRACKER}) :red[alert] $x^2$ **bold**": (40, 200, 60)}
HOSTILE_FILE = f"![f]({TRACKER}) \u202egnp.exe.png"


def _photo(seed: int, tint) -> Image.Image:
    grid = np.random.default_rng(seed).integers(0, 256, (8, 8, 3))
    return Image.fromarray((grid * 0.6 + np.array(tint) * 0.4).astype(np.uint8)).resize((64, 64), Image.NEAREST)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """(dataset folder with hostile class and file names, a run trained on it)."""
    from core.config import TrainConfig
    from core.train import train

    root = tmp_path_factory.mktemp("hostile")
    data = root / "photos"
    for k, (label, tint) in enumerate(HOSTILE_CLASSES.items()):
        (data / label).mkdir(parents=True)
        for i in range(12):
            _photo(1000 * k + i, tint).save(data / label / f"{label[:6]}_{i:02d}.png")
    first = next(iter(HOSTILE_CLASSES))
    _photo(77, (220, 40, 40)).save(data / first / HOSTILE_FILE)
    config = TrainConfig(data_path=str(data), strategy="feature-extraction", epochs=2, image_size=64, batch_size=8,
                         val_fraction=0.25, test_fraction=0.25, augment="none", early_stopping_patience=0)
    result = train(config, workspace=root / "ws")
    assert result.status == "done"
    (data / first / f"[junk]({TRACKER}).png").write_bytes(b"not a photo at all")  # a finding that names it
    return data, Path(result.run_dir)


pytestmark = pytest.mark.usefixtures("navigation_like_a_running_server")


def _project(data: Path, run: Path | None, workspace: Path, name: str = "![p](http:127.0.0.2:9) **Clinic**"):
    from ui import state

    project = state.new_project(name, data_path=str(data), source_kind="folder", language="en")
    if run is not None:
        copy = workspace / "runs" / run.name
        shutil.copytree(run, copy)
        state.add_run(project, copy)
    return state.load_project(project["id"])


def _open(pid: str, page: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["project"] = pid
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, f"{page}: " + "\n".join(str(e.value) for e in at.exception)
    return at


def _markdown_texts(at: AppTest) -> list[str]:
    """Every text the browser renders as Markdown: bodies, alerts, labels, image captions."""
    texts = [str(e.value) for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning",
                                       "error", "success", "toast") for e in getattr(at, kind)]
    texts += [str(e.label) for kind in ("tabs", "expander", "button", "metric") for e in getattr(at, kind)]
    for element in at.get("image"):
        texts += [img.caption for img in element.proto.imgs]
    return texts


def _assert_inert(at: AppTest, where: str) -> str:
    texts = _markdown_texts(at)
    joined = "\n".join(texts)
    for name in [*HOSTILE_CLASSES, HOSTILE_FILE, "![p](http:127.0.0.2:9)", "**Clinic**"]:
        assert name not in joined, f"{where}: {name!r} reaches Markdown unescaped"
    for raw in ("](http:127.0.0.2", "![", ":red[", "$x^2$", "**bold**", "\u202e"):
        assert raw not in joined, f"{where}: {raw!r} reaches Markdown unescaped"
    return joined


@pytest.mark.parametrize("page", ["data", "model", "train", "evaluate", "test", "runs"])
def test_hostile_names_are_plain_text_on_every_page(page, hostile, workspace):
    data, run = hostile
    project = _project(data, run, workspace)
    at = _open(project["id"], page)
    if page == "test":
        buffer = io.BytesIO()
        _photo(5, (220, 40, 40)).save(buffer, "PNG")
        at.file_uploader(key="test_upload").upload(f"![u]({TRACKER}).png", buffer.getvalue(), "image/png")
        at.run()
        assert not at.exception
    joined = _assert_inert(at, page)
    assert md("**Clinic**") in joined  # the project name is shown (sidebar), escaped
    if page == "data":
        assert md(next(iter(HOSTILE_CLASSES))) in joined  # class tabs show the name, escaped
        assert md(f"[junk]({TRACKER}).png") in joined  # the finding names the bad file, escaped
    if page == "test":
        assert any(md(c) in joined for c in HOSTILE_CLASSES)  # the verdict names the class, escaped
        assert md(f"![u]({TRACKER}).png") in joined  # the photo's caption


# ---------------------------------------------------------------------------------------
# two tabs on one project
# ---------------------------------------------------------------------------------------
def test_stale_tab_is_told_and_reloads_and_never_undoes_the_other_tab(make_dataset, workspace):
    from ui import state

    data = make_dataset(("red", "green"), n=12)
    project = _project(data, None, workspace, name="Two tabs")
    pid = project["id"]
    old, new = _open(pid, "model"), _open(pid, "model")
    new.number_input(key="model_epochs").set_value(7).run()
    assert state.load_project(pid)["settings"]["epochs"] == 7
    new.number_input(key="model_epochs").set_value(2).run()
    # the older tab changes another setting: refused, told, and shown the saved values
    old.number_input(key="model_patience").set_value(9).run()
    assert not old.exception
    assert any(EN["hardening.stale_reloaded"] in w.value for w in old.warning)
    saved = state.load_project(pid)["settings"]
    assert saved["epochs"] == 2 and saved["early_stopping_patience"] == 5  # nothing lost, nothing stale written
    assert old.number_input(key="model_epochs").value == 2  # reloaded
    old.number_input(key="model_patience").set_value(9).run()  # now up to date: saved, and only that field
    saved = state.load_project(pid)["settings"]
    assert saved["epochs"] == 2 and saved["early_stopping_patience"] == 9
    # the Data page's split sliders: validation share 0.25 in one tab survives the other
    old_data, new_data = _open(pid, "data"), _open(pid, "data")
    new_data.slider(key="data_val_fraction").set_value(0.25).run()
    old_data.slider(key="data_test_fraction").set_value(0.2).run()
    split = state.load_project(pid)["split"]
    assert split["val_fraction"] == 0.25 and split["test_fraction"] == 0.1
    assert old_data.slider(key="data_val_fraction").value == 0.25


def test_start_in_a_stale_tab_joins_the_projects_run(make_dataset, workspace, monkeypatch):
    from core import jobs, runs
    from ui import state

    submitted = []

    def fake_submit(config, workspace=None):  # a run that stays "running" without training
        run_dir = runs.new_run_dir(config)
        runs.write_status(run_dir, "running", "training", pid=os.getpid())
        submitted.append(run_dir)
        return run_dir

    monkeypatch.setattr(jobs, "submit", fake_submit)
    data = make_dataset(("red", "green"), n=12)
    pid = _project(data, None, workspace, name="Start twice")["id"]
    first, stale = _open(pid, "train"), _open(pid, "train")
    first.button(key="train_start").click().run()
    stale.button(key="train_start").click().run()  # its button was drawn enabled
    assert not stale.exception
    assert len(submitted) == 1  # one training, not two
    assert state.load_project(pid)["last_run"] == str(submitted[0])
    assert any(md(submitted[0].name) in m.value for m in stale.markdown)  # the stale tab shows that run
    stale.button(key="train_start_another").click().run()  # asking for another is still possible
    assert len(submitted) == 2


def test_dead_run_says_stopped_unexpectedly_and_offers_resume(make_dataset, workspace, monkeypatch):
    from core import jobs, runs
    from core.callbacks import FunctionCallback
    from core.config import TrainConfig
    from core.train import train

    data = make_dataset(("red", "green"), n=12)

    def crash(ctx, metrics):
        if metrics["epoch"] == 2:
            raise RuntimeError("power cut")

    config = TrainConfig(data_path=str(data), strategy="feature-extraction", epochs=4, image_size=64, batch_size=8,
                         val_fraction=0.25, augment="none", early_stopping_patience=0)
    with pytest.raises(RuntimeError):
        train(config, callbacks=[FunctionCallback(on_epoch_end=crash)])
    run = next((workspace / "runs").iterdir())
    gone = subprocess.Popen(["true"])
    gone.wait()
    runs.write_status(run, "running", "preparing the photos", pid=gone.pid)  # as a kill -9 leaves it
    from ui import state

    project = _project(data, None, workspace, name="Dead")
    state.add_run(project, run)
    started = []
    monkeypatch.setattr(jobs, "start_worker", lambda workspace=None: started.append(workspace))
    at = _open(project["id"], "train")
    assert any(EN["hardening.died"] in e.value for e in at.error)
    at.button(key="train_resume").click().run()
    assert not at.exception
    status = runs.read_status(run)
    assert status["state"] == "queued" and status["resume"] is True and started
    assert run in jobs.queue(workspace)
    # its model (best epoch before the crash) is usable on the Test page, with a warning
    evaluate = _open(project["id"], "test")
    assert any(EN["hardening.unfinished_model"].split("(")[0].strip() in w.value for w in evaluate.warning)
