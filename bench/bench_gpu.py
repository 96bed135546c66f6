"""Issue 12 GPU benchmark, one prepared run: images per second of full fine-tuning on CUDA.

For each backbone (Lite0, ResNet-50, ConvNeXt-T, ViT-S) it prints:
  ceiling      the model's own forward+backward+AdamW step on a batch already on the GPU
               (random tensors; no data loading), fp32 and with the best settings
  plain fp32   a hand-written loop: torchvision ImageFolder + RandomResizedCrop + flip, one
               process (no workers), fp32
  trainer      core.train.train (the path `latih train` uses), precision fp32 and auto
               (core.precision.AUTO_CHOICES: bf16 autocast, channels_last where listed)
Images per second are training photos / seconds of the last epoch's training (the first epoch
warms up cuDNN autotuning, the decoded-photo cache and the workers). Bar (issue 12): trainer
>= 3x the fp32 plain loop and >= 80% of the ceiling, for Lite0.

Only Lite0 has offline pretrained weights here; the other backbones are built from RANDOM
weights (timm cannot download), which is fine for speed and says nothing about accuracy.
Photos: --data FOLDER (ImageFolder layout with train/ and val/), else --photos generated 320x240
JPEGs (hymenoptera's 245 photos are too few to time a GPU epoch). Exits cleanly with
a message when no CUDA GPU is present.
  .venv/bin/python bench/bench_gpu.py [--backbones tf_efficientnet_lite0 resnet50 ...] [--photos 2048]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BACKBONES = ("tf_efficientnet_lite0", "resnet50", "convnext_tiny", "vit_small_patch16_224")
OFFLINE_WEIGHTS = ("tf_efficientnet_lite0",)


def generate_photos(root: Path, n: int) -> Path:
    """n distinct 320x240 JPEGs in two classes (smooth random colour fields), train/val 80/20."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        split = "val" if i % 5 == 0 else "train"
        label = ("a", "b")[i % 2]
        grid = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        grid[..., i % 2] //= 2  # a colour cue so the classes differ
        img = Image.fromarray(grid).resize((320, 240), Image.Resampling.BICUBIC)
        folder = root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:05d}.jpg", quality=85)
    return root


def ceiling(backbone: str, batch: int, best: bool, steps: int = 30) -> float:
    import torch
    import timm

    from core.precision import choose

    torch.manual_seed(0)
    model = timm.create_model(backbone, pretrained=False, num_classes=2).cuda().train()
    precision = choose("auto" if best else "fp32", "cuda", backbone)
    fmt = torch.channels_last if precision.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    size = int(model.pretrained_cfg.get("input_size", (3, 224, 224))[-1])
    x = torch.randn(batch, 3, size, size, device="cuda").contiguous(memory_format=fmt)
    y = torch.randint(0, 2, (batch,), device="cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda") if precision.needs_scaler else None

    def step():
        with precision.autocast():
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - started)


def plain_loop(backbone: str, data: Path, batch: int, epochs: int = 2) -> float:
    import timm
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from core.weights import create_backbone

    torch.manual_seed(0)
    weights = "pretrained" if backbone in OFFLINE_WEIGHTS else "scratch"
    model = create_backbone(backbone, 2, weights=weights).cuda()
    cfg = timm.data.resolve_data_config(model=model)
    size = int(cfg["input_size"][-1])
    tf = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(cfg["mean"], cfg["std"])])
    loader = DataLoader(datasets.ImageFolder(str(data / "train"), tf), batch_size=batch, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    speed = 0.0
    for _ in range(epochs):  # the last epoch counts (the first warms up)
        model.train()
        seen, started = 0, time.perf_counter()
        for images, labels in loader:
            images, labels = images.cuda(), labels.cuda()
            loss = torch.nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(labels)
        torch.cuda.synchronize()
        speed = seen / (time.perf_counter() - started)
    return speed


def trainer(backbone: str, data: Path, batch: int, precision: str, workspace: Path, epochs: int = 2) -> dict:
    from core.config import TrainConfig
    from core.train import train

    weights = "pretrained" if backbone in OFFLINE_WEIGHTS else "scratch"
    config = TrainConfig(data_path=str(data), backbone=backbone, strategy="full", weights=weights, epochs=epochs,
                         lr=1e-4, backbone_lr=1e-4, batch_size=batch, seed=0, early_stopping_patience=0,
                         device="cuda", precision=precision)
    result = train(config, workspace=workspace)
    from core.runs import read_metrics

    rows = read_metrics(result.run_dir).to_dict("records")
    last = rows[-1]
    return {"images_per_s": float(last["images_per_s"]), "val_acc": float(last["val_acc"]),
            "peak_mem_mb": last.get("peak_mem_mb"), "precision": last.get("precision", precision)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--data", type=Path)
    parser.add_argument("--photos", type=int, default=2048, help="generated photos when no data set is found")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--skip-plain", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU on this machine, nothing measured (run it where `torch.cuda.is_available()`).")
        return 0
    print(f"GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{os.cpu_count()} CPU cores, bf16 {torch.cuda.is_bf16_supported()}, batch {args.batch}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = generate_photos(Path(tmp) / "photos", args.photos)
            print(f"photos: {args.photos} generated 320x240 JPEGs (no data set found)", flush=True)
        else:
            print(f"photos: {data}", flush=True)
        for backbone in args.backbones:
            note = "" if backbone in OFFLINE_WEIGHTS else " (RANDOM weights: speed only)"
            print(f"\n== {backbone}{note}", flush=True)
            try:
                top = {}
                for best in (False, True):
                    top[best] = ceiling(backbone, args.batch, best)
                    print(f"  ceiling {'best' if best else 'fp32'}: {top[best]:.0f} images/s", flush=True)
                plain = None
                if not args.skip_plain:
                    plain = plain_loop(backbone, data, args.batch)
                    print(f"  plain loop fp32: {plain:.0f} images/s", flush=True)
                for precision in ("fp32", "auto"):
                    r = trainer(backbone, data, args.batch, precision, Path(tmp) / f"ws-{backbone}-{precision}")
                    ratio = f", {r['images_per_s'] / plain:.2f}x plain" if plain else ""
                    print(f"  trainer {precision} ({r['precision']}): {r['images_per_s']:.0f} images/s{ratio}, "
                          f"{r['images_per_s'] / top[precision == 'auto']:.0%} of the ceiling, "
                          f"peak {r['peak_mem_mb']} MB", flush=True)
            except Exception as exc:  # one backbone failing must not hide the others' figures
                logging.exception("%s failed", backbone)
                print(f"  {backbone} failed: {type(exc).__name__}: {exc}", flush=True)
            finally:
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
