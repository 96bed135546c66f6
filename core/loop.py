"""The inner training loop: the stages of one strategy, epoch by epoch.

Stages (fastai's fine_tune, made explicit):
  head      the backbone is frozen, so its pooled features are computed ONCE per photo
            (cached in memory and on disk, core/feature_cache.py) and only the final Linear
            layer is trained on those vectors: an epoch costs milliseconds.
  finetune  the usual loop over augmented photos with some or all layers unfrozen,
            discriminative learning rates (smaller towards the input) and a fresh warm-up.
`Trainer.run_stages()` runs them; core/train.py owns the run around it (folder, callbacks,
outputs, evaluation).
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from core import runs
from core.callbacks import CallbackList, TrainContext
from core.config import TrainConfig
from core.device import PeakMemory
from core.finetune_step import FineTuneStep
from core.loader import loader_options, to_device as batch_to_device, worker_count
from core.precision import Precision, configure_cuda
from core.precision import choose as choose_precision
from core.feature_cache import cached_feature, store_feature
from core.forward import FEATURE_BATCH, forward_photos
from core.prepare import PreparedData, Preprocessing
from core.recipe import Stage, recipe
from core.resume import ResumableStages
from core.workspace import subdir

log = logging.getLogger(__name__)

MIN_LR_FACTOR = 0.01  # cosine schedule ends at 1% of the peak LR rather than exactly zero
# "flat-cosine" fine-tuning: the share of the steps (after any warm-up) held at the chosen LR
# before the cosine anneal, as fastai's fit_flat_cos. Why: a 3-epoch fine-tune on a few hundred
# photos is ~24 steps, and a cosine from the first step halves how far the weights move; on
# hymenoptera it ended under-fitted, 3.9 points below a constant-LR plain loop (issue 12).
FLAT_SHARE = 0.75


@contextlib.contextmanager
def timed(step: str):
    """Log how long a step took (train.log then shows where the time of a run goes)."""
    started = time.perf_counter()
    yield
    log.info("%s took %.1f s", step, time.perf_counter() - started)


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

            ctx.model.load_state_dict(model_state(ctx.run_dir, resume_state))
            ctx.epoch, ctx.history = int(resume_state["epoch"]), list(resume_state["history"])
            ctx.best_epoch, ctx.best_value = resume_state["best_epoch"], resume_state["best_value"]
            ctx.best_metrics = dict(resume_state["best_metrics"])
        self.model = ctx.model.to(ctx.device)
        self.features: dict[str, torch.Tensor] = {}
        self.labels = {s: torch.tensor(_label_indices(f, data.class_names)) for s, f in data.frames.items()}
        self.memory = PeakMemory(ctx.device)
        self.generator = torch.Generator().manual_seed(config.seed)  # data order, independent of the model init
        self.loss_fn = nn.CrossEntropyLoss(weight=self._class_weights(), label_smoothing=config.label_smoothing)

    # ---- plan: the recipe's stages (core/recipe.py) -------------------------------------
    def stage_plan(self) -> list[Stage]:
        return recipe(self.config)

    def run_stages(self) -> None:
        plan = self.stage_plan()
        self.ctx.total_epochs = sum(stage.epochs for stage in plan)
        saved = self.resume_state
        for index, stage in enumerate(plan):
            if saved is not None and (index < saved["stage_index"]
                                      or (index == saved["stage_index"] and saved["stage_finished"])):
                continue  # finished before the interruption
            self._stage_index, self._stage_epochs, self._stage_done = index, stage.epochs, 0
            self.ctx.stage, self.ctx.should_stop = stage.name, False
            if stage.name == "head":  # the one slow step of this stage, before its epoch counter starts
                with timed("features"):
                    self.split_features("train"), self.split_features("val")
            self.hooks.on_stage_start(self.ctx, stage.name, stage.epochs)
            if stage.name == "head":
                self.train_head(stage.epochs)
            else:
                self.finetune(stage.epochs, stage)

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

    def _scheduler(self, optimizer, steps_per_epoch: int, epochs: int, flat: float = 0.0):
        warmup = max(0, self.config.warmup_epochs * steps_per_epoch)
        total = max(1, epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total, flat))

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
                "seconds": round(seconds, 4),
                # photos read and run through the model per second; a head on cached features
                # reads none (it used to report tens of thousands "photos" per second)
                "images_per_s": round(n_train / max(seconds, 1e-9), 1) if stage == "finetune" else None,
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
        found = {i: f for i, key in enumerate(keys) if reusable and (f := cached_feature(key, store)) is not None}
        missing = [i for i in range(len(frame)) if i not in found]
        if missing:
            log.info("computing %s features for %d %s photos (%d cached)", self.config.backbone, len(missing),
                     split, len(found))
            computed = forward_photos(self.model, frame.iloc[missing], self.data.class_names, self.prep,
                                      self.ctx.device, progress=self._progress(f"features ({split})"))[0]
            for i, vector in zip(missing, computed):
                found[i] = vector
                if reusable:
                    store_feature(keys[i], vector, store)
        return np.stack([found[i] for i in range(len(frame))]).astype(np.float32)

    def _backbone_trained(self) -> bool:
        return any(h["stage"] == "finetune" for h in self.ctx.history)

    def _progress(self, task: str) -> Callable[[int, int], None]:
        return lambda done, total: self.hooks.on_progress(self.ctx, task, done, total)

    def train_head(self, epochs: int) -> None:
        from core.freezing import set_trainable

        set_trainable(self.model, "head")
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

        def forward(features):
            return head(F.dropout(features, p=dropout, training=True))

        # the same optimizer step as fine-tuning (core/finetune_step.py), in fp32 on the cached features
        step = FineTuneStep(forward, optimizer, self.loss_fn, Precision(self.ctx.device.type, None, False), batch)
        done = self._enter_stage(optimizer, scheduler)
        for _ in range(epochs - done):
            self._start_epoch()
            started = time.perf_counter()
            order = self._epoch_order().to(self.ctx.device)
            total_loss, correct = 0.0, 0
            head.train()
            for index in range(steps):
                idx = order[index * batch:(index + 1) * batch]
                loss, logits = step(x_train[idx], y_train[idx])
                scheduler.step()
                total_loss += loss * len(idx)
                correct += (logits.argmax(1) == y_train[idx]).sum().item()
                self.hooks.on_batch_end(self.ctx, index + 1, steps, loss)
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
    def finetune(self, epochs: int, stage: Stage | None = None) -> None:
        from core.freezing import param_groups, set_trainable

        c, device = self.config, self.ctx.device
        stage = stage or next(s for s in self.stage_plan() if s.name == "finetune")
        set_trainable(self.model, stage.trainable)
        groups = param_groups(self.model, c.strategy, c.head_lr, stage.lr, stage.layer_decay, c.weight_decay)
        optimizer = torch.optim.AdamW(groups, lr=c.head_lr)
        self.ctx.optimizer = optimizer
        log.info("fine-tuning %s: %d parameter groups, head LR %.2g, top backbone LR %.2g", stage.share_label,
                 len(groups), c.head_lr, stage.lr)
        loader = self._train_loader()
        flat = FLAT_SHARE if c.finetune_schedule == "flat-cosine" else 0.0
        scheduler = self._scheduler(optimizer, len(loader), epochs, flat)  # a fresh warm-up for the unfrozen layers
        precision = choose_precision(c.precision, device, c.backbone)
        if precision.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        configure_cuda()
        forward_model = self.model
        if c.compile and device.type == "cuda":  # the saved weights stay the plain model's
            forward_model = torch.compile(self.model)
        step = FineTuneStep(forward_model, optimizer, self.loss_fn, precision, c.batch_size,
                            on_halve=self._batch_halved)
        log.info("fine-tuning in %s%s, %d loader workers", precision.name,
                 ", channels_last" if precision.channels_last else "", loader.num_workers)
        done = self._enter_stage(optimizer, scheduler)
        for index in range(epochs - done):
            self._start_epoch()
            started = time.perf_counter()
            total_loss, correct, seen, waited = self._finetune_epoch(loader, step, scheduler)
            seconds = time.perf_counter() - started
            val = self._validate_photos()
            metrics = self._metrics("finetune", total_loss, correct, seen, val, optimizer, seconds)
            if stage.trainable == "all" and index > 0 and step.batch_part == c.batch_size:
                self._record_speed(metrics["images_per_s"])  # the figure the epoch's metrics report
            # data_wait_s: the part of the epoch spent waiting for the loader, so train.log and
            # the benchmarks show whether photos or the model set the pace.
            metrics.update(precision=step.precision.name, batch_part=step.batch_part, data_wait_s=round(waited, 3))
            if step.guard.fell_back:
                self._say_status(precision_fallback=True)
            self._end_epoch(metrics)
            if self.ctx.should_stop:
                break

    def _record_speed(self, images_per_s: float) -> None:
        """This machine's real fine-tuning speed, for the next time estimate (core/machine_speed:
        the one source of speed for both). Not the first epoch of a stage: it also starts the
        loader and decodes photos that the estimate prices on their own."""
        from core import machine_speed

        try:
            machine_speed.record_loop(self.config.backbone, self.prep.image_size, self.config.batch_size,
                                      self.ctx.device.type, images_per_s, self.memory.peak_mb(), self.workspace)
        except OSError as exc:  # a full or read-only cache folder must not stop the training
            log.warning("could not record the fine-tuning speed (%s)", exc)

    def _finetune_epoch(self, loader, step: FineTuneStep, scheduler):
        from core.freezing import set_frozen_bn_eval

        device = self.ctx.device
        self.model.train()
        set_frozen_bn_eval(self.model)
        total_loss, correct, seen, waited = 0.0, 0, 0, 0.0
        ready = time.perf_counter()
        for index, (images, labels) in enumerate(loader, start=1):
            waited += time.perf_counter() - ready
            images = batch_to_device(images, device, step.precision.channels_last)
            labels = labels.to(device, non_blocking=device.type == "cuda")
            loss, logits = step(images, labels)
            scheduler.step()
            total_loss += loss * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
            self.memory.sample()
            self.hooks.on_batch_end(self.ctx, index, len(loader), loss)
            ready = time.perf_counter()
        return total_loss, correct, seen, waited

    def _batch_halved(self, part: int) -> None:
        """core/oom.py halved the batch: status.json tells the Train page (and metrics the story)."""
        self._say_status(batch_part=part, batch_size=self.config.batch_size)

    def _say_status(self, **fields) -> None:
        try:
            runs.update_status(self.ctx.run_dir, **fields)
        except OSError as exc:  # a note for people; never worth failing the training
            log.warning("status note not written: %s", exc)

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
        workers = worker_count(self.config.num_workers, self.ctx.device)
        return DataLoader(dataset, batch_size=self.config.batch_size, shuffle=sampler is None, sampler=sampler,
                          generator=self.generator, drop_last=drop_last,
                          **loader_options(workers, self.ctx.device))

    def _validate_photos(self) -> dict:
        _, logits = forward_photos(self.model, self.data.frames["val"], self.data.class_names, self.prep,
                                   self.ctx.device, batch_size=self.config.batch_size, memory=self.memory,
                                   progress=self._progress("validation"))
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


def lr_factor(step: int, warmup_steps: int, total_steps: int, flat: float = 0.0) -> float:
    """Linear warm-up to 1, held at 1 for the `flat` share of the remaining steps, then cosine
    down to MIN_LR_FACTOR (applied per optimizer step)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if progress < flat:
        return 1.0
    progress = (progress - flat) / (1.0 - flat)
    return MIN_LR_FACTOR + (1 - MIN_LR_FACTOR) * 0.5 * (1 + math.cos(math.pi * progress))


def _label_indices(frame: pd.DataFrame, class_names: list[str]) -> list[int]:
    index = {name: i for i, name in enumerate(class_names)}
    return [index[label] for label in frame["label"]]

