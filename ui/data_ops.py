"""Data-page operations: save uploads into the workspace, read a source, cached checks."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from ui import state
from ui.i18n import t

log = logging.getLogger(__name__)

PHOTO_TYPES = ["jpg", "jpeg", "png", "bmp", "gif", "tif", "tiff", "webp", "heic", "heif"]


def safe_name(name: str) -> str:
    """A file or folder name without path parts or odd characters."""
    name = Path(name.replace("\\", "/")).name
    name = re.sub(r"[^\w.\- ]+", "_", name, flags=re.UNICODE).strip(" .")
    return name[:120] or "file"


CHUNK = 8 * 1024**2  # an upload is copied to disk 8 MiB at a time


def save_upload(uploaded, folder: Path, progress=None) -> Path:
    """Write a Streamlit UploadedFile into `folder`, in CHUNK pieces: `progress(bytes_done,
    bytes_total)` after each one (a progress bar for a big zip).

    A file already there with the same bytes is kept as is (a rerun, a second drop of the same
    photo). A different file under the same name, two phones' IMG_0001.jpg, is never overwritten
    or skipped: it is saved as IMG_0001-2.jpg (then -3 ...), so no photo is lost.

    Written to a temp file and renamed, so a full disk leaves no truncated upload behind
    (DiskFullError says how much room is needed, and where)."""
    from core.diskspace import partial_file, require_free
    from core.i18n import Msg

    folder.mkdir(parents=True, exist_ok=True)
    size, name = int(uploaded.size), safe_name(uploaded.name)
    target, already = _upload_target(folder, name, uploaded, size)
    if not already:
        require_free(folder, size, Msg("disk.what.save", name=target.name))
        tmp = target.with_name(f".{target.name}.upload")
        with partial_file(tmp, size):
            uploaded.seek(0)
            done = 0
            with open(tmp, "wb") as handle:
                while chunk := uploaded.read(CHUNK):
                    handle.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, size)
            os.replace(tmp, target)
        if target.name != name:
            log.info("upload %s: another file has that name here; saved as %s", uploaded.name, target.name)
    if progress is not None:
        progress(size, size)
    return target


def _upload_target(folder: Path, name: str, uploaded, size: int) -> tuple[Path, bool]:
    """(where the upload goes, whether that file already holds its very bytes)."""
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, k = folder / name, 1
    while candidate.exists():
        if _same_bytes(candidate, uploaded, size):
            return candidate, True
        k += 1
        candidate = folder / f"{stem}-{k}{suffix}"
    return candidate, False


def _same_bytes(path: Path, uploaded, size: int) -> bool:
    if not path.is_file() or path.stat().st_size != size:  # the usual case: one stat, nothing read
        return False
    uploaded.seek(0)
    with open(path, "rb") as handle:
        while chunk := uploaded.read(CHUNK):
            if handle.read(len(chunk)) != chunk:
                return False
    return True


def save_zip_upload(project: dict[str, Any], uploaded) -> Path:
    """save_upload into the project's uploads folder with a progress bar (MB copied / MB)."""
    from core.diskspace import human

    bar = st.progress(0.0, text=t("data.progress_upload", done=human(0), total=human(uploaded.size)))

    def step(done: int, total: int) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=t("data.progress_upload", done=human(done),
                                                             total=human(total)))

    return save_upload(uploaded, uploads_dir(project), progress=step)


def local_zip(text: str) -> Path:
    """The path typed for "a zip on this machine"; DataError when it is not an existing .zip."""
    from core.errors import DataError
    from core.i18n import Msg

    path = Path(text.strip().strip('"')).expanduser()
    if path.suffix.lower() != ".zip" or not path.is_file():
        raise DataError(Msg("err.zip.not_a_zip_path", path=str(path)))
    return path


def uploads_dir(project: dict[str, Any]) -> Path:
    return state.project_dir(project["id"]) / "uploads"


def class_photos_dir(project: dict[str, Any]) -> Path:
    return state.project_dir(project["id"]) / "photos"


# Up to this many files a source is read inside the page, with a bar (1,352 photos: 4 s on 2
# cores); beyond, in a background process (core.data.scan_job) that the page polls (50,000
# photos: 40-80 s), so that a click elsewhere or a reload does not interrupt it.
SCAN_INLINE_LIMIT = 2_000


