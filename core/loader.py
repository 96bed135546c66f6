"""How photos reach the model: worker processes, pinned memory and prefetching, per device.

`worker_count(setting, device)`: TrainConfig.num_workers None = auto. On the CPU the photos
come from the decoded-photo cache (core/data/cache.py: a small uint8 array per photo, no JPEG
decoding after the first epoch), so preparing a batch costs a few milliseconds against seconds
of forward+backward; a worker process would only take a core away from the model, so auto is
0 there. On a GPU the processor is free to prepare batches while the GPU computes: auto is one
worker per allowed core, leaving one for the training process, at most 8.

`loader_options(workers, device)` are the DataLoader keyword arguments that go with it:
pinned memory (so `non_blocking` copies overlap the GPU's work) and prefetching on CUDA,
persistent workers across epochs.
"""
from __future__ import annotations

import logging

import torch

from core.device import cpu_threads

log = logging.getLogger(__name__)
MAX_AUTO_WORKERS = 8


def worker_count(setting: int | None, device: torch.device | str) -> int:
    if setting is not None:
        return int(setting)
    if torch.device(device).type != "cuda":
        return 0
    return max(0, min(MAX_AUTO_WORKERS, cpu_threads() - 1))


def loader_options(workers: int, device: torch.device | str) -> dict:
    cuda = torch.device(device).type == "cuda"
    options = {"num_workers": workers, "pin_memory": cuda, "persistent_workers": workers > 0}
    if workers > 0:
        options["prefetch_factor"] = 4 if cuda else 2
    return options


def to_device(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """Copy a batch to the device (non-blocking from pinned memory on CUDA) in the model's layout."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return images.to(device, non_blocking=device.type == "cuda", memory_format=fmt)


__all__ = ["worker_count", "loader_options", "to_device", "MAX_AUTO_WORKERS"]
