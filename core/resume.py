"""Continue a run that did not finish, from the state saved at the end of its last epoch.

At each epoch's end the trainer saves a checkpoint pair: the model now (not the best one) in
`<run>/last-eNNNN.safetensors`, named for the epoch, then `<run>/resume.pt`: the optimizer,
scheduler, stage and epoch, the early-stopping and best-checkpoint bookkeeping, the history,
every random state (torch, numpy, python, the data-order generator and the augmentation's own
generators), and the name, size and SHA-256 of its weights file. Each file is written atomically
(temp file + os.replace) and resume.pt last, so whenever the process dies (kill -9 between the
two writes included) resume.pt names a complete weights file of its own epoch; the older
weights file is removed only after resume.pt is replaced. (Runs saved before this pairing have
one `last.safetensors` and a version-1 resume.pt; they resume from those.) `resume.pt` holds
only tensors and plain Python values and is read with `torch.load(weights_only=True)` (no
arbitrary pickles). Resuming replays nothing: metrics.jsonl is cut back to the saved epoch, so
it has every epoch exactly once, and the run ends as an uninterrupted one would.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.diskspace import partial_file, replace_durably
from core.errors import RunError
from core.runs import (LAST_MODEL_EPOCH, LAST_MODEL_FILE, METRICS_FILE, RESUME_FILE, last_model_files,
                       last_model_name, read_status, state_word)
from core.i18n import Msg

log = logging.getLogger(__name__)

VERSION = 2  # 2: resume.pt names its weights file (the pair); 1: the weights are last.safetensors
VERSIONS = (1, VERSION)


# ---- random states -------------------------------------------------------------------------------
def _generators(transform) -> list:
    """Every object in an albumentations tree that has its own random generators."""
    found, todo, seen = [], [transform], set()
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if hasattr(item, "random_generator") and hasattr(item, "py_random"):
            found.append(item)
        todo.extend(getattr(item, "transforms", None) or [])
    return found


def _np_state() -> dict:
    state = np.random.get_state(legacy=False)
    state = dict(state)
    state["state"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in state["state"].items()}
    return state


def _set_np_state(state: dict) -> None:
    inner = {k: (np.array(v, dtype=np.uint32) if isinstance(v, list) else v) for k, v in state["state"].items()}
    np.random.set_state({**state, "state": inner})


def random_states(generator: torch.Generator, transform) -> dict:
    return {"torch": torch.get_rng_state(), "numpy": _np_state(), "python": random.getstate(),
            "generator": generator.get_state(),
            "augment": [(g.random_generator.bit_generator.state, g.py_random.getstate()) for g in _generators(transform)]}


def set_random_states(states: dict, generator: torch.Generator, transform) -> None:
    torch.set_rng_state(states["torch"])
    _set_np_state(states["numpy"])
    random.setstate(_tuples(states["python"]))
    generator.set_state(states["generator"])
    for g, (np_state, py_state) in zip(_generators(transform), states["augment"]):
        g.random_generator.bit_generator.state = np_state
        g.py_random.setstate(_tuples(py_state))


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


# ---- files -----------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def save_state(run_dir: Path, model: torch.nn.Module, state: dict) -> None:
    """Save the pair: the weights into last-e<epoch>.safetensors, then resume.pt naming that file
    (with its size and SHA-256), then remove the older weights. Each write is atomic and resume.pt
    is replaced last, so the state on disk always points at a complete pair.

    The name is new at every save because epochs only grow within a run (a resume starts from
    the epoch resume.pt names and saves the next one): the file resume.pt names is never
    overwritten. A file of the same name left by a process killed before its resume.pt was
    replaced is named by nothing and is overwritten."""
    from core.callbacks import save_weights

    run_dir = Path(run_dir)
    name = last_model_name(state["epoch"])
    weights = run_dir / name
    save_weights(model, weights)
    pair = {"file": name, "bytes": weights.stat().st_size, "sha256": _sha256(weights)}
    target = run_dir / RESUME_FILE
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with partial_file(tmp):
        torch.save({"version": VERSION, **state, "weights": pair}, tmp)
        replace_durably(tmp, target)  # weights first, then resume.pt: each on the disk before its name
    for old in last_model_files(run_dir) + _temp_leftovers(run_dir):  # the previous pair's weights, the
        if old.name != name:                                            # old name, a killed process's files
            old.unlink(missing_ok=True)


def _temp_leftovers(run_dir: Path) -> list[Path]:
    """Temp files of a process killed mid-write (one process trains a run: none is being written now)."""
    return sorted(run_dir.glob(f".{RESUME_FILE}.*.tmp")) + sorted(run_dir.glob(".last*.safetensors.tmp"))


def load_state(run_dir: Path) -> dict:
    """The saved state, with state["weights"]["file"] the weights file it belongs to (checked:
    present, and of the size and SHA-256 resume.pt recorded). RunError otherwise."""
    run_dir = Path(run_dir)
    path = run_dir / RESUME_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(Msg("err.resume.no_state", run=run_dir.name)) from None
    except Exception as exc:  # torch raises many types for a damaged file
        raise RunError(Msg("err.resume.damaged", run=run_dir.name, kind=type(exc).__name__)) from None
    if not isinstance(state, dict) or state.get("version") not in VERSIONS:
        raise RunError(Msg("err.resume.other_version", run=run_dir.name))
    if state["version"] == 1:
        state["weights"] = {"file": LAST_MODEL_FILE}  # saved before the pairing: one weights file
    pair = state.get("weights")
    name = pair.get("file") if isinstance(pair, dict) else None
    if not isinstance(name, str) or not (name == LAST_MODEL_FILE or LAST_MODEL_EPOCH.fullmatch(name)):
        raise RunError(Msg("err.resume.damaged", run=run_dir.name, kind="weights"))
    weights = run_dir / name
    if not weights.is_file():
        raise RunError(Msg("err.resume.weights_missing", run=run_dir.name, file=name))
    if "bytes" in pair and (weights.stat().st_size != pair["bytes"] or _sha256(weights) != pair.get("sha256")):
        raise RunError(Msg("err.resume.weights_mismatch", run=run_dir.name, file=name))
    return state


def can_resume(run_dir: Path) -> tuple[bool, str]:
    """(True, "") when the run stopped before its end and has a saved epoch; else (False, why: a Msg in the process language)."""
    status = read_status(run_dir)
    name = Path(run_dir).name
    if status.get("state") in ("queued", "running"):
        return False, Msg("err.resume.busy", run=name, state=state_word(status["state"]))
    if status.get("state") == "done":
        return False, Msg("err.resume.finished", run=name)
    if not (Path(run_dir) / RESUME_FILE).exists() or not last_model_files(run_dir):
        return False, Msg("err.resume.nothing_saved", run=name)
    return True, ""


def cut_metrics(run_dir: Path, last_epoch: int) -> None:
    """Drop metrics.jsonl lines of epochs after `last_epoch` (the interrupted epoch), atomically."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return
    kept = []
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # the half-written line of the killed process
        if isinstance(row, dict) and isinstance(row.get("epoch"), int) and row["epoch"] > last_epoch:
            continue
        kept.append(line)
    tmp = path.with_name(f".{path.name}.tmp")
    with partial_file(tmp):
        tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
    os.replace(tmp, path)
    log.info("metrics.jsonl cut back to epoch %d for the resume", last_epoch)


