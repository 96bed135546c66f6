"""Out of GPU memory during a batch: halve the batch and carry on, never lose the run.

`MicroBatches` runs one training batch as parts of `size` photos each and adds up their
gradients (each part's loss weighted by its share of the batch), so the optimizer still takes
one step per batch of `config.batch_size` photos: the learning-rate schedule, the epoch length
and the seeded data order stay exactly as planned. When a part raises CUDA out-of-memory, the
partial gradients are thrown away, the cached GPU memory is released, `size` is halved and the
same batch is run again; the smaller size is kept for the rest of the run. The halving is
logged, and `on_halve(size)` lets the trainer record it (status.json, metrics.jsonl) so the
Train page can say so.

Only a batch of one photo that still does not fit is an error (a LatihError with advice).

`halving_on_oom(run, batch_size, what)` is the same rule for passes without gradients
(validation, the outputs, features): `run(batch_size)` is called again with half the batch
until it fits.
"""
from __future__ import annotations

import logging
from typing import Callable, TypeVar

import torch

from core.errors import LatihError

log = logging.getLogger(__name__)
T = TypeVar("T")


class OutOfMemory(LatihError):
    """Even one photo at a time does not fit in the GPU's memory."""


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA (and MPS) out-of-memory, whichever way torch raises it."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_memory() -> None:
    """Give the blocks the failed part held back to the allocator (a no-op without CUDA)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class MicroBatches:
    """Run a batch in parts of `size` photos; halve `size` on out-of-memory and retry."""

    def __init__(self, batch_size: int, on_halve: Callable[[int], None] | None = None):
        self.batch_size = int(batch_size)
        self.size = int(batch_size)
        self.on_halve = on_halve
        self.halvings = 0

    def run(self, images: torch.Tensor, labels: torch.Tensor, forward_backward: Callable,
            zero_grad: Callable[[], None]) -> tuple[float, torch.Tensor]:
        """(mean loss over the batch, detached logits of the batch).

        forward_backward(images_part, labels_part, weight) runs the forward pass, calls
        backward on loss * weight and returns (loss value as float, detached logits);
        zero_grad() clears the gradients (called before every attempt).
        """
        n = len(labels)
        while True:
            zero_grad()
            try:
                return self._parts(images, labels, n, forward_backward)
            except Exception as exc:  # only out-of-memory is handled; everything else goes up
                if not is_out_of_memory(exc):
                    raise
                self._halve(exc)

    def _parts(self, images, labels, n, forward_backward):
        if self.size >= n:
            return forward_backward(images, labels, 1.0)
        total, logits = 0.0, []
        for start in range(0, n, self.size):
            part = slice(start, min(start + self.size, n))
            share = (part.stop - part.start) / n
            loss, part_logits = forward_backward(images[part], labels[part], share)
            total += loss * share
            logits.append(part_logits)
        return total, torch.cat(logits)

    def _halve(self, exc: BaseException) -> None:
        release_memory()
        self.size = half_of(self.size, exc)
        self.halvings += 1
        log.warning("out of GPU memory (%s); the batch of %d photos now runs in parts of %d and the run "
                    "continues", first_line(exc), self.batch_size, self.size)
        if self.on_halve is not None:
            self.on_halve(self.size)


def half_of(size: int, exc: BaseException) -> int:
    """The next, halved size after an out-of-memory; at one photo there is none (a plain error)."""
    if size <= 1:
        raise OutOfMemory("the GPU ran out of memory even with one photo at a time: choose a smaller "
                          "image size or backbone, or train on the CPU (device cpu)") from exc
    return max(1, size // 2)


def first_line(exc: BaseException) -> str:
    """torch's out-of-memory message runs to several lines of allocator advice: its first, for the log."""
    return (str(exc).splitlines() or [""])[0][:200]


def halving_on_oom(run: Callable[[int], T], batch_size: int, what: str) -> T:
    """run(size) for the largest size, halving from batch_size, that fits in memory."""
    size = int(batch_size)
    while True:
        try:
            return run(size)
        except Exception as exc:  # only out-of-memory is handled; everything else goes up
            if not is_out_of_memory(exc):
                raise
            size, reason = half_of(size, exc), first_line(exc)
        # Outside the except block: the failed pass's tensors, held by the traceback, are free now.
        release_memory()
        log.warning("out of GPU memory during %s (%s); running it again %d photos at a time", what, reason, size)


__all__ = ["MicroBatches", "OutOfMemory", "is_out_of_memory", "release_memory", "halving_on_oom"]
