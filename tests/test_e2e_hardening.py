"""Issue 9 in a real browser: hostile names, and two tabs on one project.

1. Class and file names with Markdown images and links pointing at a small recording HTTP
   server on 127.0.0.2 (a loopback address; never an outside host), colour directives, LaTeX,
   bold and a right-to-left override: on the Data, Model, Train, Evaluate, Test and Runs pages
   the browser makes no request to that server (nor anywhere but the app), draws no link, image,
   formula or colour from them, and shows the names as typed.
2. Two tabs: a setting changed in the newer tab survives a change in the older one, which is
   told and shows the saved values; Start in a stale Train tab does not start a second run.
"""
from __future__ import annotations

import http.server
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

try:
    import e2e_helpers as h  # tests/ is on sys.path (pytest's default import mode)
except ImportError:
    from tests import e2e_helpers as h

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def tracker():
    _Recorder.hits = []
    try:
        server = http.server.HTTPServer(("127.0.0.2", 0), _Recorder)
    except OSError as exc:
        pytest.skip(f"cannot listen on 127.0.0.2 here: {exc}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.2:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def app(tmp_path_factory, tracker):
    root = tmp_path_factory.mktemp("e2e9")
    ws = root / "workspace"
    ws.mkdir()
    with h.running_app(ws, "streamlit-hardening.log", stop_timeout=120) as (url, _proc):
        yield {"url": url, "workspace": ws, "root": root}


def _photo(seed: int, tint) -> Image.Image:
    grid = np.random.default_rng(seed).integers(0, 256, (8, 8, 3))
    return Image.fromarray((grid * 0.6 + np.array(tint) * 0.4).astype(np.uint8)).resize((64, 64), Image.NEAREST)


def _in_workspace(ws: Path):
    os.environ["LATIH_WORKSPACE"] = str(ws)  # the test writes the same files the app reads


def _wait_text(page, text: str, timeout: float = 60) -> None:
    page.wait_for_function("t => document.body.innerText.includes(t)", arg=text, timeout=timeout * 1000)


def _settled(page, *texts: str, timeout: float = 180) -> None:
    """Until every text is on the page and the app's script has then finished (for 1 s)."""
    for text in texts:
        _wait_text(page, text, timeout)
    h.wait_idle(page, timeout=timeout, settle=1.0)


def test_hostile_names_make_no_request_and_render_nothing(app, tracker, monkeypatch):
    from playwright.sync_api import sync_playwright

    from core.config import TrainConfig
    from core.train import train
    from ui import state

    monkeypatch.setenv("LATIH_WORKSPACE", str(app["workspace"]))
    url = f"http:{tracker}"  # browsers read http:host as http://host/ (a folder name cannot hold "/")
    classes = {f"![t]({url})": (220, 40, 40), f"[click]({url}) :red[alert] $x^2$ **bold**":
               (40, 200, 60)}
    data = app["root"] / "photos"
    for k, (label, tint) in enumerate(classes.items()):
        (data / label).mkdir(parents=True)
        for i in range(12):
            _photo(100 * k + i, tint).save(data / label / f"p{i:02d}.png")
    first = next(iter(classes))
    _photo(7, (220, 40, 40)).save(data / first / f"![f]({url}) \u202egnp.exe.png")
    run = train(TrainConfig(data_path=str(data), strategy="feature-extraction", epochs=2, image_size=64,
                            batch_size=8, val_fraction=0.25, test_fraction=0.25, augment="none",
                            early_stopping_patience=0), workspace=app["workspace"]).run_dir
    (data / first / f"[junk]({url}).png").write_bytes(b"not a photo")
    project = state.new_project(f"![p]({url}) **Clinic**", data_path=str(data), source_kind="folder",
                                language="en")
    state.add_run(project, run)

    with sync_playwright() as pw:
        browser = h.launch(pw)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        for url_path in ("data", "model", "train", "evaluate", "test", "runs"):
            page.goto(f"{app['url']}/{url_path}?project={project['id']}&lang=en")
            # The script has run for this page once the project name is drawn (before that the
            # app can look idle while it connects); then wait until it has finished and stays so.
            _settled(page, "**Clinic**")
            if url_path == "data":  # read after the photos are scanned, which can come later
                _settled(page, f"![t]({url})", f"[junk]({url}).png")
            if url_path == "test":
                photo = app["root"] / f"![u]({url}).png"
                _photo(3, (220, 40, 40)).save(photo)
                page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(photo))
                _settled(page, "% sure", f"![u]({url}).png")
            h.shot(page, f"hostile-{url_path}")
            assert not h.app_errors(page), f"{url_path}: traceback on the page"
            found = page.evaluate("""host => ({
                links: [...document.querySelectorAll('a[href]')].map(a => a.href).filter(h => h.includes(host)),
                images: [...document.querySelectorAll('img')].map(i => i.src).filter(s => s.includes(host)),
                katex: document.querySelectorAll('.katex, .katex-display').length,
                bold: [...document.querySelectorAll('strong, b')].map(b => b.innerText).filter(t => t.includes('bold')),
                coloured: [...document.querySelectorAll('span[class], span[style]')]
                            .filter(s => s.innerText.trim() === 'alert').length,
                text: document.body.innerText,
            })""", tracker)
            assert found["links"] == [] and found["images"] == [], f"{url_path}: {found['links']} {found['images']}"
            assert found["katex"] == 0 and found["bold"] == [] and found["coloured"] == 0, url_path
            assert "\u202e" not in found["text"], url_path
            assert "**Clinic**" in found["text"], f"{url_path}: the project name is not shown as typed"
            if url_path == "data":
                assert f"![t]({url})" in found["text"] and ":red[alert] $x^2$ **bold**" in found["text"]
                assert f"[junk]({url}).png" in found["text"]
            if url_path == "test":
                assert f"![u]({url}).png" in found["text"]
        time.sleep(1.0)  # anything lazily loaded would have been asked for by now
        browser.close()
    assert _Recorder.hits == [], f"the browser fetched {_Recorder.hits} from the recording server"
    app_host = app["url"].split("//")[1]
    foreign = [u for u in requests if not u.startswith(("data:", "blob:")) and app_host not in u]
    assert foreign == [], f"requests the page did not need: {foreign[:5]}"


