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


def save_upload(uploaded, folder: Path) -> Path:
    """Write a Streamlit UploadedFile into `folder` (same name and size: kept as is).

    Written to a temp file and renamed, so a full disk leaves no truncated upload behind
    (DiskFullError says how much room is needed, and where)."""
    from core.diskspace import partial_file, require_free

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe_name(uploaded.name)
    data = uploaded.getbuffer()
    if not (target.exists() and target.stat().st_size == len(data)):
        require_free(folder, len(data), f"saving {target.name}")
        tmp = target.with_name(f".{target.name}.upload")
        with partial_file(tmp, len(data)):
            with open(tmp, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
    return target


def uploads_dir(project: dict[str, Any]) -> Path:
    return state.project_dir(project["id"]) / "uploads"


def class_photos_dir(project: dict[str, Any]) -> Path:
    return state.project_dir(project["id"]) / "photos"


def read_source(project: dict[str, Any], source: str | Path, kind: str) -> bool:
    """open_source + scan with a progress bar; stores the table in the project. LatihError propagates."""
    from core.data.scan import open_source, scan

    bar = st.progress(0.0, text=t("data.progress_open"))
    uploaded = kind == "zip" and Path(source).parent == uploads_dir(project)
    try:
        root = open_source(source)
        bar.progress(0.25, text=t("data.progress_scan"))
        df = scan(root)
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


def read_table(table: str) -> pd.DataFrame:
    """The project's files.csv as scan() returns it (types restored)."""
    df = pd.read_csv(table, keep_default_na=False, dtype=str)
    for col in ("width", "height"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype(int)
    if "readable" in df.columns:
        df["readable"] = df["readable"].astype(str).str.lower().isin(("true", "1"))
    return df


@st.cache_data(max_entries=32, show_spinner=False)
def _findings_cached(table: str, mtime: float, excluded: tuple[str, ...], attrs_json: str, decisions_json: str,
                     pairs: pd.DataFrame):
    import json

    from core.data.validate import check_dataset

    df = read_table(table)
    if excluded:
        df = df[~df["path"].isin(set(excluded))].reset_index(drop=True)
    df.attrs.update(json.loads(attrs_json))
    return check_dataset(df, pairs=pairs, decisions=json.loads(decisions_json))


def findings(project: dict[str, Any]) -> list:
    """check_dataset on the project's photos minus the left-out ones, with the copy decisions."""
    import json

    from ui import copy_review

    table = state.files_table_path(project)
    if not table.exists():
        return []
    excluded = tuple(sorted(project.get("excluded", [])))
    pairs = copy_review.active_pairs(copy_review.all_pairs(project), excluded)
    return _findings_cached(str(table), table.stat().st_mtime, excluded,
                            json.dumps(project.get("scan_attrs") or {}, sort_keys=True),
                            json.dumps(project.get("copy_decisions") or {}, sort_keys=True), pairs)


def exclude(project: dict[str, Any], df: pd.DataFrame, files: list[str]) -> int:
    """Apply core.data.validate.drop_files and remember what it dropped (photos stay on disk)."""
    from core.data.validate import drop_files

    kept = drop_files(df, files)
    dropped = sorted(set(df["path"]) - set(kept["path"]))
    if dropped:
        state.update_project(project, excluded=sorted(set(project.get("excluded", [])) | set(dropped)))
    return len(dropped)


def split_preview(df: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int,
                  groups: pd.Series | None = None, resplit: bool = False) -> pd.DataFrame:
    """Photos per class and split, as the engine will split them (by patient group when given)."""
    from core.data.split import assign_splits

    usable = df[df["readable"]] if "readable" in df.columns else df
    split = assign_splits(usable, val_fraction, test_fraction, seed,
                          groups=groups[usable.index] if groups is not None else None, resplit=resplit)
    table = split.pivot_table(index="label", columns="split", values="path", aggfunc="count", fill_value=0)
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

