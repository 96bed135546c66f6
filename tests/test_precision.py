"""Precision choices per device and backbone family, and the fp32 fallback on a non-finite loss."""
from __future__ import annotations

import math

import pytest
import torch

from core.errors import LatihError
from core.precision import AUTO_CHOICES, NonFiniteGuard, Precision, choose, family


def test_families_of_the_benchmarked_backbones():
    assert family("tf_efficientnet_lite0") == "efficientnet"
    assert family("resnet50") == "resnet"
    assert family("convnext_tiny") == "convnext"
    assert family("vit_small_patch16_224") == "vit"
    assert family("something_new") == "other"


def test_auto_on_cpu_follows_the_measured_table():
    chosen = choose("auto", "cpu", "tf_efficientnet_lite0")
    dtype_name, channels_last = AUTO_CHOICES[("cpu", "efficientnet")]
    assert chosen.name == (dtype_name or "fp32") and chosen.channels_last == channels_last
    assert choose("auto", "cpu", "vit_small_patch16_224").name == "fp32"  # not measured: fp32
    assert choose("fp32", "cpu", "resnet50").dtype is None


def test_fp16_without_a_gpu_is_a_plain_error():
    with pytest.raises(LatihError, match="needs a CUDA GPU"):
        choose("fp16", "cpu", "resnet50")
    with pytest.raises(LatihError, match="precision must be one of"):
        choose("fp8", "cpu", "resnet50")


def test_bf16_autocast_runs_a_forward_in_bf16_on_cpu():
    precision = choose("bf16", "cpu", "resnet50")
    layer = torch.nn.Linear(4, 2)
    with precision.autocast():
        out = layer(torch.randn(3, 4))
    assert out.dtype == torch.bfloat16


def test_non_finite_loss_under_autocast_skips_the_step_and_falls_back_to_fp32():
    guard = NonFiniteGuard(Precision("cpu", torch.bfloat16, False))
    assert guard.check(0.7)
    assert not guard.check(math.nan)
    assert guard.fell_back and guard.precision.dtype is None and guard.precision.name == "fp32"
    assert guard.check(math.inf)  # fp32 itself: nothing left to fall back to, the step goes ahead


def test_a_nan_loss_under_bf16_skips_that_update_and_the_step_goes_on_in_fp32():
    from core.finetune_step import FineTuneStep

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    calls = {"n": 0}
    forward = model.forward

    def nan_first(x):
        calls["n"] += 1
        out = forward(x)
        return out * float("nan") if calls["n"] == 1 else out

    model.forward = nan_first
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = FineTuneStep(model, optimizer, torch.nn.functional.cross_entropy, choose("bf16", "cpu", "resnet50"), 8)
    x, y = torch.randn(8, 4), torch.arange(8) % 2
    before = model.weight.detach().clone()
    loss, _ = step(x, y)
    assert math.isnan(loss) and torch.equal(model.weight, before)  # the bad update was not applied
    assert step.precision.name == "fp32"
    loss, logits = step(x, y)
    assert math.isfinite(loss) and logits.dtype == torch.float32 and not torch.equal(model.weight, before)


def test_loader_workers_are_auto_per_device():
    from core.loader import loader_options, worker_count

    assert worker_count(None, "cpu") == 0  # the cores belong to the model on a CPU
    assert worker_count(3, "cpu") == 3  # an explicit choice is kept
    assert loader_options(0, "cpu") == {"num_workers": 0, "pin_memory": False, "persistent_workers": False}
    assert loader_options(4, "cuda")["pin_memory"] and loader_options(4, "cuda")["prefetch_factor"] == 4
