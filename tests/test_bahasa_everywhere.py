"""In Bahasa Indonesia mode nothing English is shown: every page (with a trained run and a
dataset with findings), and `latih data check` / `latih train` with LATIH_LANG=id.

A string fails when it is an English catalogue value, or has a word found in no id.json value
(after user data, numbers and tests/bahasa_scan.ALLOWED are set aside); see tests/bahasa_scan.py.
One real, tiny training (2 classes x 12 generated photos, feature extraction, 2 epochs).
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests import bahasa_scan

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app.py"
TIMEOUT = 240
CLASSES = {"red": (220, 40, 40), "green": (40, 200, 60)}

pytestmark = pytest.mark.usefixtures("navigation_like_a_running_server")


def _photo(seed: int, tint, size: int = 64) -> Image.Image:
    grid = np.random.default_rng(seed).integers(0, 256, (8, 8, 3))
    return Image.fromarray((grid * 0.6 + np.array(tint) * 0.4).astype(np.uint8)).resize((size, size), Image.NEAREST)


def _png(seed: int, tint, size: int = 64) -> bytes:
    buffer = io.BytesIO()
    _photo(seed, tint, size).save(buffer, "PNG")
    return buffer.getvalue()


def _photos_with_findings(root: Path) -> Path:
    """red/green as trained, plus what the checks flag: a copy within a class, a photo copied
    into the other class, a tiny photo, a file that is not a photo, and a class of 3 photos."""
    data = root / "photos"
    for k, (label, tint) in enumerate(CLASSES.items()):
        (data / label).mkdir(parents=True)
        for i in range(12):
            _photo(1000 * k + i, tint).save(data / label / f"{label}_{i:02d}.png")
    shutil.copy(data / "red" / "red_00.png", data / "red" / "red_copy.png")
    shutil.copy(data / "red" / "red_01.png", data / "green" / "wrong_class.png")
    _photo(77, CLASSES["green"], size=32).save(data / "green" / "tiny.png")
    (data / "green" / "notes.png").write_text("not a photo")
    (data / "blue").mkdir()
    for i in range(3):
        _photo(3000 + i, (40, 70, 220)).save(data / "blue" / f"blue_{i}.png")
    return data


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from core.config import TrainConfig
    from core.train import train

    root = tmp_path_factory.mktemp("bahasa-run")
    clean = root / "clean"
    for k, (label, tint) in enumerate(CLASSES.items()):
        (clean / label).mkdir(parents=True)
        for i in range(12):
            _photo(1000 * k + i, tint).save(clean / label / f"{label}_{i:02d}.png")
    config = TrainConfig(data_path=str(clean), strategy="feature-extraction", epochs=2, image_size=64,
                         batch_size=8, val_fraction=0.25, test_fraction=0.25, augment="none",
                         early_stopping_patience=0)
    result = train(config, workspace=root / "ws")
    assert result.status == "done", result
    data = _photos_with_findings(root)
    # the photo estimate (Model page advice, Evaluate's estimate), by the background job's own code
    from core import estimate

    folder = estimate.job_dir(str(data), "", root / "ws")
    folder.mkdir(parents=True)
    (folder / "request.json").write_text(json.dumps({"data_path": str(data), "groups": "", "n_splits": 2,
                                                     "n_repeats": 1, "workspace": str(root / "ws")}))
    estimate._worker(folder)
    assert estimate.read_job(folder)["state"] == "done", (folder / "job.json").read_text()
    return data, Path(result.run_dir), folder


@pytest.fixture
def project(trained, workspace):
    from ui import state

    data, run, estimate_folder = trained
    copy = workspace / "runs" / run.name
    shutil.copytree(run, copy)
    shutil.copytree(estimate_folder, workspace / "estimates" / estimate_folder.name)
    project = state.new_project("Warna", data_path=str(data), source_kind="folder", language="id")
    state.add_run(project, copy)
    return state.load_project(project["id"])


def _allowed(project) -> set[str]:
    data = Path(project["data_path"])
    names = [project["name"], Path(project["last_run"]).name, *(p.name for p in data.rglob("*")),
             "a.png", "b.png", "c.png", "p0.png", "p1.png", "p2.png"]  # uploaded on Test
    return bahasa_scan.user_words(*names)


def _open(project: dict, page: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["project"] = project["id"]
    at.query_params["lang"] = "id"
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, f"{page}: " + "\n".join(str(e.value) for e in at.exception)
    return at


def _shown_on_every_page(project, tmp_path) -> list[tuple[str, str]]:
    shown: list[tuple[str, str]] = []
    for page in ("home", "data", "model", "train", "evaluate", "runs", "label"):
        at = _open(project, page)
        shown += bahasa_scan.strings_of_app(at, page)
        if page == "data":  # open every finding's photo list and the left-out photos
            for i, finding in enumerate(at.expander):
                shown += [(f"data/expander{i}", finding.label)]
    # Test: one photo (headline, top-k chart), several photos (table), a folder (table)
    at = _open(project, "test")
    at.file_uploader(key="test_upload").upload("a.png", _png(7, CLASSES["red"]), "image/png")
    at.run()
    shown += bahasa_scan.strings_of_app(at, "test/one")
    uploader = at.file_uploader(key="test_upload")
    uploader.upload("b.png", _png(8, CLASSES["green"]), "image/png")
    uploader.upload("c.png", b"not a photo", "image/png")
    at.run()
    shown += bahasa_scan.strings_of_app(at, "test/many")
    folder = tmp_path / "new"
    folder.mkdir()
    for i in range(3):
        (folder / f"p{i}.png").write_bytes(_png(50 + i, CLASSES["green"]))
    at.text_input(key="test_folder_path").input(str(folder)).run()
    at.button(key="test_folder_run").click().run()
    assert not at.exception
    shown += bahasa_scan.strings_of_app(at, "test/folder")
    return shown


def test_every_page_in_bahasa_shows_no_english(project, tmp_path):
    shown = _shown_on_every_page(project, tmp_path)
    pages = {where.split("/")[0] for where, _ in shown}
    assert {"home", "data", "model", "train", "evaluate", "runs", "label", "test"} <= pages
    assert len(shown) > 300, f"suspiciously little text collected: {len(shown)}"
    bad = bahasa_scan.report(shown, _allowed(project))
    assert not bad, f"{len(bad)} English or uncatalogued strings in Bahasa mode:\n" + "\n".join(bad)


def test_the_scan_catches_english(project):
    """The checker itself: an English finding body and a pandas None are caught."""
    allowed = _allowed(project)
    assert bahasa_scan.problems("2 photos cannot be read and will be left out", allowed)
    assert bahasa_scan.problems("None", allowed)
    assert bahasa_scan.problems(bahasa_scan.EN["nav.home"], allowed)
    assert not bahasa_scan.problems(bahasa_scan.ID["nav.home"], allowed)
    assert not bahasa_scan.problems("red_01.png 93%", allowed)


def test_runs_dropdowns_follow_a_language_switch(project):
    """The browser keeps a widget's option labels while its identity stays the same: after a
    language switch each translated dropdown on Runs is a new widget, with the choice kept."""
    from ui import state

    state.save_project({**project, "language": "en"})
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["project"] = project["id"]
    at.run()
    at.switch_page("pages/runs.py").run()
    ID, EN = bahasa_scan.ID, bahasa_scan.EN

    def box(label):
        return next(s for s in at.selectbox if s.label == label)

    box(EN["runs.curve_metric"]).set_value("val_loss").run()
    before = {box(EN["runs.best_by"]).id, box(EN["runs.curve_metric"]).id}
    at.selectbox(key="ui_lang").set_value("id").run()
    assert not at.exception
    best, curve = box(ID["runs.best_by"]), box(ID["runs.curve_metric"])
    assert {best.id, curve.id}.isdisjoint(before), "same widget identity: the browser keeps the English labels"
    assert ID["runs.metric_eval_acc"] in best.options and EN["runs.metric_eval_acc"] not in best.options
    assert ID["curve.val_acc"] in curve.options and EN["curve.val_acc"] not in curve.options
    assert curve.value == "val_loss"  # the choice survives the switch


def _latih(*args, workspace: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "LATIH_WORKSPACE": str(workspace), "LATIH_LANG": "id", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "core.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def test_cli_data_check_and_train_speak_bahasa(trained, workspace, tmp_path):
    data, _, _ = trained
    allowed = bahasa_scan.user_words(*(p.name for p in data.rglob("*")), data, workspace)
    check = _latih("data", "check", data, workspace=workspace)
    assert check.returncode in (0, 1), check.stderr
    clean = tmp_path / "clean"
    for k, (label, tint) in enumerate(CLASSES.items()):
        (clean / label).mkdir(parents=True)
        for i in range(8):
            _photo(1000 * k + i, tint).save(clean / label / f"{label}_{i:02d}.png")
    train = _latih("train", clean, "--image-size", "64", "--epochs", "2", "--augment", "none", workspace=workspace)
    assert train.returncode == 0, train.stderr
    runs = list((workspace / "runs").iterdir())
    from core.config import STRATEGIES

    # the run folders, and the --strategy values that the CLI names so that they can be typed
    allowed |= bahasa_scan.user_words(*(r.name for r in runs), clean, *STRATEGIES)
    lines = [("data check", line) for line in (check.stdout + check.stderr).splitlines()]
    lines += [("train", line) for line in (train.stdout + train.stderr).splitlines()]
    assert len(lines) > 5
    bad = bahasa_scan.report([(w, _no_bar(s)) for w, s in lines], allowed)
    assert not bad, f"{len(bad)} English or uncatalogued CLI lines with LATIH_LANG=id:\n" + "\n".join(bad)


def _no_bar(line: str) -> str:
    """A tqdm line without its terminal codes and its drawn bar; its label, unit and postfix stay."""
    line = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", " ", line)
    return re.sub(r"\|[^|]*\|", " ", line)


# Bahasa values equal to the English ones, each the same word in both languages.
SAME_IN_BOTH = {
    "core.joined": "two messages joined by a semicolon: no words",
    "json.named": "a file name and what is wrong with it: no words",
    "home.title": "Latih, the product's name",
    "data.title": "'Data' is an Indonesian word", "nav.data": "'Data' is an Indonesian word",
    "model.title": "'Model' is an Indonesian word", "nav.model": "'Model' is an Indonesian word",
    "card.data_title": "'Data' is an Indonesian word", "card.model_title": "'Model' is an Indonesian word",
    "runs.col_status": "'Status' is an Indonesian word",
    "test.tab_folder": "'Folder' is in the KBBI and is what Indonesian file managers say",
    "metric.f1": "an abbreviation used as is in Indonesian", "metric.pr_auc": "an abbreviation used as is",
    "metric.roc_auc": "an abbreviation used as is", "estimate.metric.auc": "an abbreviation used as is",
    "core.names": "only a placeholder (a list of file names)",
    "decode.named": "only placeholders (a file name and its problem)",
    "core.state_why": "only placeholders (a run's state and its message)",
}


def test_bahasa_values_equal_to_english_are_the_same_word_in_both_languages():
    en, idn = bahasa_scan.EN, bahasa_scan.ID
    same = sorted(k for k in en if en[k].strip() == idn[k].strip())
    assert set(same) <= set(SAME_IN_BOTH), f"English left in id.json: {sorted(set(same) - set(SAME_IN_BOTH))}"


def test_model_card_in_bahasa_has_no_english(project):
    """The exported card (Runs page: in the page's language) outside its code: code blocks and
    `identifiers` (backbone, strategy and weights names, pip commands) are the same in any language."""
    from core.export import model_card

    card = model_card(project["last_run"], lang="id")
    prose = re.sub(r"```.*?```", " ", card, flags=re.S)
    prose = re.sub(r"`[^`]*`", " ", prose)
    lines = [("model card", line) for line in prose.splitlines() if line.strip()]
    assert len(lines) > 15
    bad = bahasa_scan.report(lines, _allowed(project))
    assert not bad, f"{len(bad)} English lines in the Bahasa model card:\n" + "\n".join(bad)
    assert model_card(project["last_run"], lang="en").startswith("# Model card: ")


def test_cli_setting_errors_speak_bahasa(tmp_path):
    """A wrong setting on the command line (LATIH_LANG=id) is said in Bahasa, every part of it."""
    data = tmp_path / "photos"
    for k, (label, tint) in enumerate(CLASSES.items()):
        (data / label).mkdir(parents=True)
        for i in range(3):
            _photo(100 * k + i, tint).save(data / label / f"{i}.png")
    out = _latih("train", data, "--epochs", "0", "--batch-size", "0", workspace=tmp_path / "ws", timeout=120)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    text = (out.stdout + out.stderr).strip()
    assert bahasa_scan.ID["config.bad.epochs"].split(" {")[0] in text and "must be" not in text, text
    bad = bahasa_scan.report([("train", line) for line in text.splitlines()], bahasa_scan.user_words(data))
    assert not bad, "\n".join(bad)


def test_cli_input_errors_speak_bahasa(tmp_path):
    """The usual wrong inputs (LATIH_LANG=id): a path that is not there, a file for a folder, a
    folder without class folders, predicting with a run that does not exist. Each is one Bahasa
    line (no English, no traceback) and a usage exit code."""
    (tmp_path / "notes.txt").write_text("not photos")
    (tmp_path / "flat").mkdir()
    _photo(1, CLASSES["red"]).save(tmp_path / "flat" / "leaf.png")
    missing, a_file, flat = tmp_path / "nowhere", tmp_path / "notes.txt", tmp_path / "flat"
    cases = {
        "data check, missing path": (("data", "check", missing), "err.path_missing"),
        "data check, a file": (("data", "check", a_file), "err.scan.is_file"),
        "data check, no class folders": (("data", "check", flat), "err.layout.no_classes"),
        "train, missing path": (("train", missing), "err.path_missing"),
        "train, missing config": (("train", flat, "--config", tmp_path / "nope.json"), "err.cli.file_missing"),
        "predict, missing run": (("predict", "no-such-run", a_file), "err.run.not_found"),
    }
    allowed = bahasa_scan.user_words(tmp_path, "nowhere", "notes.txt", "flat", "nope.json", "no-such-run")
    for what, (args, key) in cases.items():
        out = _latih(*args, workspace=tmp_path / "ws", timeout=120)
        text = (out.stdout + out.stderr).strip()
        assert out.returncode == 2 and "Traceback" not in text, f"{what}: rc {out.returncode}\n{text}"
        lines = text.splitlines()
        said = bahasa_scan.ID[key].split("{")[0].strip() or bahasa_scan.ID[key].split("}")[1].split("{")[0].strip()
        assert any(said in line for line in lines), f"{what}: expected {key}\n{text}"
        bad = bahasa_scan.report([(what, line) for line in lines], allowed)
        assert not bad, "\n".join(bad)


def test_every_engine_message_key_is_in_both_catalogues():
    """Each Msg("key" ...) / Msg.english("key" ...) / tr("key" ...) written in core/ and ui/ has an
    English and a Bahasa text (a missing key would show the key itself)."""
    used = set()
    for path in [*(REPO / "core").rglob("*.py"), *(REPO / "ui").rglob("*.py")]:
        source = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\b(?:Msg(?:\.english)?|msg|tr)\(\s*["']([a-z_]+\.[a-z0-9_.]+)["']""", source))
    assert len(used) > 150, f"the scan found suspiciously few keys ({len(used)})"
    for lang, catalogue in (("en", bahasa_scan.EN), ("id", bahasa_scan.ID)):
        missing = sorted(k for k in used if k not in catalogue)
        assert not missing, f"used in core/ or ui/ but missing from {lang}.json: {missing}"


