"""Shared pytest fixtures (usable by every test module).

make_dataset(classes=("red", "green"), n=12, *, split=None, size=64, sizes=None,
             fmt="png", name="dataset") -> Path
    Writes generated photos under tmp_path/<name>/ and returns that folder.
    classes: class names, or {name: count} to give each class its own count (n is then ignored).
    split:   None -> <root>/<class>/<class>_000.png (unsplit);
             {"train": 8, "val": 3} -> <root>/train/<class>/..., <root>/val/<class>/... with
             that many photos per class in each split (classes/n then only name the classes).
    size:    side in px (int) or (width, height); sizes: {class: size} overrides per class.
    fmt:     file extension / PIL format: "png", "jpg", "bmp", "tiff", "webp".
    Each photo is a random 8x8 grid (seeded by class and index) enlarged to `size` and tinted
    with a per-class colour: classes are easy to tell apart and no two photos are
    near-duplicates by perceptual hash.

make_image(path, seed=0, size=64, tint=(128, 128, 128)) -> Path
    Writes one such photo at `path` (format from the extension) and returns the path.

navigation_like_a_running_server: for AppTest modules (`pytestmark = pytest.mark.usefixtures(...)`),
    makes every AppTest run look like a running server's (no v1 multipage mode).

workspace (autouse): LATIH_WORKSPACE points at tmp_path/"workspace", so tests never write
    into ./workspace. Request it to get that Path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINTS = [(220, 40, 40), (40, 200, 60), (40, 70, 220), (230, 200, 30), (160, 50, 200), (30, 200, 200)]
FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "tif": "TIFF", "tiff": "TIFF", "webp": "WEBP"}


def generated_image(seed: int, size=64, tint=(128, 128, 128)) -> Image.Image:
    """A tinted random 8x8 grid enlarged to size (int or (w, h))."""
    width, height = (size, size) if isinstance(size, int) else size
    grid = np.random.default_rng(seed).integers(0, 256, (8, 8, 3))
    pixels = (grid * 0.6 + np.array(tint) * 0.4).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").resize((width, height), Image.Resampling.NEAREST)


def save_image(img: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, FORMATS[path.suffix.lower().lstrip(".")])
    return path


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "workspace"
    monkeypatch.setenv("LATIH_WORKSPACE", str(path))
    return path


@pytest.fixture
def make_image():
    def _make(path, seed: int = 0, size=64, tint=(128, 128, 128)) -> Path:
        return save_image(generated_image(seed, size, tint), Path(path))
    return _make


@pytest.fixture
def make_dataset(tmp_path):
    def _make(classes=("red", "green"), n: int = 12, *, split: dict | None = None, size=64,
              sizes: dict | None = None, fmt: str = "png", name: str = "dataset") -> Path:
        root = tmp_path / name
        counts = dict(classes) if isinstance(classes, dict) else {c: n for c in classes}
        folders = [(root / s, k) for s, k in split.items()] if split else [(root, None)]
        seed = 0
        for class_index, (label, count) in enumerate(counts.items()):
            tint = TINTS[class_index % len(TINTS)]
            side = (sizes or {}).get(label, size)
            for folder, per_split in folders:
                for i in range(per_split if per_split is not None else count):
                    seed += 1
                    save_image(generated_image(seed, side, tint), folder / label / f"{label}_{i:03d}.{fmt}")
        return root
    return _make


@pytest.fixture
def navigation_like_a_running_server(request, monkeypatch):
    """AppTest re-detects the `pages/` folder before every run and so starts each run in
    Streamlit's v1 multipage mode; a real server does that only for its first run, until
    app.py's st.navigation turns it off (ui.components.frame() handles that first run by a
    rerun, which would drop the clicks a test makes). Make every run look like a running server."""
    if request.node.originalname.startswith("test_first_run_after_a_server_start"):
        return
    from ui.components import pages_manager

    PagesManager = pages_manager()
    if PagesManager is None:
        return
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def wait_for_job(folder, states=("done", "failed"), wait_s: float = 120, read=None) -> dict:
    """Poll a background job's folder (core.background; `read`: the job's own reader, e.g.
    core.estimate.read_job which adds the result) until it reaches one of `states`."""
    import time

    from core.background import read_status

    read = read or read_status
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        job = read(folder)
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"the job in {folder} is still {read(folder)} after {wait_s} s")


@pytest.fixture
def held_jobs(monkeypatch):
    """Background jobs (core.background.launch: the copy check, a background read) are real
    processes, stopped (SIGSTOP) right after they are launched, long before their imports are
    done: "running" for as long as the test looks. Calling the fixture's value lets them go on."""
    import os
    import signal

    from core import background

    launched, real = [], background.launch

    def held(folder, module, log_name):
        pid = real(folder, module, log_name)
        os.kill(pid, signal.SIGSTOP)
        launched.append(pid)
        return pid

    def release():
        for pid in launched:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        launched.clear()

    monkeypatch.setattr(background, "launch", held)
    yield release
    release()
