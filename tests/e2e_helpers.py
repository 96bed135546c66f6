"""Helpers for the browser test: start the app, drive Debian's Chromium, wait for Streamlit.

The browser is Debian's /usr/bin/chromium driven by Playwright's sync API (never
`playwright install`: nothing is downloaded). Streamlit marks its root element with
`data-test-script-state` (running / notRunning) and puts every keyed widget in a container with
the class `st-key-<key>`; the test waits on the first and finds widgets by the second.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def streamlit_bin() -> str:
    venv = REPO / ".venv" / "bin" / "streamlit"
    if venv.exists():
        return str(venv)
    return str(Path(sys.executable).with_name("streamlit"))


def start_app(workspace: Path, port: int, log_path: Path) -> subprocess.Popen:
    """The README's launch command (`.venv/bin/streamlit run app.py`) on a free port, headless."""
    env = dict(os.environ, LATIH_WORKSPACE=str(workspace), PYTHONUNBUFFERED="1")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "wb")
    return subprocess.Popen(
        [streamlit_bin(), "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_app(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def wait_http(url: str, timeout: float = 60, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (localhost only)
                if resp.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer in {timeout}s ({last})")


def need_browser() -> None:
    """Skip a browser test where Chromium or Playwright is missing; fail it in CI, where setup
    installs both, so a broken setup can never pass as skipped tests."""
    why = None
    if not Path(CHROMIUM).exists():
        why = f"{CHROMIUM} is missing: run `bash scripts/setup.sh --with-browser`"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            why = "playwright is not installed: run `bash scripts/setup.sh --with-browser`"
    if why is not None:
        import pytest

        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)


def stop_training(workspace: Path, timeout: float = 120) -> None:
    """Leave no training behind (the worker outlives the app by design)."""
    from core import jobs

    for status in workspace.glob("runs/*/status.json"):
        try:
            if jobs.read_status(status.parent).get("state") in ("queued", "running"):
                jobs.stop(status.parent)
                jobs.wait(status.parent, timeout=timeout)
        except Exception as exc:  # cleanup must not hide the test's own failure
            print(f"cleanup of {status.parent}: {exc}")


@contextlib.contextmanager
def running_app(workspace: Path, log_name: str, stop_timeout: float = 120):
    """The app on a free loopback port for `workspace` (need_browser first): yields its base URL
    and process; afterwards the app is stopped and so is any training it left running."""
    need_browser()
    port = free_port()
    proc = start_app(workspace, port, ARTIFACTS / log_name)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", timeout=120, proc=proc)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop_app(proc)
        stop_training(workspace, stop_timeout)


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def wait_idle(page, timeout: float = 60, settle: float = 0.4) -> None:
    """Until the Streamlit script has finished its run (and stays finished for `settle` s)."""
    deadline = time.monotonic() + timeout
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    calm_since = None
    while time.monotonic() < deadline:
        state = page.get_attribute('[data-testid="stApp"]', "data-test-script-state")
        if state in ("notRunning", "initial") and not page.locator('[data-testid="stSkeleton"]').count():
            calm_since = calm_since or time.monotonic()
            if time.monotonic() - calm_since >= settle:
                return
        else:
            calm_since = None
        time.sleep(0.1)
    raise TimeoutError(f"the app was still running its script after {timeout}s")


_shot_no = [0]


def shot(page, name: str) -> Path:
    """A full-page screenshot in test-artifacts/, numbered in the order taken."""
    ARTIFACTS.mkdir(exist_ok=True)
    _shot_no[0] += 1
    path = ARTIFACTS / f"{_shot_no[0]:02d}-{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    # Streamlit scrolls inside its main element, so a "full page" shot would stop at the
    # window: make the window as tall as the content for the shot, then put it back.
    size = page.viewport_size or {"width": 1400, "height": 1000}
    try:
        height = page.evaluate(
            """() => Math.max(...['[data-testid="stMain"]', '[data-testid="stAppViewContainer"]',
                                  '[data-testid="stSidebarContent"]']
                 .map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight))""")
        page.set_viewport_size({"width": size["width"], "height": int(min(max(height, size["height"]), 8000))})
        page.wait_for_timeout(300)
        page.screenshot(path=str(path), full_page=True)
    except Exception as exc:  # a screenshot must never fail the test
        print(f"screenshot {path.name} failed: {exc}")
    finally:
        with contextlib.suppress(Exception):
            page.set_viewport_size(size)
    return path


def keyed(page, key: str, inner: str = ""):
    """The widget with Streamlit key `key` (its container has class st-key-<key>)."""
    css_key = re.sub(r"[^a-zA-Z0-9_-]", "-", key.strip())
    return page.locator(f".st-key-{css_key} {inner}".strip())


def click_key(page, key: str, timeout: float = 30) -> None:
    keyed(page, key, "button").first.click(timeout=timeout * 1000)


def choose(page, key: str, option_text: str, timeout: float = 30) -> None:
    """Pick `option_text` in the st.selectbox with key `key`.

    A click that lands while Streamlit redraws the page can leave the list closed, so the box
    is opened again (after the page settles) until the option shows or `timeout` passes."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # Streamlit >= 1.5x draws it as a react-aria combobox; older ones as a baseweb select.
    box = keyed(page, key, '[role="combobox"], [data-baseweb="select"]').first
    option = page.get_by_role("option", name=option_text, exact=True).first
    deadline = time.monotonic() + timeout
    while True:
        box.click(timeout=timeout * 1000)
        try:
            option.click(timeout=5_000)
            return
        except PlaywrightTimeout:
            if time.monotonic() > deadline:
                raise
            page.keyboard.press("Escape")
            wait_idle(page, timeout=timeout)


def app_errors(page) -> list[str]:
    """Texts of st.exception blocks (a traceback on the page is always a bug)."""
    return [e.inner_text()[:500] for e in page.locator('[data-testid="stException"]').all()]


def catalogue(lang: str) -> dict[str, str]:
    path = REPO / "assets" / "i18n" / f"{lang}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
