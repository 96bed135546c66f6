"""Train one image classifier from a TrainConfig and leave a complete run folder behind.

`train(config)` = prepare the photos (scan, check, split) -> build the pretrained model ->
run the stages the strategy asks for -> reload the best weights -> write the outputs the
trust features need -> evaluate. Everything around the loop (checkpoints, early stopping,
metrics.jsonl, progress, the Stop button) is a callback (core/callbacks.py).
The stages themselves are core/loop.py; the photos and the model, core/prepare.py.
"""
from __future__ import annotations

import logging
import os
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from core import runs
from core.callbacks import (BestCheckpoint, CallbackList, CancelFile, EarlyStopping, FunctionCallback,
                            MetricsLogger, StatusLine, TrainContext)
from core.config import TrainConfig
from core.device import configure_cpu_threads, pick_device
from core.errors import Cancelled, DataError, LatihError
from core.i18n import Msg
from core.loop import Trainer, timed
from core.prepare import build_model, prepare_data, trim_photo_cache, write_meta

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int | None
    metrics: dict  # the best epoch's metrics, plus eval_* keys when evaluation ran
    wall_s: float
    class_names: list[str]
    status: str = "done"  # done | stopped
    evaluation: dict | None = None
    message: str = ""


# ---------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------
def train(config: TrainConfig, workspace=None, callbacks: Iterable = (), run_dir=None,
          progress: Callable[[float, str], None] | None = None, resume: bool = False) -> TrainResult:
    """Train `config` into a new run folder (or `run_dir`, e.g. one core.jobs created).

    `resume=True` continues `run_dir` from the state saved at the end of its last epoch
    (core/resume.py); the result is the same as an uninterrupted run's.

    Raises LatihError for unusable input (the run is marked failed with that message).
    A Stop (the STOP file) is not an error: the best checkpoint is kept, the result's
    status is "stopped".
    """
    started = time.perf_counter()
    if run_dir is None and not Path(config.data_path).expanduser().exists():
        # No run folder for a path typo: there is nothing to repeat or look at.
        raise DataError(Msg("err.path_missing", path=str(config.data_path)))
    run_dir = Path(run_dir) if run_dir is not None else runs.new_run_dir(config, workspace)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / runs.CONFIG_FILE).exists():
        config.to_json(run_dir / runs.CONFIG_FILE)  # first, so even a failed run can be repeated
    root_level = logging.getLogger().level
    handler = _attach_log_file(run_dir)
    resume_state = None
    try:
        if resume:
            from core.resume import cut_metrics, load_state

            resume_state = load_state(run_dir)
            cut_metrics(run_dir, int(resume_state["epoch"]))
            log.info("resuming run %s after epoch %d", run_dir.name, resume_state["epoch"])
        runs.write_status(run_dir, "running", Msg("phase.preparing"), pid=os.getpid(), resume=False)
        with runs.Heartbeat(run_dir):
            result = _train_in_run(config, workspace, list(callbacks), run_dir, progress, started, resume_state)
        if result.status == "done":
            from core.resume import forget_state

            forget_state(run_dir)  # a finished run is never resumed: give the disk space back
        return result
    except LatihError as exc:
        log.error("training failed: %s", exc)
        runs.write_status(run_dir, "failed", str(exc))
        raise
    except BaseException as exc:
        log.exception("training crashed")
        runs.write_status(run_dir, "failed", f"training failed ({type(exc).__name__}: {exc}); see train.log")
        raise
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(root_level)
        handler.close()


def _attach_log_file(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / runs.LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)  # why: train.log must have the story even when the console is quiet
    return handler


def _train_in_run(config, workspace, callbacks, run_dir, progress, started, resume_state=None) -> TrainResult:
    device = pick_device(config.device)
    threads = configure_cpu_threads()
    log.info("run %s on %s (%d CPU threads), torch %s, python %s", run_dir.name, device, threads,
             torch.__version__, platform.python_version())
    _seed_everything(config.seed)
    with timed("scan, check and split"):
        data = prepare_data(config, workspace, run_dir)
    with timed("model"):
        model, prep = build_model(config, len(data.class_names), workspace)
    trim_photo_cache(prep, data)
    ctx = TrainContext(config=config, run_dir=run_dir, model=model, class_names=data.class_names,
                       device=device)
    write_meta(run_dir, config, data, prep)
    hooks = CallbackList(_default_callbacks(config, run_dir, progress) + callbacks)
    trainer = Trainer(config, ctx, data, prep, hooks, workspace, resume_state)
    status, message = "done", ""
    try:
        hooks.on_train_start(ctx)  # inside: a STOP left from before cancels cleanly
        trainer.run_stages()
    except (Cancelled, KeyboardInterrupt) as exc:
        # Ctrl-C on the command line is the same wish as the Stop button: keep what is learnt.
        how = "interrupted" if isinstance(exc, KeyboardInterrupt) else "stopped by the user"
        status, message = "stopped", f"{how}; the best checkpoint is kept"
        ctx.stop_reason = message
        log.info("training %s at epoch %d", how, ctx.epoch)
    result = _finish(trainer, status, message, started)
    hooks.on_train_end(ctx, result)
    return result


