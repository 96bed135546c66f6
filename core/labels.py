"""Labelling decisions: an append-only log per project, replayed into the current labels.

Every decision a person makes while sorting loose photos (this photo is "bees", skip it, not
sure, a new class, accept 12 suggestions at once) is ONE action appended as one JSON line to
`<project>/labels/decisions.jsonl`. Nothing is ever rewritten, and the photos themselves are
never moved, renamed or re-encoded: a label is a line in the log that names the photo's path.

Undo appends an `undo` action naming the action it takes back, so undo is itself logged and an
action of many photos (a bulk accept) is taken back as a whole. `LabelLog.state()` replays the
log: the latest action that was not undone decides each photo.

`write_training_csv` turns the current labels into `labels.csv` (`path,label`), the training
source that `core.data.scan.scan` and `latih train` read like a folder of class folders.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from core.errors import LatihError
from core.i18n import Msg

log = logging.getLogger(__name__)

LOG_FILE = "decisions.jsonl"
CSV_FILE = "labels.csv"
# what a photo can be after the log is replayed
LABELLED, SKIPPED, UNSURE = "labelled", "skipped", "unsure"
ACTIONS = ("label", "skip", "unsure", "clear", "class", "undo")
MAX_CLASS_NAME = 60


class LabelError(LatihError):
    """A labelling action that cannot be done (bad class name, nothing to undo)."""


def check_class_name(name: str) -> str:
    """The class name stripped, or LabelError with what to change (it becomes a folder-like label)."""
    clean = " ".join(str(name or "").split())
    if not clean:
        raise LabelError(Msg("err.labels.no_name"))
    if len(clean) > MAX_CLASS_NAME:
        raise LabelError(Msg("err.labels.too_long", n=str(MAX_CLASS_NAME)))
    if re.search(r"[/\\\x00-\x1f]", clean) or clean in (".", ".."):
        raise LabelError(Msg("err.labels.bad_chars"))
    return clean


@dataclass
class Action:
    id: str
    action: str
    paths: list[str] = field(default_factory=list)
    label: str | None = None
    source: str = "user"  # user | suggestion | camera | import
    target: str | None = None  # undo: the action taken back
    time: float = 0.0
    labels: list[str] = field(default_factory=list)  # accept: one class per path (else `label` for all)

    def to_json(self) -> str:
        data = {k: v for k, v in self.__dict__.items() if v not in (None, [], "")}
        return json.dumps(data, ensure_ascii=False, sort_keys=True)


@dataclass
class LabelState:
    """The log replayed: what each photo is now, the classes, and what undo would take back."""

    status: dict[str, str]  # path -> labelled | skipped | unsure
    labels: dict[str, str]  # path -> class (labelled photos only), in the order they were labelled
    classes: list[str]  # in the order they were created or first used
    sources: dict[str, str]  # path -> who labelled it (user | suggestion | camera | import)
    undoable: Action | None  # the latest action that undo would take back
    n_actions: int

    def counts(self) -> dict[str, int]:
        out = {name: 0 for name in self.classes}
        for label in self.labels.values():
            out[label] = out.get(label, 0) + 1
        return out

    def done(self, path: str) -> bool:
        """Labelled or skipped (unsure photos stay in the queue)."""
        return self.status.get(path) in (LABELLED, SKIPPED)


class LabelLog:
    """The decisions of one project: `LabelLog(<project folder>)`."""

    def __init__(self, project_folder: str | os.PathLike):
        self.folder = Path(project_folder) / "labels"
        self.path = self.folder / LOG_FILE

    # ---- writing -------------------------------------------------------------------------
    def _append(self, action: Action) -> Action:
        self.folder.mkdir(parents=True, exist_ok=True)
        line = action.to_json() + "\n"
        # One write() of one line in append mode: a reader never sees half of a line from
        # another writer on a local disk; a line cut by a crash is skipped (and logged) on read.
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        log.info("label action %s %s (%d photos, label %r)", action.id, action.action, len(action.paths),
                 action.label)
        return action

    def _new(self, kind: str, paths: Iterable[str] = (), label: str | None = None, source: str = "user",
             target: str | None = None) -> Action:
        return Action(uuid.uuid4().hex[:12], kind, [str(p) for p in paths], label, source, target, time.time())

    def label(self, paths: Iterable[str] | str, label: str, source: str = "user") -> Action:
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not paths:
            raise LabelError(Msg("err.labels.no_photos"))
        label = check_class_name(label)
        return self._append(self._new("label", paths, label, source))

    def accept(self, suggestions: dict[str, str]) -> Action:
        """Many photos, each with its own (suggested) class, as ONE action: one undo takes it back."""
        if not suggestions:
            raise LabelError(Msg("err.labels.no_suggestions"))
        paths = list(suggestions)
        action = self._new("label", paths, source="suggestion")
        action.labels = [check_class_name(suggestions[p]) for p in paths]
        return self._append(action)

    def skip(self, paths: Iterable[str] | str) -> Action:
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        return self._append(self._new("skip", paths))

    def unsure(self, paths: Iterable[str] | str) -> Action:
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        return self._append(self._new("unsure", paths))

    def clear(self, paths: Iterable[str] | str) -> Action:
        """Back to unlabelled (used when a photo's class is set to "none" in the grid)."""
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        return self._append(self._new("clear", paths))

    def add_class(self, name: str) -> Action:
        name = check_class_name(name)
        if name in self.state().classes:
            raise LabelError(Msg("err.labels.exists", name=name))
        return self._append(self._new("class", label=name))

    def undo(self) -> Action:
        """Take back the latest action that is not yet taken back; LabelError when there is none."""
        target = self.state().undoable
        if target is None:
            raise LabelError(Msg("err.labels.nothing_to_undo"))
        self._append(self._new("undo", target=target.id))
        return target

    # ---- reading -------------------------------------------------------------------------
    def actions(self) -> list[Action]:
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    out.append(Action(**data))
                except (json.JSONDecodeError, TypeError) as exc:
                    log.warning("%s line %d is damaged and ignored (%s)", self.path, number, exc)
        return out

    def state(self) -> LabelState:
        actions = self.actions()
        undone: set[str] = set()
        for action in reversed(actions):  # an undo is final (there is no redo)
            if action.action == "undo" and action.id not in undone and action.target:
                undone.add(action.target)
        live = [a for a in actions if a.action != "undo" and a.id not in undone]
        status: dict[str, str] = {}
        labels: dict[str, str] = {}
        sources: dict[str, str] = {}
        classes: list[str] = []
        for action in live:
            if action.label and action.label not in classes and action.action in ("class", "label"):
                classes.append(action.label)
            for name in action.labels:
                if name not in classes:
                    classes.append(name)
            for i, path in enumerate(action.paths):
                labels.pop(path, None)
                sources.pop(path, None)
                status.pop(path, None)
                if action.action == "label":
                    name = action.labels[i] if action.labels else action.label
                    status[path], labels[path], sources[path] = LABELLED, name, action.source
                elif action.action == "skip":
                    status[path] = SKIPPED
                elif action.action == "unsure":
                    status[path] = UNSURE
        return LabelState(status, labels, classes, sources, live[-1] if live else None, len(actions))


def write_training_csv(state: LabelState, path: str | os.PathLike) -> Path:
    """`labels.csv` (path,label) of the labelled photos, written atomically; returns its path."""
    import csv
    import io

    path = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "label"])
    for photo, label in sorted(state.labels.items()):
        writer.writerow([photo, label])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
    return path
