"""Issue 12: the Data page at 50,000 photos (streamlit.testing AppTest, in one process).

Generates N distinct small labelled JPEGs (96x96, a few classes, random low-frequency content
so no two are copies) under /tmp, scans them once outside the page (the scan cache is then
warm; --cold skips this), then drives the real app:
  first render   type the folder path, click "Use this folder" -> the Data page drawn
  read           a set over ui.data_ops.SCAN_INLINE_LIMIT files is read in a background process
                 (core.data.scan_job): its time from the click, its own time and peak RSS
  photos shown   the page adopts the table and is drawn (the copy check starts, in the background)
  copy check     core.data.copy_check's process: time from the click, its own time and peak RSS
  with copies    the page drawn once the check is done
  rerun          one widget change (the validation share slider) -> the page drawn again
  page 2         the sample grid's next page
With --zip it first zips the photos and unpacks that zip the Data page's way (core extract_zip,
member by member, with progress) in a child process, printing its time and peak RSS (which
stays small whatever the zip's size: nothing is read whole).
It prints each time, the number of photo thumbnails the page drew and the process's peak RSS.
Not a test (speed is never measured in tests).
Measured 2026-12-03, 2-core CPU, quiet machine (load 1.1-1.8), 50,000 photos, --cold: the click
returns in 0.1 s (the page shows the read's bar); read 46.1 s in its process (peak 268 MB);
photos shown 10.1 s after it; copy check 66.2 s in its process (peak 917 MB) while the page
stays usable; with copies 0.3 s; rerun after a widget change 0.6 s; plain rerun 0.2 s; grid
page 2 0.2 s; peak RSS of the app's process 915 MB. Before both moved out of the page
(stop 22): first render 77.6 s after a warm scan, of which the copy check was about 61 s.
Measured 2026-12-03 later, warm scan cache, side by side (this code, then 7cde174's, then this
again, one workspace): photos shown 4.3 / 7.8 / 3.9 s; the group suggestion no longer builds a
Path per photo (core.data.groups.file_names). Other figures as above.
  .venv/bin/python bench/bench_data_page.py [--photos 50000] [--folder /tmp/latih-50k] [--workspace DIR]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLASSES = ("healthy", "rust", "blight", "mildew", "spot")


def generate(folder: Path, n: int, size: int = 96, seed: int = 0) -> None:
    """n distinct JPEGs in len(CLASSES) class folders (skipped when already there)."""
    import numpy as np
    from PIL import Image

    if sum(1 for _ in folder.rglob("*.jpg")) >= n if folder.is_dir() else False:
        return
    rng = np.random.default_rng(seed)
    for c in CLASSES:
        (folder / c).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % len(CLASSES)
        tint = np.array([40 * c, 255 - 40 * c, 128], dtype=np.float32)
        small = rng.integers(0, 256, (8, 8, 3)).astype(np.float32) * 0.6 + tint * 0.4
        image = Image.fromarray(small.astype(np.uint8)).resize((size, size), Image.BILINEAR)
        image.save(folder / CLASSES[c] / f"{CLASSES[c]}_{i:06d}.jpg", quality=85)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


UNZIP = """
import resource, sys, time
from pathlib import Path
from core.data.archives import extract_zip
calls = []
t = time.perf_counter()
root = extract_zip(Path(sys.argv[1]), sys.argv[2], progress=lambda *a: calls.append(a[0]))
seconds = time.perf_counter() - t
files = sum(1 for p in root.rglob("*") if p.is_file())
print(f"unzip         {seconds:7.1f} s  ({files:,} files, {len(calls):,} progress calls; "
      f"peak RSS of that process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
"""


def unzip_figures(folder: Path, workspace: Path) -> None:
    import subprocess
    import zipfile

    archive = workspace / f"{folder.name}.zip"
    if not archive.exists():
        t0 = time.perf_counter()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
            for path in sorted(folder.rglob("*.jpg")):
                zf.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
        print(f"zip           {time.perf_counter() - t0:7.1f} s  ({archive.stat().st_size / 1024**2:.0f} MB)")
    subprocess.run([sys.executable, "-c", UNZIP, str(archive), str(workspace)], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=50_000)
    parser.add_argument("--folder", default="/tmp/latih-bench-data-page")
    parser.add_argument("--zip", action="store_true", help="also time unpacking a zip of the photos")
    parser.add_argument("--cold", action="store_true",
                        help="no scan outside the page first: the page's read starts with an empty scan cache")
    parser.add_argument("--workspace", help="a workspace to use and keep (its scan cache makes the next run warm)")
    args = parser.parse_args()
    folder = Path(args.folder)
    t0 = time.perf_counter()
    generate(folder, args.photos)
    print(f"generate      {time.perf_counter() - t0:7.1f} s  ({args.photos:,} photos in {folder})")

    workspace = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="latih-bench-ws-"))
    workspace.mkdir(parents=True, exist_ok=True)
    os.environ["LATIH_WORKSPACE"] = str(workspace)
    if args.zip:
        unzip_figures(folder, workspace)
    from core.data.scan import scan

    if not args.cold:
        t0 = time.perf_counter()
        df = scan(folder, workspace=workspace)
        print(f"scan          {time.perf_counter() - t0:7.1f} s  ({len(df):,} rows; peak RSS {peak_rss_mb():.0f} MB)")
        del df

    from streamlit.testing.v1 import AppTest

    from ui import state
    from ui.components import pages_manager

    manager = pages_manager()  # as tests/conftest.navigation_like_a_running_server: no v1 multipage mode
    if manager is not None:
        original = manager.__init__

        def init(self, *a, **k):
            original(self, *a, **k)
            manager.uses_pages_directory = False

        manager.__init__ = init

    project = state.new_project("Bench", data_path=None, source_kind="folder", language="en")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
    at.query_params.update(project=project["id"])
    at.run()
    at.switch_page("pages/data.py").run()
    at.text_input(key="data_folder_path").input(str(folder)).run()
    t0 = time.perf_counter()
    at.button(key="data_folder_use").click().run()
    first = time.perf_counter() - t0
    assert not at.exception, [e.value for e in at.exception]
    print(f"first render  {first:7.1f} s  (choose the folder -> page drawn; {len(at.get('image'))} image elements; "
          f"{len(at.metric)} metrics)")
    from core.data import copy_check, scan_job

    pending = state.load_project(project["id"]).get("pending_read")
    if pending:  # a large set: read in its own process, the page shows its bar meanwhile
        job = scan_job.read_job(pending["job"])
        while job["state"] == "running":
            time.sleep(0.5)
            job = scan_job.read_job(pending["job"])
        print(f"read          {time.perf_counter() - t0:7.1f} s  (background process, {job['state']}: "
              f"{job.get('photos', '?')} photos, its own time {job.get('seconds', '?')} s, its peak RSS "
              f"{job.get('peak_mb', '?')} MB; counted from the click)")
        t1 = time.perf_counter()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        print(f"photos shown  {time.perf_counter() - t1:7.1f} s  (the page adopts the table and is drawn; "
              f"{len(at.get('image'))} image elements, {len(at.metric)} metrics)")

    folder = copy_check.job_dir(state.files_table_path(project))
    job = copy_check.read_job(folder)
    if job["state"] == "running":  # a large set: the copy check runs in its own process meanwhile
        while job["state"] == "running":
            time.sleep(0.5)
            job = copy_check.read_job(folder)
        print(f"copy check    {time.perf_counter() - t0:7.1f} s  (background process, {job['state']}: "
              f"{job.get('pairs', '?')} pairs, its own time {job.get('seconds', '?')} s, its peak RSS "
              f"{job.get('peak_mb', '?')} MB; counted from the click)")
        t1 = time.perf_counter()
        at.run()
        print(f"with copies   {time.perf_counter() - t1:7.1f} s  (the page drawn again once the check is done)")

    t0 = time.perf_counter()
    at.slider(key="data_val_fraction").set_value(0.25).run()
    rerun = time.perf_counter() - t0
    assert not at.exception, [e.value for e in at.exception]
    print(f"rerun         {rerun:7.1f} s  (validation share changed; {len(at.get('image'))} image elements)")

    t0 = time.perf_counter()
    at.run()
    plain = time.perf_counter() - t0
    print(f"plain rerun   {plain:7.1f} s")
    pagers = [w for w in at.number_input if str(w.key).startswith("data_sample_page")]
    if pagers:
        t0 = time.perf_counter()
        pagers[0].set_value(2).run()
        print(f"grid page 2   {time.perf_counter() - t0:7.1f} s")
    print(f"peak RSS      {peak_rss_mb():7.0f} MB  (this process: scan, app and page together)")
    print(f"load          {open('/proc/loadavg').read().strip()}")
    if not args.workspace:
        shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    main()
