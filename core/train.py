"""Train one image classifier from a TrainConfig and leave a complete run folder behind.

`train(config)` = prepare the photos (scan, check, split) -> build the pretrained model ->
run the stages the strategy asks for -> reload the best weights -> write the outputs the
trust features need -> evaluate. Everything around the loop (checkpoints, early stopping,
metrics.jsonl, progress, the Stop button) is a callback (core/callbacks.py).

Stages (fastai's fine_tune, made explicit):
  head      the backbone is frozen, so its pooled features are computed ONCE per photo
            (cached in memory and on disk) and only the final Linear layer is trained on
            those vectors: an epoch costs milliseconds instead of a forward pass per photo.
  finetune  the usual loop over augmented photos with some or all layers unfrozen,
            discriminative learning rates (smaller towards the input) and a fresh warm-up.
feature-extraction = head only; fine-tune / full = finetune only; two-stage = head, then
finetune with every layer unfrozen.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import platform
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from core import runs
from core.callbacks import (BestCheckpoint, CallbackList, CancelFile, EarlyStopping, FunctionCallback,
                            MetricsLogger, StatusLine, TrainContext)
from core.config import ConfigError, TrainConfig
from core.device import PeakMemory, configure_cpu_threads, pick_device
from core.errors import Cancelled, DataError, LatihError
from core.resume import ResumableStages
from core.workspace import subdir

log = logging.getLogger(__name__)

FEATURE_BATCH = 48  # photos per forward pass when computing frozen features (CPU cache-friendly)
MIN_LR_FACTOR = 0.01  # cosine schedule ends at 1% of the peak LR rather than exactly zero
_FEATURE_MEMORY: dict[tuple[str, int, str], np.ndarray] = {}  # (backbone, size, sha1) -> features
_FEATURE_MEMORY_LIMIT = 200_000


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


@dataclass
class PreparedData:
    frames: dict[str, pd.DataFrame]  # split -> rows (readable photos only)
    class_names: list[str]
    warnings: list[str] = field(default_factory=list)


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
        raise DataError(f"{config.data_path} does not exist: check the path and try again")
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
        runs.write_status(run_dir, "running", "preparing the photos", pid=os.getpid(), resume=False)
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
    with _seeded(config.seed, device):
        with _timed("scan, check and split"):
            data = prepare_data(config, workspace, run_dir)
        with _timed("model"):
            model, prep = build_model(config, len(data.class_names), workspace)
        ctx = TrainContext(config=config, run_dir=run_dir, model=model, class_names=data.class_names,
                           device=device)
        _write_meta(run_dir, config, data, prep)
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


@contextlib.contextmanager
def _timed(step: str):
    """Log how long a step took (train.log then shows where the time of a run goes)."""
    started = time.perf_counter()
    yield
    log.info("%s took %.1f s", step, time.perf_counter() - started)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """Seed every generator; deterministic kernels on CPU (cheap there), restored afterwards."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    previous = torch.are_deterministic_algorithms_enabled()
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


# ---------------------------------------------------------------------------------------
# photos
# ---------------------------------------------------------------------------------------
def prepare_data(config: TrainConfig, workspace, run_dir: Path) -> PreparedData:
    """Scan, check (errors stop training), split (saved as splits.csv)."""
    from core.data.ingest import scan
    from core.data.split import assign_splits
    from core.data.validate import check_dataset

    df = scan(config.data_path, workspace=workspace)
    if config.exclude:
        left_out = df["path"].isin(set(config.exclude))
        log.info("leaving out %d photos listed in the config's exclude (%d listed)", int(left_out.sum()),
                 len(config.exclude))
        if left_out.sum() < len(set(config.exclude)):
            log.warning("%d excluded paths are not in the dataset", len(set(config.exclude)) - int(left_out.sum()))
        attrs = dict(df.attrs)
        df = df[~left_out].reset_index(drop=True)
        df.attrs = attrs
    findings = check_dataset(df)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise DataError(errors[0].message + (f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""))
    groups = None
    if config.groups:
        from core.data.groups import assign_groups, group_leak

        groups = assign_groups(df, config.groups)
        if not (config.resplit or config.cv_fold):
            findings += group_leak(df, groups)
    for finding in findings:
        log.warning("data check (%s): %s", finding.severity, finding.message)
    if config.cv_fold:  # one fold of a fine-tuned cross-validation (core.fine_tune_cv)
        from core.data.split import assign_fold

        df = assign_fold(df, config.cv_fold, config.seed, groups=groups)
    else:
        df = assign_splits(df, config.val_fraction, config.test_fraction, config.seed, groups=groups,
                           resplit=config.resplit)
    df.to_csv(run_dir / runs.SPLITS_FILE, index=False)
    usable = df[df["readable"].astype(bool) & (df["split"] != "")]
    class_names = sorted(usable["label"].unique())
    frames = {s: usable[usable["split"] == s].reset_index(drop=True) for s in ("train", "val", "test")}
    frames = {s: f for s, f in frames.items() if len(f)}
    if "train" not in frames or "val" not in frames:
        raise DataError("the dataset needs photos for both training and validation: add photos or "
                        "raise the validation fraction")
    log.info("classes %s; photos per split %s", class_names, {s: len(f) for s, f in frames.items()})
    return PreparedData(frames, class_names, [f.message for f in findings])