def _default_callbacks(config: TrainConfig, run_dir: Path, progress) -> list:
    built = [BestCheckpoint(run_dir / runs.MODEL_FILE, monitor=config.monitor),
             EarlyStopping(config.monitor, config.early_stopping_patience),
             MetricsLogger(run_dir / runs.METRICS_FILE),
             CancelFile(run_dir / runs.STOP_FILE),
             StatusLine(run_dir)]
    if progress is not None:
        built.append(FunctionCallback(
            on_progress=lambda ctx, task, done, total: progress(0.0, f"{task}: {done}/{total}"),
            on_epoch_end=lambda ctx, m: progress(m["epoch"] / max(ctx.total_epochs, 1),
                                                 f"epoch {m['epoch']}: val acc {m['val_acc']:.3f}")))
    return built



def _seed_everything(seed: int) -> None:
    """Seed every generator. Why no torch.use_deterministic_algorithms: torch's CPU kernels give
    the same result at a fixed thread count without it (tests/test_train.py checks two same-seed
    runs for identical bytes), and the flag also fills every new tensor with NaN first, which
    cost a fifth of a fine-tuning step on the CPU (Lite0, batch 32: 10.9 against 13.7 photos/s)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------
# finishing
# ---------------------------------------------------------------------------------------
def _finish(trainer: Trainer, status: str, message: str, started: float) -> TrainResult:
    ctx = trainer.ctx
    run_dir = ctx.run_dir
    evaluation = None
    if ctx.best_epoch is None:
        message = message or "no epoch finished, so there is no model"
        runs.write_status(run_dir, status, message)
        return TrainResult(run_dir, None, {}, time.perf_counter() - started, ctx.class_names, status, None, message)
    runs.update_meta(run_dir, best_epoch=ctx.best_epoch)
    with timed("outputs"):
        trainer.write_outputs()
    from core.callbacks import set_phase

    set_phase(run_dir, "evaluation")
    with timed("evaluation"):
        evaluation, problem = _evaluate(run_dir)
    wall = time.perf_counter() - started
    runs.update_meta(run_dir, wall_s=round(wall, 2), stop_reason=ctx.stop_reason)
    final_message = "; ".join(m for m in (message or ctx.stop_reason or "finished", problem) if m)
    runs.write_status(run_dir, status, final_message, best_epoch=ctx.best_epoch)
    metrics = dict(ctx.best_metrics)
    metrics.update(_evaluation_headline(evaluation))
    log.info("%s in %.1f s; best epoch %d: val acc %.4f", status, wall, ctx.best_epoch, metrics["val_acc"])
    return TrainResult(run_dir, ctx.best_epoch, metrics, wall, ctx.class_names, status, evaluation, final_message)


def _evaluate(run_dir: Path) -> tuple[dict | None, str]:
    """Run the trust features' evaluation -> (evaluation, problem for the status line).

    A failure there must not cost the trained model: it is logged with its traceback in
    train.log, the run stays "done" and says that the evaluation is missing.
    """
    from core.evaluate import evaluate_run

    try:
        return evaluate_run(run_dir), ""
    except Exception as exc:  # the model is saved; the run stays usable without evaluation.json
        log.exception("evaluation failed; the model is kept, evaluate again later: %s", exc)
        return None, f"evaluation failed ({exc}); see train.log"


def _evaluation_headline(evaluation: dict | None) -> dict:
    if not evaluation:
        return {}
    split = evaluation.get("evaluated_on", "val")
    m = evaluation.get("metrics") or {}
    return {f"{split}_accuracy" if split == "test" else "eval_accuracy": m.get("accuracy"),
            f"{split}_macro_f1" if split == "test" else "eval_macro_f1": m.get("macro_f1"),
            "evaluated_on": split}


def repeat_run(run_dir, workspace=None, callbacks=()) -> TrainResult:
    """Train again from the run's saved config.json alone; returns the new TrainResult."""
    run = runs.load_run(run_dir, workspace)
    # Default to the original run's workspace, so caches and the runs list stay together.
    return train(run.config, workspace=workspace or run.run_dir.parent.parent, callbacks=callbacks)


__all__ = ["train", "repeat_run", "TrainResult"]