def read_source(project: dict[str, Any], source: str | Path, kind: str) -> bool:
    """open_source + scan with progress bars; stores the table in the project. LatihError
    propagates. True when the photos are read; False when a large source is being read in the
    background (pending_read_section shows it, and adopts the table when it is there).

    A zip (uploaded, or a path on this machine) is unpacked member by member with its own bar
    (files and MB done); the project keeps its old photos until the new ones are read: a corrupt
    or truncated zip raises before anything in the project changes."""
    from core.data.scan import open_source, scan
    from core.data.scan_job import file_count, read_share, read_text
    from ui.i18n import say

    if file_count(source, SCAN_INLINE_LIMIT) > SCAN_INLINE_LIMIT:
        return _read_in_background(project, source, kind)

    bar = st.progress(0.0, text=t("data.progress_open"))
    uploaded = kind == "zip" and Path(source).parent == uploads_dir(project)

    def step(task: str, done: int, total: int, done_bytes: int = 0, total_bytes: int = 0) -> None:
        bar.progress(read_share(task, done, total, kind == "zip"),
                     text=say(read_text(task, done, total, done_bytes, total_bytes)))

    def checked(done_bytes: int, total_bytes: int) -> None:  # the zip's SHA-1, before anything is unpacked
        step("zip_check", done_bytes, total_bytes)

    def unpacked(done: int, total: int, done_bytes: int, total_bytes: int) -> None:
        if done % 100 and done != total:  # extract_zip calls after every file: 50,000 bar updates are too many
            return
        step("unzip", done, total, done_bytes, total_bytes)

    def read(done: int, total: int) -> None:  # scan calls this every 64 photos
        step("read", done, total)

    try:
        root = open_source(source, progress=unpacked, hashed=checked)
        bar.progress(read_share("read", 0, 1, kind == "zip"), text=t("data.progress_scan"))
        df = scan(root, progress=read)
    except BaseException:
        if uploaded:
            Path(source).unlink(missing_ok=True)  # a rejected upload is not kept
            log.info("removed the rejected upload %s", source)
        raise
    bar.progress(0.9, text=t("data.progress_save"))
    project.update(data_path=str(root), source={"kind": kind, "path": str(source)}, excluded=[], copy_decisions={})
    state.save_files_table(project, df)  # also saves the project
    bar.progress(1.0, text=t("data.progress_done", n=len(df)))
    if uploaded:
        Path(source).unlink(missing_ok=True)  # extracted into the workspace; the copy is not needed
    return True


def _read_in_background(project: dict[str, Any], source: str | Path, kind: str) -> bool:
    from core.data import scan_job

    st.session_state.pop(READ_ERROR_KEY, None)
    folder = scan_job.start(source)
    state.update_project(project, pending_read={"job": str(folder), "source": str(source), "kind": kind})
    log.info("reading %s in the background (%s)", source, folder)
    return False


READ_ERROR_KEY = "data_read_error"  # why the last background read failed: {"source", "message"}


def read_failed(project: dict[str, Any]) -> bool:
    """The background read of the project's own folder failed in this session (the page does
    not start it again by itself: the person sees why, and chooses)."""
    failed = st.session_state.get(READ_ERROR_KEY) or {}
    return bool(failed) and failed.get("source") == str(project.get("data_path"))


def _uploaded(project: dict[str, Any], source: str, kind: str) -> bool:
    return kind == "zip" and Path(source).parent == uploads_dir(project)


