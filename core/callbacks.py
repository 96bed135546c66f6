"""What happens around the training loop, kept out of it (Lightning's loop/callback split).

The loop in core/loop.py only trains and measures; everything else (saving the best
weights, stopping early, logging metrics for the UI, progress bars, the Stop button) is a
Callback. Hooks receive the shared `TrainContext`; a callback asks the loop to stop by
setting `ctx.should_stop` (and `ctx.stop_reason`), or cancels at once by raising Cancelled.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from core.errors import Cancelled

log = logging.getLogger(__name__)


@dataclass
class TrainContext:
    """The state the loop shares with callbacks (read it; only callbacks set should_stop)."""

    config: Any  # TrainConfig
    run_dir: Path
    model: torch.nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None  # of the current stage
    class_names: list[str] = field(default_factory=list)
    device: torch.device = torch.device("cpu")
    stage: str = "head"  # "head" (backbone frozen) or "finetune"
    epoch: int = 0  # 1-based, counted across stages
    total_epochs: int = 0
    should_stop: bool = False
    stop_reason: str = ""
    best_epoch: int | None = None
    best_value: float | None = None
    best_metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)


class Callback:
    """Override the hooks you need; all are no-ops here."""

    def on_train_start(self, ctx: TrainContext) -> None: ...

    def on_stage_start(self, ctx: TrainContext, stage: str, epochs: int) -> None: ...

    def on_progress(self, ctx: TrainContext, task: str, done: int, total: int) -> None:
        """Long steps outside the epochs (e.g. computing features once): done of total photos."""

    def on_epoch_start(self, ctx: TrainContext) -> None: ...

    def on_batch_end(self, ctx: TrainContext, batch: int, n_batches: int, loss: float) -> None: ...

    def on_epoch_end(self, ctx: TrainContext, metrics: dict) -> None: ...

    def on_train_end(self, ctx: TrainContext, result: Any) -> None: ...


def _mode_for(monitor: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return "min" if monitor.endswith("loss") else "max"


def _improved(value: float | None, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved for `patience` epochs (0 disables).

    Reset at each stage: two-stage's fine-tuning starts with a fresh patience, because its
    first epochs (new warm-up, unfrozen layers) are often worse before they get better.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, mode: str = "auto", min_delta: float = 0.0):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode = _mode_for(monitor, mode)
        self.best: float | None = None
        self.bad_epochs = 0

    def on_stage_start(self, ctx, stage, epochs):
        self.best, self.bad_epochs = None, 0

    def on_epoch_end(self, ctx, metrics):
        if self.patience <= 0:
            return
        if _improved(metrics.get(self.monitor), self.best, self.mode, self.min_delta):
            self.best, self.bad_epochs = metrics[self.monitor], 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            ctx.should_stop = True
            ctx.stop_reason = f"{self.monitor} did not improve for {self.patience} epochs"
            log.info("early stopping at epoch %d: %s", ctx.epoch, ctx.stop_reason)


class BestCheckpoint(Callback):
    """Save model.safetensors whenever `monitor` improves (across all stages).

    Written to a temporary file then renamed, so a crash or a Stop mid-save never leaves a
    damaged model: the previous best stays in place.
    """

    def __init__(self, path: str | os.PathLike | None = None, monitor: str = "val_loss", mode: str = "auto"):
        self.path = Path(path) if path is not None else None
        self.monitor = monitor
        self.mode = _mode_for(monitor, mode)

    def on_train_start(self, ctx):
        if self.path is None:
            self.path = Path(ctx.run_dir) / "model.safetensors"

    def on_epoch_end(self, ctx, metrics):
        value = metrics.get(self.monitor)
        if not _improved(value, ctx.best_value, self.mode):
            return
        ctx.best_value, ctx.best_epoch, ctx.best_metrics = value, metrics["epoch"], dict(metrics)
        save_weights(ctx.model, self.path)
        log.info("epoch %d is the best so far (%s %.4f); saved %s", ctx.epoch, self.monitor, value, self.path.name)


def save_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    # contiguous + cpu: safetensors refuses strided views and channels_last CUDA tensors.
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    from core.diskspace import partial_file, replace_durably

    tmp = path.with_name(f".{path.name}.tmp")
    needed = sum(v.numel() * v.element_size() for v in state.values())
    with partial_file(tmp, needed):
        try:
            save_file(state, str(tmp))
        except Exception as exc:  # safetensors reports a full disk as SafetensorError, not OSError
            if "No space left" in str(exc) or "Disk quota" in str(exc):
                import errno

                raise OSError(errno.ENOSPC, str(exc)) from exc
            raise
        replace_durably(tmp, path)  # a power cut never leaves a named checkpoint without its bytes


class MetricsLogger(Callback):
    """Append JSON lines to <run>/metrics.jsonl, flushed at every write so the UI can follow.

    Epoch lines always; batch lines at most every `batch_interval_s` (and the last batch of
    each epoch), so a fast head stage does not write thousands of lines.
    """

    def __init__(self, path: str | os.PathLike | None = None, batch_interval_s: float = 0.5):
        self.path = Path(path) if path is not None else None
        self.batch_interval_s = batch_interval_s
        self._last_batch_write = 0.0

    def on_train_start(self, ctx):
        if self.path is None:
            from core.runs import METRICS_FILE

            self.path = Path(ctx.run_dir) / METRICS_FILE
        self.write({"type": "status", "state": "running", "message": "training started"})

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({**record, "time": round(time.time(), 3)}, default=float) + "\n")
            handle.flush()

    def on_stage_start(self, ctx, stage, epochs):
        self.write({"type": "status", "stage": stage, "message": f"stage {stage}: {epochs} epochs"})

    def on_progress(self, ctx, task, done, total):
        now = time.monotonic()
        if done == total or now - self._last_batch_write >= self.batch_interval_s:
            self._last_batch_write = now
            self.write({"type": "progress", "task": task, "done": done, "total": total})

    def on_batch_end(self, ctx, batch, n_batches, loss):
        now = time.monotonic()
        if batch == n_batches or now - self._last_batch_write >= self.batch_interval_s:
            self._last_batch_write = now
            self.write({"type": "batch", "epoch": ctx.epoch, "stage": ctx.stage, "batch": batch,
                        "n_batches": n_batches, "loss": round(float(loss), 6)})

    def on_epoch_end(self, ctx, metrics):
        self.write({"type": "epoch", **metrics})

    def on_train_end(self, ctx, result):
        self.write({"type": "status", "state": getattr(result, "status", "done"),
                    "best_epoch": ctx.best_epoch, "message": ctx.stop_reason or "finished"})


class ProgressBar(Callback):
    """tqdm bars on stderr for the command line: one for long steps, one over the epochs."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self._task_bar = None
        self._epoch_bar = None
        self._last_postfix = time.monotonic()

    def on_progress(self, ctx, task, done, total):
        from tqdm import tqdm

        if self._task_bar is None:
            from core.i18n import tr

            self._task_bar = tqdm(total=total, desc=str(_task_text(task)), unit=tr("cli.unit.photo"),
                                  file=self.stream, leave=False)
        self._task_bar.n = done
        self._task_bar.refresh()
        if done >= total:
            self._task_bar.close()
            self._task_bar = None

    def on_stage_start(self, ctx, stage, epochs):
        from tqdm import tqdm

        self._close_epoch_bar()
        from core.i18n import tr

        label = tr("phase.head_short" if stage == "head" else "phase.fine_tune_short")
        self._epoch_bar = tqdm(total=epochs, desc=label, unit=tr("cli.unit.epoch"), file=self.stream)

    def on_batch_end(self, ctx, batch, n_batches, loss):
        # Only slow epochs need a batch counter; fast head epochs would just flood the terminal.
        now = time.monotonic()
        if self._epoch_bar is not None and n_batches > 1 and now - self._last_postfix >= 1.0:
            self._last_postfix = now
            from core.i18n import tr

            self._epoch_bar.set_postfix_str(tr("cli.postfix_batch", batch=batch, n=n_batches, loss=f"{loss:.3f}"),
                                            refresh=True)

    def on_epoch_end(self, ctx, metrics):
        if self._epoch_bar is not None:
            self._epoch_bar.update(1)
            from core.i18n import tr

            self._epoch_bar.set_postfix_str(
                tr("cli.postfix_epoch", acc=f"{metrics.get('val_acc', float('nan')):.3f}",
                   loss=f"{metrics.get('val_loss', float('nan')):.3f}"), refresh=False)

    def on_train_end(self, ctx, result):
        self._close_epoch_bar()

    def _close_epoch_bar(self):
        if self._epoch_bar is not None:
            self._epoch_bar.close()
            self._epoch_bar = None


