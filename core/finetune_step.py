"""One optimizer step of fine-tuning at the machine's limit, with its two safety nets.

`FineTuneStep(model, optimizer, loss_fn, precision, batch_size)` called on a batch runs the
forward pass under the chosen precision (core/precision.py), the backward pass (scaled for
fp16), and the optimizer step, and returns (mean loss, detached logits). Safety nets:
  * CUDA out-of-memory: the batch runs again in halves (core/oom.py), and stays halved;
  * a non-finite loss under autocast: the update is skipped and the run goes on in fp32.
The learning-rate schedule is the caller's (one scheduler.step() per batch either way).
"""
from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import nn

from core.oom import MicroBatches
from core.precision import NonFiniteGuard, Precision

log = logging.getLogger(__name__)


class FineTuneStep:
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable,
                 precision: Precision, batch_size: int, on_halve: Callable[[int], None] | None = None):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.guard = NonFiniteGuard(precision)
        self.parts = MicroBatches(batch_size, on_halve)
        self.scaler = torch.amp.GradScaler("cuda") if precision.needs_scaler else None
        self._clear_pending = True

    @property
    def precision(self) -> Precision:
        return self.guard.precision

    @property
    def batch_part(self) -> int:
        """Photos per forward pass now: the batch size, or less after an out-of-memory."""
        return self.parts.size

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, torch.Tensor]:
        loss, logits = self.parts.run(images, labels, self._forward_backward, self._clear_later)
        if not self.guard.check(loss):
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler = None  # fp32 from here on needs no scaler
            return loss, logits
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return loss, logits

    def _clear_later(self) -> None:
        """Called before every attempt at a batch: its first part clears the gradients."""
        self._clear_pending = True

    def _forward_backward(self, images, labels, weight: float):
        with self.guard.precision.autocast():
            logits = self.model(images)
            loss = self.loss_fn(logits.float(), labels)
        if self._clear_pending:
            # Why after the forward pass, not before it: freeing the old gradients just before
            # backward lets backward reuse their memory at once. Cleared before the forward, a
            # CPU step of Lite0 (batch 32) ran at 10-11 photos/s instead of 13-14 (measured).
            self.optimizer.zero_grad(set_to_none=True)
            self._clear_pending = False
        scaled = loss * weight if weight != 1.0 else loss
        (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        return loss.item(), logits.detach()


__all__ = ["FineTuneStep"]