def pending_read_section(project: dict[str, Any]) -> None:
    """A large source being read in the background: its bar (refreshed every 2 s); once read,
    the table becomes the project's (as read_source would have stored it); when it failed,
    why, and the project keeps its photos."""
    from core.data import scan_job
    from ui.i18n import say_status

    failed = st.session_state.get(READ_ERROR_KEY)
    if failed:  # said until the next read starts
        st.error(say_status(failed) or t("common.error_generic"), icon=":material/error:")
    pending = project.get("pending_read")
    if not pending:
        return
    job = scan_job.read_job(pending["job"])
    if job["state"] == "running":
        _poll_read(project)
        return
    if job["state"] == "done":
        try:
            table, attrs = scan_job.result(pending["job"])
            if not table.is_file():
                raise FileNotFoundError(str(table))
        except (OSError, ValueError) as exc:  # its folder removed or damaged meanwhile: said as a failed read
            log.warning("the background read in %s left no usable table (%s)", pending["job"], exc)
            from core.background import LOG_FILE
            from core.i18n import Msg

            message = Msg("job.died", log=str(Path(pending["job"]) / LOG_FILE))
            job = {"state": "failed", "message": str(message), "message_i18n": message.to_json()}
    if job["state"] == "done":
        project.update(data_path=str(attrs.get("root") or job.get("root")),
                       source={"kind": pending["kind"], "path": pending["source"]}, excluded=[], copy_decisions={})
        state.adopt_files_table(project, table, attrs, pending_read=None)
        st.toast(t("data.progress_done", n=job.get("photos", 0)))
        log.info("adopted the background read of %s (%s photos)", pending["source"], job.get("photos"))
    else:
        st.session_state[READ_ERROR_KEY] = {"source": pending["source"], "message": job.get("message"),
                                            "message_i18n": job.get("message_i18n")}
        st.error(say_status(job) or t("common.error_generic"), icon=":material/error:")
        state.update_project(project, pending_read=None)
        log.info("the background read of %s failed: %s", pending["source"], job.get("message"))
    if _uploaded(project, pending["source"], pending["kind"]):
        Path(pending["source"]).unlink(missing_ok=True)  # unpacked into the workspace, or rejected
    if job["state"] == "done":
        st.rerun()


@st.fragment(run_every=2)
def _poll_read(project: dict[str, Any]) -> None:
    from core.data import scan_job
    from core.data.scan_job import read_text
    from ui.i18n import say

    pending = project.get("pending_read") or {}  # the job folder does not change while it runs
    job = scan_job.read_job(pending["job"]) if pending else {"state": "gone"}
    if job["state"] != "running":
        st.rerun(scope="app")
    text = read_text(str(job.get("task") or "start"), int(job.get("done") or 0), int(job.get("total") or 0),
                     int(job.get("done_bytes") or 0), int(job.get("total_bytes") or 0))
    st.progress(min(1.0, float(job.get("progress") or 0.0)), text=say(text))
    st.caption(t("data.reading_background"))


SAMPLE_PAGE = 24  # photos per page of the Data page's sample grid
LIST_LIMIT = 500  # rows of a file list drawn on the Data page (the count says how many more)


def class_photos(df: pd.DataFrame, label: str) -> list[str]:
    """The readable photos of one class, in the table's order (the pages of the sample grid)."""
    return df.loc[(df["label"] == label) & df["readable"], "path"].tolist()


