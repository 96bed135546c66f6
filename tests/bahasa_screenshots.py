"""Screenshots of the app in Bahasa Indonesia, for a person to look at (not a pytest module).

    PYTHONPATH=. .venv/bin/python tests/bahasa_screenshots.py OUT_FOLDER

A project on real fundus photos (a subset of ../shared/datasets/acrima_glaucoma with a copy,
a near-copy in the other class, a tiny photo and a text file added, so that the Data page has
findings), a finished feature-extraction run, the photo estimate (the Model page's advice), and
a second training started from the Train page: Data findings, Model advice, Train progress,
Evaluate, Test (uploader) are saved as PNGs. Uses tests/e2e_helpers.py (Debian's Chromium).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared" / "datasets" / "acrima_glaucoma"
PER_CLASS = 30


def make_photos(root: Path) -> Path:
    from PIL import Image

    data = root / "fundus"
    for label in ("glaucoma", "normal"):
        (data / label).mkdir(parents=True)
        for src in sorted((SHARED / label).glob("*.jpg"))[:PER_CLASS]:
            shutil.copy(src, data / label / src.name)
    first = sorted((data / "normal").glob("*.jpg"))[0]
    shutil.copy(first, data / "normal" / f"copy_of_{first.name}")
    with Image.open(sorted((data / "normal").glob("*.jpg"))[1]) as img:
        img.resize((img.width * 3 // 4, img.height * 3 // 4)).save(data / "glaucoma" / "looks_like_normal.jpg", quality=80)
        img.resize((48, 48)).save(data / "normal" / "tiny.jpg")
    (data / "glaucoma" / "notes.jpg").write_text("not a photo")
    return data


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    root = Path(os.environ.get("SHOTS_TMP", "/tmp/latih-bahasa-shots"))
    shutil.rmtree(root, ignore_errors=True)
    workspace = root / "workspace"
    os.environ["LATIH_WORKSPACE"] = str(workspace)
    data = make_photos(root)

    from core import estimate
    from core.config import TrainConfig
    from core.train import train
    from ui import state

    clean = root / "clean"
    for label in ("glaucoma", "normal"):
        shutil.copytree(data / label, clean / label, ignore=shutil.ignore_patterns("copy_of_*", "looks_*", "tiny*", "notes*"))
    done = train(TrainConfig(data_path=str(clean), strategy="feature-extraction", epochs=4, image_size=160,
                             val_fraction=0.25, test_fraction=0.25, augment="none"), workspace=workspace)
    print("trained", done.run_dir, done.status)
    folder = estimate.job_dir(str(data), "", workspace)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "request.json").write_text(
        '{"data_path": "%s", "groups": "", "n_splits": 3, "n_repeats": 1, "workspace": "%s"}' % (data, workspace))
    estimate._worker(folder)
    print("estimate", estimate.read_job(folder)["state"])
    project = state.new_project("Skrining glaukoma", data_path=str(data), source_kind="folder", language="id")
    state.add_run(project, done.run_dir)
    project = state.load_project(project["id"])

    from playwright.sync_api import sync_playwright

    from tests import e2e_helpers as h

    h.ARTIFACTS = out
    try:
        # running_app: a free loopback port; afterwards the app stopped, and any training it left too
        with h.running_app(workspace, "app.log", stop_timeout=120) as (base, _proc), sync_playwright() as p:
            browser = h.launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})

            def open_page(name: str) -> None:
                page.goto(f"{base}/{name}?project={project['id']}&lang=id")
                h.wait_idle(page, timeout=180)
                page.wait_for_timeout(1500)

            open_page("home")
            page.get_by_text(h.catalogue("id")["glossary.title"]).first.click()
            page.wait_for_timeout(500)
            h.shot(page, "home-glossary")
            open_page("data")
            h.shot(page, "data-findings")
            open_page("model")
            h.shot(page, "model-advice")
            open_page("evaluate")
            h.shot(page, "evaluate")
            ids = h.catalogue("id")
            for tab in ("eval.tab_per_class", "eval.tab_roc", "eval.tab_reliability"):
                page.get_by_role("tab", name=ids[tab]).first.click()
                page.wait_for_timeout(1500)
                h.shot(page, f"evaluate-{tab.rsplit('_', 1)[-1]}")
            open_page("test")
            h.shot(page, "test-uploader")
            open_page("train")
            h.click_key(page, "train_start")
            time.sleep(6)
            h.shot(page, "train-progress-early")
            time.sleep(14)
            h.shot(page, "train-progress")
            h.click_key(page, "train_stop")
            time.sleep(1.5)
            h.shot(page, "train-stopping")
            print("errors on pages:", h.app_errors(page))
            browser.close()
    finally:
        from core import jobs

        worker = jobs.worker_pid(workspace)  # the queue's worker process, started by the Train page
        if worker:
            time.sleep(10)  # let it save the stopped run
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGTERM)
        print("app log tail:", (out / "app.log").read_text()[-1500:])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/brief/s15/shots"))