def forget_state(run_dir: Path) -> None:
    """Remove the resume state: resume.pt first (so no state is left naming a removed file), then the weights."""
    (Path(run_dir) / RESUME_FILE).unlink(missing_ok=True)
    for path in last_model_files(run_dir) + _temp_leftovers(Path(run_dir)):
        path.unlink(missing_ok=True)


def model_state(run_dir: Path, state: dict | None = None) -> dict[str, Any]:
    """The weights of the saved state `state` (load_state's; read here when None): always its own pair."""
    from core.runs import load_weights

    state = load_state(run_dir) if state is None else state
    return load_weights(Path(run_dir) / state["weights"]["file"], Path(run_dir).name)


# ---- the trainer's side ------------------------------------------------------------------------------
class ResumableStages:
    """Mixed into core.loop.Trainer: saves the state at each epoch's end, and restores it when
    a stage is entered again (`self.resume_state`, `self._stage_*`, `self.generator`, ...)."""

    def _early_stoppers(self) -> list:
        from core.callbacks import EarlyStopping

        return [c for c in self.hooks.callbacks if isinstance(c, EarlyStopping)]

    def _save_resume_state(self) -> None:
        ctx = self.ctx
        state = {"epoch": ctx.epoch, "stage_index": self._stage_index, "stage_epochs_done": self._stage_done,
                 "stage_finished": bool(ctx.should_stop or self._stage_done >= self._stage_epochs),
                 "optimizer": self._optimizer.state_dict(), "scheduler": self._scheduler_now.state_dict(),
                 "best_epoch": ctx.best_epoch, "best_value": ctx.best_value, "best_metrics": dict(ctx.best_metrics),
                 "history": list(ctx.history), "early": [(c.best, c.bad_epochs) for c in self._early_stoppers()],
                 "random": random_states(self.generator, self.prep.train_transform)}
        save_state(ctx.run_dir, self.model, state)

    def _enter_stage(self, optimizer, scheduler) -> int:
        """Remember the stage's optimizer; when resuming, restore it and return the epochs already done."""
        self._optimizer, self._scheduler_now = optimizer, scheduler
        saved, self.resume_state = self.resume_state, None
        if saved is None:
            return 0
        set_random_states(saved["random"], self.generator, self.prep.train_transform)
        if saved["stage_finished"]:
            return 0  # the interruption came between stages: this one starts fresh
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        for stopper, (best, bad) in zip(self._early_stoppers(), saved["early"]):
            stopper.best, stopper.bad_epochs = best, bad
        self._stage_done = int(saved["stage_epochs_done"])
        return self._stage_done


__all__ = ["ResumableStages", "save_state", "load_state", "forget_state", "can_resume", "cut_metrics", "random_states", "set_random_states",
           "model_state", "RESUME_FILE", "LAST_MODEL_FILE", "VERSION"]