@dataclass
class Preprocessing:
    image_size: int
    mean: tuple
    std: tuple
    crop_pct: float
    interpolation: str
    eval_transform: Callable
    train_transform: Callable
    cache: object  # core.data.cache.ImageCache


def build_model(config: TrainConfig, n_classes: int, workspace=None) -> tuple[nn.Module, Preprocessing]:
    from core.augment import build_eval_transform, build_train_transform
    from core.backbones import create_backbone, data_config
    from core.data.cache import ImageCache

    model = create_backbone(config.backbone, n_classes, weights=config.weights, workspace=workspace)
    dc = data_config(model)
    size = config.image_size or int(dc["input_size"][-1])
    native = int(dc["input_size"][-1])
    if size != native and getattr(model, "pretrained_cfg", {}).get("fixed_input_size"):
        # Why: ViT-style models have position embeddings for one grid; another size fails deep inside.
        raise ConfigError(f"{config.backbone} only takes {native} px photos: set the image size to {native} "
                          "(or leave it on automatic), or pick a convolutional backbone")
    mean, std = tuple(dc["mean"]), tuple(dc["std"])
    crop_pct = float(dc.get("crop_pct") or 1.0)
    train_tf = build_train_transform(config.augment, size, mean, std)
    if hasattr(train_tf, "set_random_seed"):  # albumentations >= 2: its own generator, seeded for repeatability
        train_tf.set_random_seed(config.seed)
    # Why size / crop_pct: the eval transform resizes to that then centre-crops, so caching
    # at that size loses nothing while decoding each photo only once.
    cache = ImageCache(subdir("cache", workspace) / "images", math.ceil(size / crop_pct))
    prep = Preprocessing(size, mean, std, crop_pct, str(dc.get("interpolation", "bicubic")),
                         build_eval_transform(size, mean, std, crop_pct=crop_pct), train_tf, cache)
    return model, prep


def _write_meta(run_dir: Path, config: TrainConfig, data: PreparedData, prep: Preprocessing) -> None:
    runs.update_meta(
        run_dir, class_names=data.class_names, backbone=config.backbone, strategy=config.strategy,
        input_size=[3, prep.image_size, prep.image_size], image_size=prep.image_size,
        mean=list(prep.mean), std=list(prep.std), crop_pct=prep.crop_pct, interpolation=prep.interpolation,
        decode_size=prep.cache.size,
        best_epoch=None, temperature=None, threshold=None, positive_class=config.positive_class,
        target_sensitivity=config.target_sensitivity, splits=runs.SPLITS_FILE,
        split_sizes={s: len(f) for s, f in data.frames.items()}, data_warnings=data.warnings,
        torch_version=torch.__version__)