def page_of(items: list, page: int, size: int = SAMPLE_PAGE) -> list:
    """Items of page `page` (1-based) of `size` each; an out-of-range page gives the last one."""
    pages = max(1, -(-len(items) // size))
    page = min(max(1, int(page)), pages)
    return items[(page - 1) * size: page * size]


def _parsed_table(project: dict[str, Any], table: str) -> pd.DataFrame:
    """The project's photos minus the left-out ones, with its scan attrs, from the files.csv the
    page already holds parsed (ui.state's cache): parsing it again here cost 0.6 s per use at
    50,000 photos on the first draw after a read."""
    df = state.load_files_table(project)
    if df is None:  # removed or unreadable since the page looked: as reading it would have said
        raise FileNotFoundError(2, "the photo table is gone", table)
    return df


@st.cache_data(max_entries=32, show_spinner=False)
def _findings_cached(table: str, mtime: float, excluded: tuple[str, ...], attrs_json: str, decisions_json: str,
                     pairs: pd.DataFrame, _project: dict):
    import json

    from core.data.validate import check_dataset

    df = _parsed_table(_project, table)  # `excluded` and `attrs_json` are the key of what it gives
    return check_dataset(df, pairs=pairs, decisions=json.loads(decisions_json))


def _known_pairs(pairs: pd.DataFrame | None) -> pd.DataFrame:
    """The pairs found so far: none while a large set's copy check still runs."""
    from core.data.copies import PAIR_COLUMNS

    return pd.DataFrame(columns=PAIR_COLUMNS) if pairs is None or pairs.empty else pairs


def findings(project: dict[str, Any]) -> list:
    """check_dataset on the project's photos minus the left-out ones, with the copy decisions.
    While a large set's copy check runs (copy_review.copy_check), without copy findings."""
    import json

    from ui import copy_review

    table = state.files_table_path(project)
    if not table.exists():
        return []
    excluded = tuple(sorted(project.get("excluded", [])))
    # while a large set's copy check still runs, the other checks are shown meanwhile
    pairs = copy_review.active_pairs(_known_pairs(copy_review.all_pairs(project)), excluded)
    return _findings_cached(str(table), table.stat().st_mtime, excluded,
                            state.scan_attrs_key(project),
                            json.dumps(project.get("copy_decisions") or {}, sort_keys=True), pairs, project)


def exclude(project: dict[str, Any], df: pd.DataFrame, files: list[str]) -> int:
    """Apply core.data.validate.drop_files and remember what it dropped (photos stay on disk)."""
    from core.data.validate import drop_files

    kept = drop_files(df, files)
    dropped = sorted(set(df["path"]) - set(kept["path"]))
    if dropped:
        state.update_project(project, excluded=sorted(set(project.get("excluded", [])) | set(dropped)))
    return len(dropped)


@st.cache_data(max_entries=16, show_spinner=False)
def _split_counts_cached(table: str, mtime: float, excluded: tuple[str, ...], attrs_json: str,
                         val_fraction: float, test_fraction: float, seed: int, groups_spec: str,
                         groups_version: int, resplit: bool, pairs: pd.DataFrame | None,
                         _project: dict) -> pd.DataFrame:
    from core.data.groups import assign_groups
    from core.data.split import assign_splits
    from core.errors import LatihError

    df = _parsed_table(_project, table)  # `excluded` and `attrs_json` are the key of what it gives
    groups = None
    if groups_spec:
        try:
            groups = assign_groups(df, groups_spec)
        except LatihError as exc:  # as groups_ui.current_groups: an unusable spec splits without groups
            log.warning("groups %r unusable: %s", groups_spec, exc)
    usable = df[df["readable"]]
    split = assign_splits(usable, val_fraction, test_fraction, seed,
                          groups=groups[usable.index] if groups is not None else None, resplit=resplit,
                          pairs=pairs)
    return split.pivot_table(index="label", columns="split", values="path", aggfunc="count", fill_value=0)


def project_split_preview(project: dict[str, Any], val_fraction: float, test_fraction: float,
                          seed: int) -> pd.DataFrame:
    """Photos per class and split of the project's photos, as the engine will split them (by
    patient group when the project has groups). Computed once per (photo table, settings). The
    split keeps copies together, with the pairs of the project's copy check
    (copy_review.copy_check); while a large set's check still runs, as if there were none
    (copies_known() says which)."""
    from ui import copy_review

    table = state.files_table_path(project)
    spec = str(project.get("groups") or "")
    groups_file = Path(spec[4:]).expanduser() if spec.startswith("csv:") else None
    groups_version = groups_file.stat().st_mtime_ns if groups_file is not None and groups_file.is_file() else 0
    counts = _split_counts_cached(str(table), table.stat().st_mtime, tuple(sorted(project.get("excluded", []))),
                                  state.scan_attrs_key(project),
                                  float(val_fraction), float(test_fraction), int(seed),
                                  spec, groups_version, bool(project.get("resplit")),
                                  _known_pairs(copy_review.all_pairs(project)), project)
    return _split_table(counts)


def _split_table(table: pd.DataFrame) -> pd.DataFrame:
    table = table.reindex(columns=[c for c in ("train", "val", "test") if c in table.columns])
    table = table.rename(columns={c: t(f"split.{c}") for c in table.columns})
    table.index.name = t("data.axis_class")
    table.columns.name = None
    return table


def short_paths(paths, root: str | None, table: pd.DataFrame | None = None) -> list[str]:
    """Photos as the person knows them: class/file relative to the dataset folder (e.g.
    "ants/0013035.jpg", "train/bees/x.jpg"), never the internal workspace path of an uploaded zip.
    A photo outside the folder (a labels CSV) shows as label/file name."""
    from pathlib import Path

    labels = {}
    if table is not None and {"path", "label"} <= set(table.columns):
        labels = dict(zip(table["path"].astype(str), table["label"].astype(str)))
    base = Path(root).resolve() if root else None
    out = []
    for path in paths:
        p = Path(str(path))
        try:
            out.append(p.resolve().relative_to(base).as_posix() if base else "")
        except ValueError:
            out.append("")
        if not out[-1]:
            label = labels.get(str(path)) or p.parent.name
            out[-1] = f"{label}/{p.name}"
    return out

