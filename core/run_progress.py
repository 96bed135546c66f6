"""Where a training stands, read from its metrics.jsonl: the phase, its count, a stable ETA.

Pure functions over the run's events (no streamlit), so the page, the CLI and tests agree:

  phase     starting | reading | features | epoch | validation | outputs | evaluation | stopping
            with `done` of `total` (photos, or batches for an epoch) whenever it is counted;
  eta       seconds left for the whole training, or None until it is stable: at least
            MIN_BATCHES batches (or one whole epoch) seen, and the finishing times predicted
            at the last STABLE_POINTS observations agree within STABLE_SHARE of the time left;
  rate      photos per second over real work only (photos really decoded and run through
            the model; features taken from the cache are not counted).

Codes, not sentences: the page words them through the catalogue (`progress.*`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

MIN_BATCHES = 5
STABLE_POINTS = 3
STABLE_SHARE = 0.15
STABLE_FLOOR_S = 5.0

_TASK = re.compile(r"^(?P<kind>[a-z ]+?)(?: \((?P<split>\w+)\))?$")
# task names written by the engine -> phase codes
TASK_PHASES = {"features": "features", "outputs": "outputs", "reading photos": "reading", "reading": "reading",
               "validation": "validation", "evaluation": "evaluation"}


@dataclass
class Progress:
    phase: str = "starting"
    done: int | None = None
    total: int | None = None
    split: str | None = None  # train | val | test, for the features/outputs phases
    epoch: int = 0
    epochs_total: int = 1
    stage: str | None = None
    fraction: float = 0.0  # of all epochs
    eta: float | None = None  # seconds left, only once stable
    phase_eta: float | None = None  # seconds left in a counted phase, once stable
    rate: float | None = None  # photos per second over real work
    stopping: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def counted(self) -> bool:
        return self.done is not None and bool(self.total)


def parse_task(task: str) -> tuple[str, str | None]:
    """('features', 'train') from 'features (train)'; unknown tasks keep their name."""
    match = _TASK.match(str(task or "").strip())
    if not match:
        return str(task), None
    kind = match.group("kind").strip()
    return TASK_PHASES.get(kind, kind), match.group("split")


def read_events(run_dir: str | Path) -> pd.DataFrame:
    from core.runs import read_metrics

    return read_metrics(Path(run_dir), None)


def progress_of(events: pd.DataFrame, epochs_total: int, stopping: bool = False, now: float | None = None,
                n_photos: int | None = None) -> Progress:
    """The progress of a running training from all its events (in file order)."""
    out = Progress(epochs_total=max(int(epochs_total or 1), 1), stopping=stopping)
    if n_photos:
        out.done, out.total = 0, int(n_photos)  # starting: nothing read yet, and the page says how many
    if events is None or events.empty or "type" not in events:
        if stopping:
            out.phase = "stopping"
        return out
    rows = events.to_dict("records")
    epoch_rows = [r for r in rows if r.get("type") == "epoch"]
    out.epoch = int(epoch_rows[-1]["epoch"]) if epoch_rows else 0
    out.fraction = out.epoch / out.epochs_total
    last = next((r for r in reversed(rows) if r.get("type") in ("progress", "batch", "epoch")), None)
    stage_row = next((r for r in reversed(rows) if r.get("type") == "status" and r.get("stage")), None)
    out.stage = stage_row.get("stage") if stage_row else None
    out.rate = real_rate(rows)
    if last is None:
        pass
    elif last["type"] == "progress":
        out.phase, out.split = parse_task(last.get("task", ""))
        out.done, out.total = int(last.get("done", 0)), int(last.get("total", 0))
        out.phase_eta = _task_eta(rows, last)
        batch = next((r for r in reversed(rows) if r.get("type") == "batch"), None)
        if out.phase == "validation" and batch is not None:  # the epoch whose photos are being checked
            out.epoch = max(out.epoch, int(batch.get("epoch", out.epoch)))
            out.fraction = max(out.fraction, (out.epoch - 1 + 1.0) / out.epochs_total)
    elif last["type"] == "batch":
        out.epoch = int(last.get("epoch", out.epoch))
        out.done, out.total = int(last.get("batch", 0)), int(last.get("n_batches", 0) or 0)
        out.phase = "validation" if out.total and out.done >= out.total and out.stage == "finetune" else "epoch"
        out.fraction = ((out.epoch - 1) + out.done / max(out.total, 1)) / out.epochs_total
    else:  # an epoch just ended: the next one starts
        out.phase, out.done, out.total = "epoch", None, None
    out.fraction = min(max(out.fraction, 0.0), 1.0)
    if out.phase in ("epoch", "validation"):
        out.eta = stable_eta(rows, out.epochs_total, now)
    if stopping:
        out.extra["phase_before"] = out.phase
        out.phase = "stopping" if out.phase in ("epoch", "validation", "starting", "features", "reading") \
            else out.phase
        out.eta = None
    return out


def real_rate(rows: list[dict]) -> float | None:
    """Photos per second over real work: photos forwarded for features (cache misses only, as the
    engine counts them), else the last fine-tuning epoch's own images_per_s."""
    tuned = [r for r in rows if r.get("type") == "epoch" and r.get("stage") == "finetune" and r.get("images_per_s")]
    if tuned:
        return float(tuned[-1]["images_per_s"])
    done_s, done_n = 0.0, 0
    for task, (start, end, count) in _task_spans(rows).items():
        if parse_task(task)[0] in ("features", "outputs") and end > start:
            done_s, done_n = done_s + (end - start), done_n + count
    return round(done_n / done_s, 1) if done_n and done_s > 0 else None