def test_two_tabs_keep_both_changes_and_start_once(app, monkeypatch):
    from playwright.sync_api import sync_playwright

    from ui import state

    monkeypatch.setenv("LATIH_WORKSPACE", str(app["workspace"]))
    data = app["root"] / "tabs-photos"
    for k, (label, tint) in enumerate({"red": (220, 40, 40), "green": (40, 200, 60)}.items()):
        (data / label).mkdir(parents=True)
        for i in range(12):
            _photo(500 + 100 * k + i, tint).save(data / label / f"{label}{i:02d}.png")
    project = state.new_project("Two tabs", data_path=str(data), source_kind="folder", language="en")
    pid = project["id"]
    en = h.catalogue("en")
    runs_before = set((app["workspace"] / "runs").glob("*"))

    def open_tab(context, url_path):
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{app['url']}/{url_path}?project={pid}&lang=en")
        h.wait_idle(page, timeout=180)
        return page

    def set_number(page, key, value):
        box = h.keyed(page, key, "input")
        box.fill(str(value))
        box.press("Enter")
        h.wait_idle(page)

    with sync_playwright() as pw:
        browser = h.launch(pw)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        home = open_tab(context, "home")  # a bookmark of /home is a real page, not "Page not found"
        assert en["home.title"] in home.inner_text("body") and "Page not found" not in home.inner_text("body")
        home.close()
        old, new = open_tab(context, "model"), open_tab(context, "model")
        for page in (old, new):
            page.get_by_text(en["model.advanced_title"], exact=False).first.click()
            h.wait_idle(page)
        set_number(new, "model_epochs", 2)
        assert state.load_project(pid)["settings"]["epochs"] == 2
        set_number(old, "model_patience", 9)  # the older tab still shows 15 epochs
        _wait_text(old, en["hardening.stale_reloaded"])
        h.shot(old, "stale-tab-told")
        settings = state.load_project(pid)["settings"]
        assert settings["epochs"] == 2 and settings["early_stopping_patience"] == 5
        assert h.keyed(old, "model_epochs", "input").input_value() == "2"  # it reloaded the saved value
        # Train in two tabs: Start in the one opened before the other started
        train_a, train_b = open_tab(context, "train"), open_tab(context, "train")
        h.click_key(train_a, "train_start")
        h.wait_idle(train_a, timeout=120)
        h.click_key(train_b, "train_start")
        h.wait_idle(train_b, timeout=120)
        h.shot(train_b, "stale-train-tab")
        assert not h.app_errors(train_b)
        browser.close()
    started = set((app["workspace"] / "runs").glob("*")) - runs_before
    assert len(started) == 1, f"two tabs started {len(started)} trainings"
    assert state.load_project(pid)["last_run"] == str(next(iter(started)))
