"""CPU speed of Latih's backbones: the source of `cpu_images_per_s` in core/backbones.py.

    .venv/bin/python bench/bench_backbones.py            # forward images/s + train-step ratios
    .venv/bin/python bench/bench_backbones.py --profile  # params / GMACs / activations table
    .venv/bin/python bench/bench_backbones.py --models resnet50 --batches 2

Random weights (speed does not depend on them), batch 16, the model's native input size,
2 torch threads; each figure is the fastest of --batches timed batches, because on a shared
machine the minimum is the least disturbed. Still rough: run it twice, keep the better.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import timm  # noqa: E402
import torch  # noqa: E402

from core.backbones import REGISTRY, profile_on_meta  # noqa: E402

from core.freezing import apply_strategy, param_groups, set_frozen_bn_eval  # noqa: E402

SPEED_MODELS = ("tf_efficientnet_lite0", "mobilenetv3_large_100", "efficientnet_b0",
                "resnet50", "convnext_tiny", "vit_small_patch16_224")
RATIO_MODELS = ("tf_efficientnet_lite0", "resnet50")


def images_per_s(model: torch.nn.Module, batch: torch.Tensor, batches: int) -> float:
    """Fastest of `batches` timed batches: on a shared machine the minimum is the run
    least disturbed by other processes."""
    model.eval()
    with torch.inference_mode():
        model(batch)  # warm-up: first call allocates and picks kernels
        return len(batch) / min(_timed(model, batch) for _ in range(batches))


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def train_step_s(model: torch.nn.Module, strategy: str, batch: torch.Tensor, batches: int) -> float:
    apply_strategy(model, strategy, unfreeze_blocks=2)
    optimizer = torch.optim.AdamW(param_groups(model, strategy, 1e-3, 1e-4, 0.75, 0.01))
    labels = torch.zeros(len(batch), dtype=torch.long)
    model.train()
    set_frozen_bn_eval(model)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(batch), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    return min(_timed(step) for _ in range(batches))


def batch_for(name: str, batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, *REGISTRY[name].input_size)


def run_speed(models: list[str], batches: int, batch_size: int) -> None:
    print(f"forward, batch {batch_size}, {torch.get_num_threads()} threads, random weights")
    for name in models:
        model = timm.create_model(name, pretrained=False)
        speed = images_per_s(model, batch_for(name, batch_size), batches)
        print(f"  {name:26s} {speed:7.1f} images/s   (table: {REGISTRY[name].cpu_images_per_s})")


def run_ratios(models: list[str], batches: int, batch_size: int) -> None:
    print(f"train step seconds, batch {batch_size} (fine-tune = last 2 blocks)")
    for name in models:
        batch = batch_for(name, batch_size)
        model = timm.create_model(name, pretrained=False, num_classes=5)
        with torch.inference_mode():
            forward = len(batch) / images_per_s(model, batch, batches)
        times = {s: train_step_s(model, s, batch, batches) for s in ("feature-extraction", "fine-tune", "full")}
        ratios = "  ".join(f"{s}={t:.2f}s ({t / forward:.1f}x fwd)" for s, t in times.items())
        print(f"  {name:26s} forward={forward:.2f}s  {ratios}")


def run_profile() -> None:
    print(f"{'name':26s} params_m  gmacs  act_mb")
    for name in REGISTRY:
        params_m, gmacs, act_mb = profile_on_meta(name)
        print(f"{name:26s} {params_m:8.2f} {gmacs:6.2f} {act_mb:7}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="print params/GMACs/activations only")
    parser.add_argument("--models", nargs="*", default=list(SPEED_MODELS))
    parser.add_argument("--batches", type=int, default=3, help="timed batches per model")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-ratios", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.profile:
        run_profile()
        return
    run_speed(args.models, args.batches, args.batch_size)
    if not args.no_ratios:
        run_ratios([m for m in RATIO_MODELS if m in args.models] or args.models[:1], args.batches, args.batch_size)


if __name__ == "__main__":
    main()