def test_a_damaged_photo_is_described_in_bahasa(tmp_path):
    """A photo's read error is kept in the scan table in English (data, matched by prefix) and
    shown in the user's language: the unreadable finding's example, in Bahasa, is the Bahasa text."""
    from core.data.decode import stored_error
    from core.data.scan import scan
    from core.data.validate import check_dataset
    from core.i18n import Msg, render

    data = tmp_path / "photos"
    for k, (label, tint) in enumerate(CLASSES.items()):
        (data / label).mkdir(parents=True)
        for i in range(12):
            _photo(100 * k + i, tint).save(data / label / f"{i}.png")
    whole = _png(7, CLASSES["red"], size=256)
    (data / "red" / "cut.png").write_bytes(whole[: len(whole) // 2])
    table = scan(data, workspace=tmp_path / "ws")
    error = table.loc[table["path"].str.endswith("cut.png"), "error"].iloc[0]
    assert error.startswith("file is truncated"), error  # the table keeps English
    finding = next(f for f in check_dataset(table) if f.code == "unreadable")
    shown = render(finding.message, "id")
    assert bahasa_scan.ID["decode.truncated"] in shown and "truncated" not in shown, shown
    assert not bahasa_scan.problems(shown, bahasa_scan.user_words(*(p.name for p in data.rglob("*")))), shown
    assert stored_error("something no catalogue says") == "something no catalogue says"
    assert stored_error(str(Msg.english("decode.not_image"))).key == "decode.not_image"


def test_damaged_run_and_project_files_are_explained_in_bahasa(project, workspace):
    """Why a run's or a project's JSON file is damaged (empty, not JSON) completes a Bahasa
    sentence in Bahasa: the Runs page, Home and the engine's own texts."""
    from core import run_list, runs
    from core.errors import RunError
    from core.i18n import render
    from ui import state

    good = Path(project["last_run"])
    broken = workspace / "runs" / "rusak-1"
    shutil.copytree(good, broken)
    (broken / "config.json").write_text('{"backbone": ', encoding="utf-8")  # a write cut short
    (broken / "status.json").write_text("  \n", encoding="utf-8")
    state.add_run(project, broken)
    why = run_list.summarize_run(broken)["damaged"]
    assert render(why, "en") == "config.json is not valid JSON (line 1: Expecting value); status.json is empty"
    assert render(why, "id") == "config.json bukan JSON yang sah (baris 1: Expecting value); status.json kosong"
    assert render(runs.read_status(broken)["message"], "id").startswith("status.json kosong: berkas sesi ini rusak")
    with pytest.raises(RunError) as raised:
        runs.load_run(broken)
    assert render(raised.value.args[0], "id") == bahasa_scan.ID["err.run.config_damaged"].format(
        run="rusak-1", problem="bukan JSON yang sah (baris 1: Expecting value)")
    lost = state.new_project("Hilang", language="id")
    for name in ("project.json", "project.json.bak"):  # and no good copy to restore it from
        (state.project_dir(lost["id"]) / name).write_bytes(b"")
    assert render(state.project_problem(lost["id"]), "id") == "project.json kosong"

    at = _open(project, "runs")
    warned = [w.value for w in at.warning if "rusak" in w.value]
    assert len(warned) == 1 and "status.json kosong" in warned[0] and "bukan JSON yang sah" in warned[0], [w.value for w in at.warning]
    home = _open(project, "home")
    assert any("project.json kosong" in w.value for w in home.warning), [w.value for w in home.warning]
    bad = bahasa_scan.report(bahasa_scan.strings_of_app(at, "runs") + bahasa_scan.strings_of_app(home, "home"),
                             _allowed(project) | bahasa_scan.user_words("rusak-1", good.name, "Hilang", lost["id"],
                                                                         "project.json", "Expecting", "value"))
    assert not bad, "\n".join(bad)
