"""Label: sort unsorted photos into classes, with the model's suggestions and keyboard keys."""
from __future__ import annotations

import hashlib
import logging

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.errors import LatihError
from ui import camera, labelling, state
from ui.components import frame, next_step, page_header, require_project
from ui.i18n import num, t
from ui.media import thumbnail

log = logging.getLogger(__name__)
GRID = 12
ERROR_KEY = "label_last_error"

frame()
page_header("label.title", "label.purpose")
project = require_project()


# ---- actions (widget callbacks: they run before the page, with the photo the person saw) --------
def _do(kind: str, paths=(), name: str | None = None, mapping: dict | None = None) -> None:
    fresh = state.load_project(project["id"]) or project
    labels = labelling.label_log(fresh)
    try:
        if kind == "label":
            labels.label(list(paths), name)
        elif kind == "skip":
            labels.skip(list(paths))
        elif kind == "unsure":
            labels.unsure(list(paths))
        elif kind == "clear":
            labels.clear(list(paths))
        elif kind == "accept":
            labels.accept(mapping or {})
        elif kind == "undo":
            labels.undo()
        elif kind == "class":
            labels.add_class(name or "")
        labelling.adopt(fresh)
        labelling.sync(fresh)
        st.session_state.pop(ERROR_KEY, None)
    except LatihError as exc:
        log.info("labelling refused: %s", exc)
        st.session_state[ERROR_KEY] = str(exc)


def _grid_pick(path: str, key: str) -> None:
    choice = st.session_state.get(key)
    if choice == "__skip__":
        _do("skip", [path])
    elif choice == "__unsure__":
        _do("unsure", [path])
    elif choice:
        _do("label", [path], choice)


# ---- what there is --------------------------------------------------------------------------------
current = labelling.label_log(project).state()
photos = labelling.all_photos(project, current)
if st.session_state.get(ERROR_KEY):
    st.error(st.session_state[ERROR_KEY], icon=":material/error:")

if photos.empty:
    st.info(t("label.no_photos"), icon=":material/info:")
    camera.unsorted_section(project, "label", expanded=True)
    st.stop()

readable = photos[photos["readable"].astype(bool)]
unreadable = len(photos) - len(readable)
found, status = labelling.suggestions(project, current, photos)
todo = labelling.queue(current, photos, found)
classes = current.classes
n_labelled = sum(1 for p in readable["path"] if p in current.labels)

# ---- progress and counts ------------------------------------------------------------------------
top = st.columns([1, 1, 1, 1])
top[0].metric(t("label.n_photos"), num(f"{len(readable):,}"))
top[1].metric(t("label.n_labelled"), num(f"{n_labelled:,}"))
top[2].metric(t("label.n_left"), num(f"{len(todo):,}"))
cv = (found or {}).get("cv")
top[3].metric(t("label.cv_accuracy"), num(f"{cv['accuracy']:.0%}") if cv else "–", help=t("label.cv_help"))
st.progress(n_labelled / max(len(readable), 1), text=t("label.progress", done=n_labelled, total=len(readable)))
if unreadable:
    st.warning(t("label.unreadable", n=unreadable), icon=":material/warning:")

left, right = st.columns([1, 2], gap="large")
with left:
    counts = current.counts()
    if counts:
        st.dataframe({t("label.col_class"): list(counts), t("label.col_count"): list(counts.values())},
                     hide_index=True, key="label_counts")
    with st.form("label_class_form", clear_on_submit=True, border=False):
        cols = st.columns([3, 2], vertical_alignment="bottom")
        new_name = cols[0].text_input(t("label.new_class"), key="label_new_class",
                                      placeholder=t("label.new_class_placeholder"))
        if cols[1].form_submit_button(t("label.add_class"), key="label_add_class"):
            _do("class", name=new_name)
            st.rerun()
with right:
    curve = (found or {}).get("curve") or []
    if len(curve) >= 2:
        fig = go.Figure(go.Scatter(x=[n for n, _ in curve], y=[a for _, a in curve], mode="lines+markers"))
        fig.update_layout(height=220, margin=dict(l=10, r=10, t=30, b=10), title=t("label.curve_title"),
                          xaxis_title=t("label.curve_x"), yaxis_title=t("label.curve_y"), yaxis_range=[0, 1.02])
        st.plotly_chart(fig, key="label_curve")
    elif not (found or {}).get("ready"):
        from core.active import MIN_PER_CLASS

        st.info(t("label.need_labels", n=MIN_PER_CLASS), icon=":material/school:")


@st.fragment(run_every=1.5)
def _wait_for_model() -> None:
    from core import active

    now = active.refresh_status(labelling.labels_dir(project))
    on_disk = active.read_suggestions(labelling.labels_dir(project)) or {}
    if not now["running"] or on_disk.get("version") != (found or {}).get("version"):
        st.rerun(scope="app")
    done, total = now["progress"]
    st.caption(t("label.model_working", done=done, total=total) if total else t("label.model_working_short"))


if found is not None:
    # Which labels the suggestions, the order and the bulk accept below come from: the newest
    # labels, or an older round while the model catches up (so a person, and a test, can tell).
    fresh = found.get("version") == labelling.labels_version(current)
    with st.container(key="label_basis"):
        st.caption(t("label.basis" if fresh else "label.basis_old", n=int(found.get("n_labels") or 0)))
stale = found is None or found.get("version") != labelling.labels_version(current)
if status["running"] or (stale and not status.get("error")):
    _wait_for_model()
