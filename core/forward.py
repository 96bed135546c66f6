"""One pass of a model over photos: pooled features and logits, eval transform, no gradients.

Used by training (validation, the head stage's features, the outputs), by core/features.py
(estimates) and by core/active.py (labelling order).
"""
from __future__ import annotations

import contextlib

import pandas as pd
import torch
from torch import nn

from core.device import PeakMemory, autocast_for, to_device, use_channels_last
from core.prepare import Preprocessing

FEATURE_BATCH = 48  # photos per forward pass when computing frozen features (CPU cache-friendly)


def forward_photos(model: nn.Module, frame: pd.DataFrame, class_names, prep: Preprocessing, device,
                   batch_size: int = FEATURE_BATCH, progress=None, memory: PeakMemory | None = None):
    """(pooled pre-logits features, logits) for each photo in frame, eval transform, no grad.

    A batch that does not fit in the GPU's memory: the pass runs again with half the batch
    (core/oom.py), so a batch size chosen for training never loses a run at validation."""
    from core.data.cache import PhotoDataset
    from core.oom import halving_on_oom

    dataset = PhotoDataset(frame, class_names, prep.eval_transform, prep.cache)
    return halving_on_oom(lambda size: _forward_dataset(model, dataset, device, size, progress, memory),
                          batch_size, "a pass over the photos")


def _forward_dataset(model: nn.Module, dataset, device, batch_size: int, progress, memory):
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    was_training = model.training
    model.eval()
    amp = autocast_for(device)
    features, logits, done = [], [], 0
    try:  # the model goes back to its mode when a pass fails too (an out-of-memory retry follows)
        with _inference_layout(model, device), torch.inference_mode(), amp.context():
            for images, _ in loader:
                pooled = model.forward_head(model.forward_features(to_device(images, device)), pre_logits=True)
                features.append(pooled.float().cpu())
                logits.append(model.get_classifier()(pooled).float().cpu())
                done += len(images)
                if memory is not None:
                    memory.sample()
                if progress is not None:
                    progress(done, len(dataset))
    finally:
        model.train(was_training)
    return torch.cat(features).numpy(), torch.cat(logits).numpy()


@contextlib.contextmanager
def _inference_layout(model: nn.Module, device):
    """channels_last for this pass only: the model leaves in the memory layout it came in.

    Why: the training loop trains in its precision's layout (core/precision.py; contiguous on
    the CPU for most families). When validation left the model in channels_last, every epoch
    after the first ran other convolution kernels than the first, and a run that resumed, or
    whose head features came from the cache (no pass before fine-tuning), ran those epochs in
    the other layout: same seed, different last digits, then different weights.
    """
    if not use_channels_last(device):
        yield
        return
    # model.to(memory_format=...) swaps each parameter's .data in place and replaces buffers:
    # keep the originals (no copy: nothing is trained here) and put them back afterwards.
    params = [(p, p.data) for p in model.parameters()]
    buffers = [(module, name, buffer) for module in model.modules()
               for name, buffer in module.named_buffers(recurse=False)]
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        for param, data in params:
            param.data = data
        for module, name, buffer in buffers:
            setattr(module, name, buffer)