def _task_spans(rows: list[dict]) -> dict[str, tuple[float, float, int]]:
    """task -> (start time, last time, photos done); a task starts at the event before its first line."""
    spans: dict[str, tuple[float, float, int]] = {}
    previous_time = None
    for row in rows:
        t = row.get("time")
        if row.get("type") == "progress" and t is not None:
            task = str(row.get("task"))
            start = spans[task][0] if task in spans else (previous_time if previous_time is not None else t)
            spans[task] = (start, float(t), int(row.get("done", 0)))
        if t is not None:
            previous_time = float(t)
    return spans


def _task_eta(rows: list[dict], last: dict) -> float | None:
    """Seconds left in a counted step, once two successive readings agree."""
    task = last.get("task")
    points = [r for r in rows if r.get("type") == "progress" and r.get("task") == task and r.get("time")]
    spans = _task_spans(rows)
    if task not in spans or len(points) < STABLE_POINTS:
        return None
    start = spans[task][0]
    finishes = []
    for row in points[-STABLE_POINTS:]:
        done, total, t = int(row["done"]), int(row["total"]), float(row["time"])
        if done <= 0 or t <= start:
            return None
        finishes.append(t + (t - start) / done * (total - done))
    return _agreed(finishes, float(points[-1]["time"]))


def stable_eta(rows: list[dict], epochs_total: int, now: float | None = None) -> float | None:
    """Seconds left for the training, from the current stage's pace, once stable (else None)."""
    stage_rows = [i for i, r in enumerate(rows) if r.get("type") == "status" and r.get("stage")]
    if not stage_rows:
        return None
    first = stage_rows[-1]
    stage_start = rows[first].get("time")
    stage = rows[first].get("stage")
    if stage_start is None:
        return None
    done_before = sum(1 for r in rows[:first] if r.get("type") == "epoch")
    epochs_left_in_plan = max(epochs_total - done_before, 1)
    points = []
    for row in rows[first + 1:]:
        if row.get("type") == "batch" and row.get("time") and row.get("n_batches"):
            stage_epoch = int(row["epoch"]) - done_before
            share = ((stage_epoch - 1) + int(row["batch"]) / int(row["n_batches"])) / epochs_left_in_plan
            points.append((float(row["time"]), share))
        elif row.get("type") == "epoch" and row.get("time"):
            points.append((float(row["time"]), (int(row["epoch"]) - done_before) / epochs_left_in_plan))
    whole_epoch = any(r.get("type") == "epoch" for r in rows[first + 1:])
    batches = sum(1 for r in rows[first + 1:] if r.get("type") == "batch")
    if len(points) < STABLE_POINTS or not (whole_epoch or batches >= MIN_BATCHES) or stage not in ("head", "finetune"):
        return None
    finishes = []
    for t, share in points[-STABLE_POINTS:]:
        if share <= 0 or t <= stage_start:
            return None
        finishes.append(t + (t - stage_start) / share * (1 - share))
    return _agreed(finishes, points[-1][0], now)


def _agreed(finishes: list[float], at: float, now: float | None = None) -> float | None:
    """Seconds left when the predicted finishing times agree, else None."""
    left = finishes[-1] - at
    spread = max(finishes) - min(finishes)
    if spread > max(STABLE_SHARE * max(left, 0.0), STABLE_FLOOR_S):
        return None
    now = at if now is None else max(now, at)
    return max(finishes[-1] - now, 0.0)


__all__ = ["Progress", "progress_of", "parse_task", "read_events", "real_rate", "stable_eta", "MIN_BATCHES"]
