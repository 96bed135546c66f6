"""Copy review in a real browser: a dataset with flagged pairs -> the pairs side by side on the
Data page -> a per-pair decision, kept after a reload -> training starts, without the photo
left out. Same app start and browser as tests/test_e2e_browser.py (see tests/e2e_helpers.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

try:
    import e2e_helpers as h  # tests/ is on sys.path (pytest's default import mode)
except ImportError:
    from tests import e2e_helpers as h

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1200)]


def _near_copy(src: Path, dst: Path) -> None:
    img = Image.open(src).convert("RGB")
    img = img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
    ImageEnhance.Brightness(img).enhance(1.1).save(dst, "JPEG", quality=80)


@pytest.fixture
def app(tmp_path):
    ws = tmp_path / "workspace"
    ws.mkdir()
    with h.running_app(ws, "streamlit-copies.log", stop_timeout=60) as (url, _proc):
        yield {"url": url, "workspace": ws}


def _kid(a: str, b: str) -> str:
    from core.data.copies import pair_key

    return hashlib.sha1(pair_key(a, b).encode()).hexdigest()[:12]


def test_copy_pairs_reviewed_in_the_browser_then_training_starts(app, make_dataset, monkeypatch):
    from playwright.sync_api import sync_playwright

    en = h.catalogue("en")
    ws = app["workspace"]
    root = make_dataset(("red", "green"), n=12, size=128).resolve()
    wrong_class = root / "green" / "looks_red.jpg"       # a red photo filed under green
    _near_copy(root / "red" / "red_003.png", wrong_class)
    _near_copy(root / "green" / "green_005.png", root / "green" / "green_again.jpg")
    monkeypatch.setenv("LATIH_WORKSPACE", str(ws))
    from ui import state

    project = state.new_project("copies", data_path=str(root), source_kind="folder", language="en")
    cross = _kid(str(wrong_class), str(root / "red" / "red_003.png"))
    within = _kid(str(root / "green" / "green_005.png"), str(root / "green" / "green_again.jpg"))

    with sync_playwright() as pw:
        browser = h.launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{app['url']}/data?project={project['id']}&lang=en")
        h.wait_idle(page, timeout=300)
        h.shot(page, "copies-data")
        assert not h.app_errors(page)
        # both pairs, each shown side by side: two photos, their classes and the similarity
        for kid in (cross, within):
            pair = h.keyed(page, f"copies_pair_{kid}")
            assert pair.count() == 1, f"pair {kid} not shown"
            assert pair.locator('[data-testid="stImage"]').count() == 2
        text = h.keyed(page, f"copies_pair_{cross}").inner_text()
        assert "class: green" in text and "class: red" in text and "looks_red.jpg" in text
        assert "similarity 0." in text or "similarity 1." in text
        # the near-copy across classes is a warning: training is not blocked
        assert en["finding.near_copy_across_classes"].split("{n}")[1].strip()[:20] in page.inner_text("body")

        # decide one pair: the left photo (green/looks_red.jpg) is in the wrong class
        h.click_key(page, f"copies_left_{cross}")
        h.wait_idle(page, timeout=120)
        page.reload()
        h.wait_idle(page, timeout=300)
        h.shot(page, "copies-after-reload")
        assert not h.app_errors(page)
        assert h.keyed(page, f"copies_pair_{cross}").count() == 0, "a decided pair is asked about again"
        assert h.keyed(page, f"copies_pair_{within}").count() == 1
        assert en["copies.decided_title"].format(n=1) in page.inner_text("body")
        saved = json.loads((ws / "projects" / project["id"] / "project.json").read_text())
        assert list(saved["copy_decisions"].values()) == ["left"]
        assert str(wrong_class) in saved["excluded"]

        # training starts, and leaves the photo out
        page.goto(f"{app['url']}/train?project={project['id']}&lang=en")
        h.wait_idle(page, timeout=180)
        h.click_key(page, "train_start")
        deadline = time.monotonic() + 120
        while not list(ws.glob("runs/*/config.json")) and time.monotonic() < deadline:
            time.sleep(0.5)
        configs = list(ws.glob("runs/*/config.json"))
        assert configs, "no run started"
        config = json.loads(configs[0].read_text())
        assert str(wrong_class) in config["exclude"]
        run = configs[0].parent
        deadline = time.monotonic() + float(os.environ.get("LATIH_E2E_DONE_TIMEOUT", "600"))
        while time.monotonic() < deadline:
            state_now = json.loads((run / "status.json").read_text()).get("state") if (run / "status.json").exists() else None
            if state_now in ("done", "failed", "stopped"):
                break
            time.sleep(1)
        assert state_now == "done", (run / "status.json").read_text()
        h.wait_idle(page, timeout=120)
        h.shot(page, "copies-trained")
        browser.close()