class CancelFile(Callback):
    """Stop (raise Cancelled) when `<run>/STOP` exists; checked between batches and steps."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else None
        self.fired = False

    def on_train_start(self, ctx):
        if self.path is None:
            self.path = Path(ctx.run_dir) / "STOP"
        self._check()

    def _check(self):
        # Once only: after the stop, the trainer still saves the best checkpoint's outputs and
        # evaluation (which report progress too); cancelling those would fail the run.
        if not self.fired and self.path is not None and self.path.exists():
            self.fired = True
            set_phase(self.path.parent, "stopping")  # the page words it: saving the best model
            raise Cancelled("stopped by the user")

    def on_progress(self, ctx, task, done, total):
        self._check()

    def on_epoch_start(self, ctx):
        self._check()

    def on_batch_end(self, ctx, batch, n_batches, loss):
        self._check()


def set_phase(run_dir: Path, phase: str) -> None:
    """status.json's `phase` code (core.run_progress phases), for the pages to put in words."""
    from core.runs import update_status

    try:
        update_status(run_dir, phase=phase)
    except Exception as exc:  # the phase is for people; never worth failing a training
        log.warning("phase not written: %s", exc)


class StatusLine(Callback):
    """Keep status.json's one-line message current ("epoch 3 of 10"), not "preparing the photos"."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)

    def _say(self, message: str, **extra) -> None:
        from core.runs import update_status

        try:
            update_status(self.run_dir, message=message, **extra)
        except Exception as exc:  # the message is for people; never worth failing a training
            log.warning("status message not written: %s", exc)

    def on_stage_start(self, ctx, stage, epochs):
        from core.i18n import Msg

        self._say(Msg("phase.head" if stage == "head" else "phase.fine_tune"), stage=stage, phase="epoch")

    def on_progress(self, ctx, task, done, total):
        from core.i18n import Msg

        if done == 0 or done == total:
            from core.run_progress import parse_task

            self._say(Msg("phase.task_count", task=_task_text(task), done=done, total=total),
                      phase=parse_task(task)[0])

    def on_epoch_start(self, ctx):
        from core.i18n import Msg

        self._say(Msg("phase.epoch", epoch=ctx.epoch, total=ctx.total_epochs), epoch=ctx.epoch,
                  epochs_total=ctx.total_epochs, phase="epoch")


def _task_text(task: str):
    """"features (train)" as a catalogue text (phase.task.features with its split), else as is."""
    import re

    from core.i18n import Msg, catalogue

    match = re.fullmatch(r"(\w+) \((\w+)\)", task)
    if match and f"phase.task.{match[1]}" in catalogue("en") and match[2] in ("train", "val", "test"):
        return Msg(f"phase.task.{match[1]}", split=Msg(f"figure.split.{match[2]}"))
    if re.fullmatch(r"\w+", task) and f"phase.task.{task}" in catalogue("en"):  # e.g. "validation"
        return Msg(f"phase.task.{task}")
    return task


class FunctionCallback(Callback):
    """Plain functions as hooks, for the UI: FunctionCallback(on_epoch_end=lambda ctx, m: ...)."""

    HOOKS = ("on_train_start", "on_stage_start", "on_progress", "on_epoch_start", "on_batch_end",
             "on_epoch_end", "on_train_end")

    def __init__(self, **functions: Callable):
        unknown = set(functions) - set(self.HOOKS)
        if unknown:
            raise TypeError(f"unknown callback hooks: {', '.join(sorted(unknown))}")
        for name, function in functions.items():
            setattr(self, name, function)


class CallbackList:
    """Calls each hook on every callback in order."""

    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    def __getattr__(self, hook: str):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args, **kwargs):
            for callback in self.callbacks:
                getattr(callback, hook)(*args, **kwargs)

        return call


__all__ = ["TrainContext", "Callback", "EarlyStopping", "BestCheckpoint", "MetricsLogger", "ProgressBar",
           "CancelFile", "StatusLine", "FunctionCallback", "CallbackList", "save_weights", "set_phase"]