elif status.get("error"):
    st.warning(t("label.model_failed", error=status["error"]), icon=":material/warning:")

# ---- bulk accept -----------------------------------------------------------------------------------
suggested = (found or {}).get("suggestions") or {}
if suggested and todo:
    with st.container(border=True):
        cols = st.columns([2, 2], vertical_alignment="bottom")
        threshold = cols[0].slider(t("label.threshold"), 0.5, 0.99, 0.9, 0.01, key="label_threshold",
                                   help=t("label.threshold_help"))
        confident = {p: suggested[p][0] for p in todo if p in suggested and suggested[p][1] >= threshold}
        if cv and cv["accuracy"] < threshold:
            # Why: with few labels the head's confidence runs ahead of its real accuracy (on ACRIMA
            # after 8 labels per class, suggestions at >= 90% were right only 68% of the time).
            st.warning(t("label.accept_caution", acc=f"{cv['accuracy']:.0%}", pct=f"{threshold:.0%}"),
                       icon=":material/warning:")
        cols[1].button(t("label.accept", n=len(confident), pct=f"{threshold:.0%}"), key="label_accept",
                       disabled=not confident, on_click=_do, args=("accept",), kwargs={"mapping": confident},
                       type="primary")

# ---- the photos --------------------------------------------------------------------------------------
cols = st.columns([2, 1, 1], vertical_alignment="bottom")
mode = cols[0].segmented_control(t("label.mode"), ["one", "grid"], default="one", key="label_mode",
                                 format_func=lambda m: t(f"label.mode_{m}")) or "one"
cols[1].button(t("label.undo"), key="label_undo", shortcut="Z", on_click=_do, args=("undo",),
               disabled=current.undoable is None, icon=":material/undo:")
st.caption(t("label.keys"))
if (found or {}).get("order"):
    st.caption(t("label.order_note"))

if not todo:
    st.success(t("label.all_done"), icon=":material/check_circle:")
    next_step("train", "label.next")
    camera.unsorted_section(project, "label")
    st.stop()

photo = todo[0]
hint = suggested.get(photo)


def _keys(path: str, hint) -> None:
    """Class buttons 1-9 (keyboard keys), skip (S) and unsure (U) for `path`."""
    buttons = st.columns(min(len(classes), 9) + 2) if classes else st.columns(2)
    for i, name in enumerate(classes[:9]):
        buttons[i].button(labelling.plain(name), key=f"label_class_{i}", shortcut=str(i + 1),
                          on_click=_do, args=("label", [path], name), width="stretch",
                          type="primary" if hint and hint[0] == name else "secondary")
    buttons[-2].button(t("label.skip"), key="label_skip", shortcut="S", on_click=_do, args=("skip", [path]),
                       width="stretch")
    buttons[-1].button(t("label.unsure"), key="label_unsure", shortcut="U", on_click=_do, args=("unsure", [path]),
                       width="stretch")
    if not classes:
        st.caption(t("label.no_classes"))


def _large(path: str, side: int = 1024):
    """The photo at up to `side` px for the one-photo view (decoded each time: not kept in memory)."""
    from core.data.decode import load_image

    try:
        image = load_image(path, draft_size=side)
    except LatihError as exc:
        log.info("cannot show %s: %s", path, exc)
        return None
    image.thumbnail((side, side))
    return np.asarray(image)


def _hint_text(hint) -> str:
    return t("label.suggested", name=hint[0], p=f"{hint[1]:.0%}") if hint else t("label.no_suggestion")


if mode == "one":
    with st.container(border=True, key="label_one"):
        _keys(photo, hint)
        zoom = st.slider(t("label.zoom"), 1.0, 4.0, 1.0, 0.5, key="label_zoom")
        image = _large(photo)
        if image is not None and zoom > 1:
            h, w = image.shape[:2]
            ch, cw = int(h / zoom), int(w / zoom)
            image = np.ascontiguousarray(image[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw])
        st.text(_hint_text(hint))
        if image is None:
            st.warning(t("common.unreadable"))
        else:
            st.image(image, caption=photo.rsplit("/", 1)[-1], width=min(720, max(320, image.shape[1])))
        if current.status.get(photo) == "unsure":
            st.caption(t("label.was_unsure"))
else:
    with st.container(border=True, key="label_first"):
        st.caption(t("label.grid_keys"))
        _keys(photo, hint)
    options = ["", *classes, "__skip__", "__unsure__"]
    names = {"": t("label.pick"), "__skip__": t("label.skip"), "__unsure__": t("label.unsure")}
    grid = st.columns(4)
    for i, path in enumerate(todo[:GRID]):
        with grid[i % 4]:
            thumb = thumbnail(path)
            if thumb is None:
                st.caption(t("common.unreadable"))
            else:
                st.image(thumb, caption=path.rsplit("/", 1)[-1], width="stretch")
            st.text(_hint_text(suggested.get(path)))
            key = "label_pick_" + hashlib.sha1(path.encode()).hexdigest()[:10]
            st.selectbox(t("label.pick_label"), options, key=key, label_visibility="collapsed",
                         format_func=lambda o: names.get(o, o), on_change=_grid_pick, args=(path, key))
    if len(todo) > GRID:
        st.caption(t("label.more", n=len(todo) - GRID))

st.divider()
camera.unsorted_section(project, "label")
next_step("train", "label.next")