# ---------------------------------------------------------------------------------------
# the stages
# ---------------------------------------------------------------------------------------
class Trainer(ResumableStages):
    """Runs the stages of one strategy; owns the model, the loss and the features."""

    def __init__(self, config: TrainConfig, ctx: TrainContext, data: PreparedData, prep: Preprocessing,
                 hooks: CallbackList, workspace, resume_state: dict | None = None):
        self.config, self.ctx, self.data, self.prep, self.hooks = config, ctx, data, prep, hooks
        self.workspace = workspace
        self.resume_state = resume_state
        self._stage_index, self._stage_epochs, self._stage_done = 0, 0, 0
        self._optimizer = self._scheduler_now = None
        if resume_state is not None:
            from core.resume import model_state

            ctx.model.load_state_dict(model_state(ctx.run_dir))
            ctx.epoch, ctx.history = int(resume_state["epoch"]), list(resume_state["history"])
            ctx.best_epoch, ctx.best_value = resume_state["best_epoch"], resume_state["best_value"]
            ctx.best_metrics = dict(resume_state["best_metrics"])
        self.model = ctx.model.to(ctx.device)
        self.features: dict[str, torch.Tensor] = {}
        self.labels = {s: torch.tensor(_label_indices(f, data.class_names)) for s, f in data.frames.items()}
        self.memory = PeakMemory(ctx.device)
        self.generator = torch.Generator().manual_seed(config.seed)  # data order, independent of the model init
        self.loss_fn = nn.CrossEntropyLoss(weight=self._class_weights(), label_smoothing=config.label_smoothing)

    # ---- plan ----------------------------------------------------------------------------
    def stage_plan(self) -> list[tuple[str, int]]:
        c = self.config
        if c.strategy == "feature-extraction":
            return [("head", c.epochs)]
        if c.strategy == "two-stage":
            head = min(c.head_epochs, c.epochs - 1) if c.epochs > 1 else 1
            return [("head", head), ("finetune", max(c.epochs - head, 0))]
        return [("finetune", c.epochs)]

    def run_stages(self) -> None:
        plan = [(stage, n) for stage, n in self.stage_plan() if n > 0]
        self.ctx.total_epochs = sum(n for _, n in plan)
        saved = self.resume_state
        for index, (stage, epochs) in enumerate(plan):
            if saved is not None and (index < saved["stage_index"]
                                      or (index == saved["stage_index"] and saved["stage_finished"])):
                continue  # finished before the interruption
            self._stage_index, self._stage_epochs, self._stage_done = index, epochs, 0
            self.ctx.stage, self.ctx.should_stop = stage, False
            if stage == "head":  # the one slow step of this stage, before its epoch counter starts
                with _timed("features"):
                    self.split_features("train"), self.split_features("val")
            self.hooks.on_stage_start(self.ctx, stage, epochs)
            if stage == "head":
                self.train_head(epochs)
            else:
                self.finetune(epochs)

    # ---- shared pieces -------------------------------------------------------------------
    def _class_weights(self) -> torch.Tensor | None:
        if self.config.imbalance != "class-weights":
            return None
        counts = torch.bincount(self.labels["train"], minlength=len(self.data.class_names)).float()
        weights = counts.sum() / (len(counts) * counts.clamp(min=1))
        log.info("class weights %s", [round(w, 3) for w in weights.tolist()])
        return weights.to(self.ctx.device)

    def _sample_weights(self) -> torch.Tensor:
        labels = self.labels["train"]
        counts = torch.bincount(labels, minlength=len(self.data.class_names)).double()
        return 1.0 / counts[labels]

    def _epoch_order(self) -> torch.Tensor:
        """Training order for one epoch: a seeded shuffle, or balanced sampling with replacement."""
        n = len(self.labels["train"])
        if self.config.imbalance == "balanced-sampler":
            return torch.multinomial(self._sample_weights(), n, replacement=True, generator=self.generator)
        return torch.randperm(n, generator=self.generator)

    def _scheduler(self, optimizer, steps_per_epoch: int, epochs: int):
        warmup = max(0, self.config.warmup_epochs * steps_per_epoch)
        total = max(1, epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total))

    def _end_epoch(self, metrics: dict) -> None:
        self.ctx.history.append(metrics)
        log.info("epoch %d (%s): %s", metrics["epoch"], metrics["stage"],
                 ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
        self.hooks.on_epoch_end(self.ctx, metrics)
        self._stage_done += 1
        self._save_resume_state()

    def _metrics(self, stage, train_loss, train_correct, n_train, val, optimizer, seconds) -> dict:
        head_lr = max(group["lr"] for group in optimizer.param_groups)
        return {"epoch": self.ctx.epoch, "stage": stage,
                "train_loss": float(train_loss / max(n_train, 1)), "train_acc": float(train_correct / max(n_train, 1)),
                "val_loss": val["loss"], "val_acc": val["acc"], "val_f1": val["f1"], "lr": float(head_lr),
                "seconds": round(seconds, 4), "images_per_s": round(n_train / max(seconds, 1e-9), 1),
                "peak_mem_mb": self.memory.peak_mb()}

    # ---- stage 1: the head on cached features --------------------------------------------
    def split_features(self, split: str) -> torch.Tensor:
        if split not in self.features:
            self.features[split] = torch.from_numpy(self._compute_features(split))
        return self.features[split]

    def _compute_features(self, split: str) -> np.ndarray:
        """Pooled features of the frozen backbone, reused from memory/disk when the backbone is
        the unchanged pretrained one (a fine-tuned backbone gives new features every time)."""
        frame = self.data.frames[split]
        reusable = self.config.weights == "pretrained" and not self._backbone_trained()
        keys = [(self.config.backbone, self.prep.image_size, sha1) for sha1 in frame["sha1"]]
        store = subdir("cache", self.workspace) / "features" if reusable else None
        found = {i: f for i, key in enumerate(keys) if reusable and (f := _cached_feature(key, store)) is not None}
        missing = [i for i in range(len(frame)) if i not in found]
        if missing:
            log.info("computing %s features for %d %s photos (%d cached)", self.config.backbone, len(missing),
                     split, len(found))
            computed = forward_photos(self.model, frame.iloc[missing], self.data.class_names, self.prep,
                                      self.ctx.device, progress=self._progress(f"features ({split})"))[0]
            for i, vector in zip(missing, computed):
                found[i] = vector
                if reusable:
                    _store_feature(keys[i], vector, store)
        return np.stack([found[i] for i in range(len(frame))]).astype(np.float32)

    def _backbone_trained(self) -> bool:
        return any(h["stage"] == "finetune" for h in self.ctx.history)

    def _progress(self, task: str) -> Callable[[int, int], None]:
        return lambda done, total: self.hooks.on_progress(self.ctx, task, done, total)

    def train_head(self, epochs: int) -> None:
        from core.backbones import apply_strategy

        apply_strategy(self.model, "feature-extraction")
        self.model.eval()  # frozen backbone: features exactly as pretrained (BN statistics untouched)
        x_train, x_val = self.split_features("train").to(self.ctx.device), self.split_features("val").to(self.ctx.device)
        y_train, y_val = self.labels["train"].to(self.ctx.device), self.labels["val"].to(self.ctx.device)
        head = self.model.get_classifier()
        optimizer = torch.optim.AdamW(head.parameters(), lr=self.config.head_lr, weight_decay=self.config.weight_decay)
        self.ctx.optimizer = optimizer
        batch = head_batch_size(self.config.batch_size, len(y_train))
        steps = math.ceil(len(y_train) / batch)
        scheduler = self._scheduler(optimizer, steps, epochs)
        dropout = float(getattr(self.model, "drop_rate", 0.0) or 0.0)  # what the full model applies before its head
        done = self._enter_stage(optimizer, scheduler)
        for _ in range(epochs - done):
            self._start_epoch()
            started = time.perf_counter()
            order = self._epoch_order().to(self.ctx.device)
            total_loss, correct = 0.0, 0
            head.train()
            for step in range(steps):
                idx = order[step * batch:(step + 1) * batch]
                logits = head(F.dropout(x_train[idx], p=dropout, training=True))
                loss = self.loss_fn(logits, y_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total_loss += loss.item() * len(idx)
                correct += (logits.argmax(1) == y_train[idx]).sum().item()
                self.hooks.on_batch_end(self.ctx, step + 1, steps, loss.item())
            head.eval()
            with torch.inference_mode():
                val = self._score(head(x_val), y_val)
            self._end_epoch(self._metrics("head", total_loss, correct, len(y_train), val, optimizer,
                                          time.perf_counter() - started))
            if self.ctx.should_stop:
                break

    def _start_epoch(self) -> None:
        self.ctx.epoch += 1
        self.memory.reset()
        self.hooks.on_epoch_start(self.ctx)

    def _score(self, logits: torch.Tensor, labels: torch.Tensor) -> dict:
        from sklearn.metrics import f1_score

        logits, labels = logits.float().cpu(), labels.cpu()
        predictions = logits.argmax(1)
        return {"loss": float(F.cross_entropy(logits, labels).item()),
                "acc": float((predictions == labels).float().mean().item()),
                "f1": float(f1_score(labels.numpy(), predictions.numpy(), average="macro",
                                     labels=list(range(len(self.data.class_names))), zero_division=0))}

    # ---- stage 2: the usual loop over photos ---------------------------------------------
    def finetune(self, epochs: int) -> None:
        from core.backbones import apply_strategy, param_groups

        c, device = self.config, self.ctx.device
        strategy = "full" if c.strategy == "two-stage" else c.strategy
        apply_strategy(self.model, strategy, c.unfreeze_blocks)
        layer_decay = c.layer_decay if strategy == "full" else None
        groups = param_groups(self.model, c.strategy, c.head_lr, c.unfrozen_lr, layer_decay, c.weight_decay)
        optimizer = torch.optim.AdamW(groups, lr=c.head_lr)
        self.ctx.optimizer = optimizer
        log.info("fine-tuning (%s): %d parameter groups, head LR %.2g, top backbone LR %.2g", strategy,
                 len(groups), c.head_lr, c.unfrozen_lr)
        loader = self._train_loader()
        scheduler = self._scheduler(optimizer, len(loader), epochs)  # a fresh warm-up for the unfrozen layers
        amp = _autocast(device)
        scaler = torch.amp.GradScaler("cuda") if amp.dtype == torch.float16 and device.type == "cuda" else None
        if use_channels_last(device):
            self.model = self.model.to(memory_format=torch.channels_last)
        done = self._enter_stage(optimizer, scheduler)
        for _ in range(epochs - done):
            self._start_epoch()
            started = time.perf_counter()
            total_loss, correct, seen = self._finetune_epoch(loader, optimizer, scheduler, amp, scaler)
            seconds = time.perf_counter() - started
            val = self._validate_photos()
            self._end_epoch(self._metrics("finetune", total_loss, correct, seen, val, optimizer, seconds))
            if self.ctx.should_stop:
                break

    def _finetune_epoch(self, loader, optimizer, scheduler, amp, scaler):
        from core.backbones import set_frozen_bn_eval

        device = self.ctx.device
        self.model.train()
        set_frozen_bn_eval(self.model)
        total_loss, correct, seen = 0.0, 0, 0
        for step, (images, labels) in enumerate(loader, start=1):
            images, labels = _to_device(images, device), labels.to(device)
            with amp.context():
                logits = self.model(images)
                loss = self.loss_fn(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
            self.memory.sample()
            self.hooks.on_batch_end(self.ctx, step, len(loader), loss.item())
        return total_loss, correct, seen

    def _train_loader(self):
        from torch.utils.data import DataLoader, WeightedRandomSampler

        from core.data.cache import PhotoDataset

        dataset = PhotoDataset(self.data.frames["train"], self.data.class_names, self.prep.train_transform,
                               self.prep.cache)
        sampler = None
        if self.config.imbalance == "balanced-sampler":
            sampler = WeightedRandomSampler(self._sample_weights(), len(dataset), replacement=True,
                                            generator=self.generator)
        # A last batch of one photo breaks BatchNorm in train mode: drop it.
        drop_last = len(dataset) % self.config.batch_size == 1 and len(dataset) > self.config.batch_size
        return DataLoader(dataset, batch_size=self.config.batch_size, shuffle=sampler is None, sampler=sampler,
                          generator=self.generator, num_workers=self.config.num_workers, drop_last=drop_last,
                          pin_memory=self.ctx.device.type == "cuda",
                          persistent_workers=self.config.num_workers > 0)

    def _validate_photos(self) -> dict:
        _, logits = forward_photos(self.model, self.data.frames["val"], self.data.class_names, self.prep,
                                   self.ctx.device, batch_size=self.config.batch_size, memory=self.memory)
        return self._score(torch.from_numpy(logits), self.labels["val"])

    # ---- the end -------------------------------------------------------------------------
    def write_outputs(self) -> None:
        """outputs_<split>.npz with the best weights (see ARCHITECTURE.md, trust contract)."""
        best = self.ctx.run_dir / runs.MODEL_FILE
        self.model.load_state_dict({k: v.to(self.ctx.device) for k, v in runs.load_weights(best).items()})
        self.model.eval()
        head = self.model.get_classifier()
        for split, frame in self.data.frames.items():
            if self._backbone_trained():
                features, logits = forward_photos(self.model, frame, self.data.class_names, self.prep,
                                                  self.ctx.device, batch_size=FEATURE_BATCH,
                                                  progress=self._progress(f"outputs ({split})"))
            else:
                features = self.split_features(split).numpy()
                with torch.inference_mode():
                    logits = head(torch.from_numpy(features).to(self.ctx.device)).float().cpu().numpy()
            np.savez(self.ctx.run_dir / f"outputs_{split}.npz", logits=logits.astype(np.float32),
                     labels=self.labels[split].numpy().astype(np.int64), features=features.astype(np.float32),
                     paths=np.array(frame["path"].tolist(), dtype=str))


HEAD_STEPS_PER_EPOCH = 8


def head_batch_size(batch_size: int, n_train: int) -> int:
    """Batch size for the head on cached features.

    Why: with 34 photos and batch 32 an epoch is a single optimizer step, so 15 epochs leave
    a new head half-trained. Cached features cost nothing to batch, so smaller batches give
    each epoch about HEAD_STEPS_PER_EPOCH steps (never below 4 photos, never above batch_size).
    """
    return max(1, min(batch_size, max(4, n_train // HEAD_STEPS_PER_EPOCH)))


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to 1, then cosine down to MIN_LR_FACTOR (applied per optimizer step)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return MIN_LR_FACTOR + (1 - MIN_LR_FACTOR) * 0.5 * (1 + math.cos(math.pi * progress))


def _label_indices(frame: pd.DataFrame, class_names: list[str]) -> list[int]:
    index = {name: i for i, name in enumerate(class_names)}
    return [index[label] for label in frame["label"]]


def use_channels_last(device: torch.device) -> bool:
    """channels_last on CUDA (tensor cores) and on the CPU, where oneDNN runs these depthwise
    nets' inference ~1.7x faster in that layout (EfficientNet-Lite0 on the 2-core build box;
    training speed is about equal). Not on MPS, where support is patchy."""
    return device.type in ("cuda", "cpu")


def _to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    if use_channels_last(device):
        return images.to(device, non_blocking=device.type == "cuda", memory_format=torch.channels_last)
    return images.to(device)


@dataclass
class _Autocast:
    device_type: str
    dtype: torch.dtype | None

    def context(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def _autocast(device: torch.device) -> _Autocast:
    """Mixed precision on CUDA only (bf16 where supported); CPU autocast is slower for these nets."""
    if device.type != "cuda":
        return _Autocast(device.type, None)
    return _Autocast("cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def forward_photos(model: nn.Module, frame: pd.DataFrame, class_names, prep: Preprocessing, device,
                   batch_size: int = FEATURE_BATCH, progress=None, memory: PeakMemory | None = None):
    """(pooled pre-logits features, logits) for each photo in frame, eval transform, no grad."""
    from torch.utils.data import DataLoader

    from core.data.cache import PhotoDataset

    dataset = PhotoDataset(frame, class_names, prep.eval_transform, prep.cache)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    was_training = model.training
    model.eval()
    if use_channels_last(device):
        model.to(memory_format=torch.channels_last)
    amp = _autocast(device)
    features, logits, done = [], [], 0
    with torch.inference_mode(), amp.context():
        for images, _ in loader:
            pooled = model.forward_head(model.forward_features(_to_device(images, device)), pre_logits=True)
            features.append(pooled.float().cpu())
            logits.append(model.get_classifier()(pooled).float().cpu())
            done += len(images)
            if memory is not None:
                memory.sample()
            if progress is not None:
                progress(done, len(dataset))
    model.train(was_training)
    return torch.cat(features).numpy(), torch.cat(logits).numpy()


def _feature_file(key: tuple[str, int, str], store: Path) -> Path:
    backbone, size, sha1 = key
    return store / f"{backbone}-{size}-{sha1}.npy"


def _cached_feature(key, store: Path | None) -> np.ndarray | None:
    if key in _FEATURE_MEMORY:
        vector = _FEATURE_MEMORY[key]
        if store is not None and not _feature_file(key, store).exists():
            # Computed in this process for another workspace: this workspace's cache must be
            # complete too (a later process reads only the disk).
            _store_feature(key, vector, store)
        return vector
    if store is None:
        return None
    path = _feature_file(key, store)
    if not path.exists():
        return None
    try:
        vector = np.load(path)
    except (OSError, ValueError, EOFError) as exc:  # half-written by a killed run: recompute
        log.warning("feature cache file %s is damaged (%s); recomputing", path.name, exc)
        return None
    _remember(key, vector)
    return vector


def _store_feature(key, vector: np.ndarray, store: Path) -> None:
    _remember(key, vector)
    path = _feature_file(key, store)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        store.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            np.save(handle, vector.astype(np.float32))
        tmp.replace(path)
    except OSError as exc:  # a full disk makes the next run slower, it must not fail this one
        log.warning("cannot write feature cache %s: %s", path.name, exc)


def _remember(key, vector: np.ndarray) -> None:
    if len(_FEATURE_MEMORY) >= _FEATURE_MEMORY_LIMIT:
        _FEATURE_MEMORY.clear()
    _FEATURE_MEMORY[key] = vector


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
    with _timed("outputs"):
        trainer.write_outputs()
    with _timed("evaluation"):
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


__all__ = ["train", "TrainResult", "Trainer", "prepare_data", "build_model", "forward_photos", "lr_factor"]
