"""Data page: review the confirmed copy pairs side by side and decide, pair by pair or in bulk.

Decisions live in the project (`copy_decisions`: {core.data.copies.pair_key: "keep" | "left"
| "right"}), so a pair is not asked about again after a reload. Leaving a photo out adds it
to the project's `excluded` list, which the training config carries (`TrainConfig.exclude`).
Every file and class name is shown as plain text (st.text), never as Markdown.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.data.copies import pair_key
from ui import state
from ui.i18n import t, t_plain
from ui.media import thumbnail

log = logging.getLogger(__name__)

PAGE_SIZE = 8
DECISIONS = ("keep", "left", "right")


# Up to this many photos the check runs inside the page (under 4 s on 2 cores, cold: 1,352 photos
# took 2.2 s); beyond, in a background process (core.data.copy_check) that the page polls:
# 50,000 photos take about a minute.
INLINE_LIMIT = 2_000


@st.cache_data(max_entries=8, show_spinner=False)
def _pairs_cached(table: str, mtime: float, _project: dict) -> pd.DataFrame:
    from core.data.copy_check import run_check

    return run_check(table, df=state.load_files_table(_project, include_excluded=True))


@st.cache_data(max_entries=8, show_spinner=False)
def _job_pairs_cached(folder: str, mtime_ns: int) -> pd.DataFrame:
    from core.data.copy_check import read_pairs

    return read_pairs(folder)


def copy_check(project: dict[str, Any]) -> dict:
    """Where the copy check of the project's photos stands: {"state": "done", "pairs": ...},
    {"state": "running", "progress", "task", ...} or {"state": "failed", "message", ...}.
    A large set's check is started in the background the first time it is asked for."""
    from core.data import copy_check as job

    table = state.files_table_path(project)
    photos = state.readable_count(project)
    if photos is None:
        return {"state": "done", "pairs": pd.DataFrame()}
    if photos <= INLINE_LIMIT:
        return {"state": "done", "pairs": _pairs_cached(str(table), table.stat().st_mtime, project)}
    folder = job.job_dir(table)
    status = job.read_job(folder)
    if status["state"] == "none":
        folder = job.start(table)
        status = job.read_job(folder)
    if status["state"] == "done":
        try:
            status["pairs"] = _job_pairs_cached(str(folder), (folder / job.PAIRS_FILE).stat().st_mtime_ns)
        except (OSError, ValueError, KeyError) as exc:  # removed or damaged: check again, never a traceback
            log.warning("copy check result in %s unreadable (%s): checking again", folder, exc)
            (folder / job.STATUS_FILE).unlink(missing_ok=True)
            job.start(table)
            status = job.read_job(folder)
    status["photos"] = photos
    return status


def check_again(project: dict[str, Any]) -> None:
    """Start a large set's copy check again after it failed."""
    from core.data import copy_check as job

    job.start(state.files_table_path(project))


def all_pairs(project: dict[str, Any]) -> pd.DataFrame | None:
    """Confirmed copy pairs among all readable photos of the project (left-out photos included);
    None while a large set's check is still running (or failed)."""
    if not state.files_table_path(project).exists():
        return pd.DataFrame()
    return copy_check(project).get("pairs")


def active_pairs(pairs: pd.DataFrame, excluded) -> pd.DataFrame:
    """The pairs whose two photos are both still in the dataset."""
    if pairs.empty:
        return pairs
    gone = set(excluded or [])
    return pairs[~pairs["file_a"].isin(gone) & ~pairs["file_b"].isin(gone)].reset_index(drop=True)


def decide(project: dict[str, Any], rows: list[dict], decision: str) -> None:
    """Store one decision for each pair row; "left"/"right" also leave that photo out."""
    if decision not in DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    decisions = dict(project.get("copy_decisions") or {})
    excluded = set(project.get("excluded") or [])
    for row in rows:
        decisions[pair_key(row["file_a"], row["file_b"])] = decision
        if decision == "left":
            excluded.add(row["file_a"])
        elif decision == "right":
            excluded.add(row["file_b"])
    log.info("copy review: %d pairs -> %s", len(rows), decision)
    state.update_project(project, copy_decisions=decisions, excluded=sorted(excluded))


def forget_decisions(project: dict[str, Any], pairs: pd.DataFrame) -> None:
    """Ask about every pair again: drop the decisions and bring back the photos they left out."""
    decisions = dict(project.get("copy_decisions") or {})
    excluded = set(project.get("excluded") or [])
    for _, row in pairs.iterrows():
        choice = decisions.pop(pair_key(row["file_a"], row["file_b"]), None)
        if choice == "left":
            excluded.discard(row["file_a"])
        elif choice == "right":
            excluded.discard(row["file_b"])
    state.update_project(project, copy_decisions=decisions, excluded=sorted(excluded))


def _open_pairs(project: dict[str, Any], pairs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pairs still to review, pairs decided); byte-identical pairs in one class and split are
    not asked about (the one-click fix handles them)."""
    if pairs.empty:
        return pairs, pairs
    decisions = project.get("copy_decisions") or {}
    keys = pairs.apply(lambda r: pair_key(r["file_a"], r["file_b"]), axis=1)
    decided = keys.isin(set(decisions))
    excluded = set(project.get("excluded") or [])
    gone = pairs["file_a"].isin(excluded) | pairs["file_b"].isin(excluded)
    trivial = (pairs["kind"] == "identical") & (pairs["scope"] == "within_class")
    return pairs[~decided & ~gone & ~trivial].reset_index(drop=True), pairs[decided].reset_index(drop=True)


def _side(col, path: str, label: str, split: str, root: str | None) -> None:
    with col:
        thumb = thumbnail(path, 320)
        if thumb is None:
            st.text(t("common.unreadable"))
        else:
            st.image(thumb, width=280)
        short = path[len(root.rstrip("/")) + 1:] if root and path.startswith(root.rstrip("/") + "/") else Path(path).name
        st.text(t_plain("copies.class_split", label=label, split=split or t("data.unsplit")))
        st.text(short)


def render(project: dict[str, Any]) -> None:
    """The review section of the Data page."""
    pairs = all_pairs(project)
    if pairs is None:  # still being looked for: progress_section says so
        return
    open_pairs, decided = _open_pairs(project, pairs)
    if pairs.empty or (open_pairs.empty and decided.empty):
        return
    st.subheader(t("copies.title"))
    st.caption(t("copies.help"))
    root = (project.get("scan_attrs") or {}).get("root")
    if open_pairs.empty:
        st.success(t("copies.all_decided", n=len(decided)), icon=":material/check_circle:")
    else:
        st.write(t("copies.to_review", n=len(open_pairs)))
        bulk = st.columns(3)
        if bulk[0].button(t("copies.bulk_keep"), key="copies_bulk_keep"):
            decide(project, open_pairs.to_dict("records"), "keep")
            st.rerun()
        if bulk[1].button(t("copies.bulk_right"), key="copies_bulk_right", help=t("copies.bulk_right_help")):
            decide(project, open_pairs.to_dict("records"), "right")
            st.rerun()
        pages = max(1, -(-len(open_pairs) // PAGE_SIZE))
        page = int(bulk[2].number_input(t("copies.page", n=pages), 1, pages, 1, key="copies_page")) if pages > 1 else 1
        shown = open_pairs.iloc[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        for _, row in shown.iterrows():
            _pair(project, row.to_dict(), root)
    if not decided.empty:
        with st.expander(t("copies.decided_title", n=len(decided))):
            table = pd.DataFrame({
                t("copies.col_left"): decided["file_a"].map(lambda p: Path(p).name),
                t("copies.col_right"): decided["file_b"].map(lambda p: Path(p).name),
                t("copies.col_decision"): decided.apply(lambda r: _decision_text(project, r), axis=1)})
            st.dataframe(table, hide_index=True, key="copies_decided_table")
            if st.button(t("copies.forget"), key="copies_forget"):
                forget_decisions(project, decided)
                st.rerun()


def _decision_text(project: dict[str, Any], row) -> str:
    choice = (project.get("copy_decisions") or {}).get(pair_key(row["file_a"], row["file_b"]), "keep")
    return t(f"copies.decision_{choice}")


def _pair(project: dict[str, Any], row: dict, root: str | None) -> None:
    key = pair_key(row["file_a"], row["file_b"])
    import hashlib

    kid = hashlib.sha1(key.encode()).hexdigest()[:12]
    with st.container(border=True, key=f"copies_pair_{kid}"):
        kind = t(f"copies.kind_{row['kind']}")
        st.text(t_plain("copies.pair_line", kind=kind, similarity=f"{float(row['similarity']):.2f}",
                  scope=t(f"copies.scope_{row['scope']}")))
        left, right = st.columns(2)
        _side(left, row["file_a"], row["class_a"], row["split_a"], root)
        _side(right, row["file_b"], row["class_b"], row["split_b"], root)
        buttons = st.columns(3)
        identical_classes = row["kind"] == "identical" and row["scope"] == "across_classes"
        if not identical_classes and buttons[0].button(t("copies.keep"), key=f"copies_keep_{kid}"):
            decide(project, [row], "keep")
            st.rerun()
        if buttons[1].button(t("copies.leave_left"), key=f"copies_left_{kid}"):
            decide(project, [row], "left")
            st.rerun()
        if buttons[2].button(t("copies.leave_right"), key=f"copies_right_{kid}"):
            decide(project, [row], "right")
            st.rerun()


def progress_section(project: dict[str, Any], where: str) -> dict:
    """What the page shows while a large set's copy check runs in the background (a bar that
    refreshes every 2 s, the whole page once it is done) or after it failed (why, and a button
    to check again). `where` is "data" or "train". Returns the check's status."""
    from ui.i18n import say_status

    check = copy_check(project)
    if check["state"] == "running":
        _poll(project, where)
    elif check["state"] == "failed":
        st.error(say_status(check) or t("common.error_generic"), icon=":material/error:")
        if st.button(t("copies.check_again"), key=f"{where}_copies_check_again", icon=":material/refresh:"):
            check_again(project)
            st.rerun()
    return check


@st.fragment(run_every=2)
def _poll(project: dict[str, Any], where: str) -> None:
    check = copy_check(project)
    if check["state"] != "running":
        st.rerun(scope="app")  # the findings, the pairs to review, the Start button
    task = check.get("task") if check.get("task") in ("thumbnails", "compare") else "start"
    st.progress(float(check.get("progress") or 0.0),
                text=t(f"copies.running_{where}", n=f"{check.get('photos', 0):,}",
                       step=t(f"copies.step_{task}")))
