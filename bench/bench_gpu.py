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
a message when no CUDA GPU is present. Each trainer epoch also says how much of it was spent
waiting for photos, and "ceiling best, reading loss and accuracy back each step" shows what the
per-batch reads of a reporting loop cost: together they say where a shortfall comes from.
--compile adds torch.compile (3 epochs) and --real-oom a true out-of-memory (GPU memory capped
at 3 GiB, batch 1024: the run must halve its batch, in training and validation, and finish).
  .venv/bin/python bench/bench_gpu.py [--backbones tf_efficientnet_lite0 resnet50 ...] [--photos 4096]
  .venv/bin/python bench/bench_gpu.py --smoke-cpu    # every step on the CPU, tiny: checks the script

On this workplace's GPU machine (device tool), one call: first `bash bench/gpu_wheels.sh` here,
then run, carrying .whl, with
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site
  .whl/*.whl && export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 && timeout 500 python3 bench/bench_gpu.py
  --compile --real-oom --json $OUT/bench_gpu.json > $OUT/bench_gpu.log 2>&1; grep -v INFO $OUT/bench_gpu.log
Not yet run on a GPU: 2026-12-04 a GPU was drawn for the session but new loans were paused
before the first call.
"""
from __future__ import annotations

import argparse
import json
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


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def ceiling(backbone: str, batch: int, best: bool, device: str = "cuda", steps: int = 30, sync: bool = False) -> float:
    """Photos per second of train steps on one batch already on the device.

    sync=True reads the loss and the number correct back after every step, as a training loop
    that reports them per batch does (core/finetune_step.py): it shows what those reads cost."""
    import torch
    import timm

    from core.precision import choose

    torch.manual_seed(0)
    model = timm.create_model(backbone, pretrained=False, num_classes=2).to(device).train()
    precision = choose("auto" if best else "fp32", device, backbone)
    fmt = torch.channels_last if precision.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    size = int(model.pretrained_cfg.get("input_size", (3, 224, 224))[-1])
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 2, (batch,), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda") if precision.needs_scaler else None

    def step():
        with precision.autocast():
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if sync:
            loss.item()
            (logits.argmax(1) == y).sum().item()

    for _ in range(5):
        step()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return batch * steps / (time.perf_counter() - started)


def plain_loop(backbone: str, data: Path, batch: int, device: str = "cuda", warmup_batches: int = 5) -> float:
    """One epoch of the hand-written loop; the clock starts after `warmup_batches` (cuDNN autotuning).

    It has no cache, so every epoch costs the same: one timed epoch is its speed."""
    import timm
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from core.weights import create_backbone

    torch.manual_seed(0)
    weights = "pretrained" if backbone in OFFLINE_WEIGHTS else "scratch"
    model = create_backbone(backbone, 2, weights=weights).to(device).train()
    cfg = timm.data.resolve_data_config(model=model)
    size = int(cfg["input_size"][-1])
    tf = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(cfg["mean"], cfg["std"])])
    loader = DataLoader(datasets.ImageFolder(str(data / "train"), tf), batch_size=batch, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    seen, started = 0, None
    for i, (images, labels) in enumerate(loader):
        if i == warmup_batches:
            _sync(device)
            seen, started = 0, time.perf_counter()
        images, labels = images.to(device), labels.to(device)
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(labels)
    _sync(device)
    return seen / (time.perf_counter() - started)


def trainer(backbone: str, data: Path, batch: int, precision: str, workspace: Path, device: str = "cuda",
            epochs: int = 2, compile: bool = False) -> dict:
    from core.config import TrainConfig
    from core.train import train

    weights = "pretrained" if backbone in OFFLINE_WEIGHTS else "scratch"
    config = TrainConfig(data_path=str(data), backbone=backbone, strategy="full", weights=weights, epochs=epochs,
                         lr=1e-4, backbone_lr=1e-4, batch_size=batch, seed=0, early_stopping_patience=0,
                         device=device, precision=precision, compile=compile)
    started = time.perf_counter()
    result = train(config, workspace=workspace)
    wall_s = round(time.perf_counter() - started, 1)
    from core.runs import read_metrics

    rows = read_metrics(result.run_dir).to_dict("records")
    last = rows[-1]
    return {"images_per_s": float(last["images_per_s"]), "val_acc": float(last["val_acc"]),
            "data_wait_share": round(float(last.get("data_wait_s") or 0.0) / max(float(last["seconds"]), 1e-9), 3),
            "peak_mem_mb": last.get("peak_mem_mb"), "precision": last.get("precision", precision), "wall_s": wall_s,
            "epoch_seconds": [round(float(row["seconds"]), 2) for row in rows],
            "batch_part": last.get("batch_part"), "status": result.status, "epochs_done": len(rows)}


def _say_trainer(name: str, r: dict, plain: float | None, top: float) -> None:
    ratio = f", {r['images_per_s'] / plain:.2f}x plain" if plain else ""
    print(f"  {name} ({r['precision']}): {r['images_per_s']:.0f} images/s{ratio}, {r['images_per_s'] / top:.0%} of the "
          f"ceiling, waiting for photos {r['data_wait_share']:.0%} of the epoch, peak {r['peak_mem_mb']} MB, "
          f"run {r['wall_s']} s", flush=True)


def measure_backbone(backbone: str, data: Path, workspace: Path, args, device: str) -> dict:
    row: dict = {}
    steps = 3 if args.smoke_cpu else 30
    for key, best, sync in (("ceiling_fp32", False, False), ("ceiling_best", True, False),
                            ("ceiling_best_sync", True, True)):
        row[key] = ceiling(backbone, args.batch, best, device, steps=steps, sync=sync)
        what = key.replace("_", " ").replace(" sync", ", reading loss and accuracy back each step")
        print(f"  {what}: {row[key]:.0f} images/s", flush=True)
    if not args.skip_plain:
        row["plain_fp32"] = plain_loop(backbone, data, args.batch, device, warmup_batches=1 if args.smoke_cpu else 5)
        print(f"  plain loop fp32: {row['plain_fp32']:.0f} images/s", flush=True)
    for precision in ("fp32", "auto"):
        name = f"trainer_{precision}"
        row[name] = trainer(backbone, data, args.batch, precision, workspace, device, epochs=1 if args.smoke_cpu else 2)
        _say_trainer(name, row[name], row.get("plain_fp32"), row["ceiling_best" if precision == "auto" else "ceiling_fp32"])
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--data", type=Path)
    parser.add_argument("--photos", type=int, default=4096, help="generated photos when no data set is given")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument("--compile", action="store_true",
                        help="last, also time the trainer with torch.compile (auto precision, 3 epochs) on the first "
                             "backbone")
    parser.add_argument("--real-oom", action="store_true",
                        help="last, a real out-of-memory: cap this process's GPU memory at 3 GiB and train the first "
                             "backbone with batch 1024; the run must halve its batch and finish")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--smoke-cpu", action="store_true",
                        help="run every step on the CPU with tiny sizes: checks the script, measures nothing")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    device = "cpu" if args.smoke_cpu else "cuda"
    if args.smoke_cpu:
        args.photos, args.batch = min(args.photos, 40), min(args.batch, 4)
        args.backbones = args.backbones[:1] if args.backbones == list(BACKBONES) else args.backbones
    elif not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU on this machine, nothing measured (run it where `torch.cuda.is_available()`).")
        return 0
    else:
        print(f"GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
              f"{os.cpu_count()} CPU cores, bf16 {torch.cuda.is_bf16_supported()}, batch {args.batch}", flush=True)
    results: dict[str, dict] = {}

    def save() -> None:
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, default=str))

    with tempfile.TemporaryDirectory() as tmp:
        data, workspace = args.data, Path(tmp) / "workspace"  # one workspace: the photo cache is built once
        if data is None:
            started = time.perf_counter()
            data = generate_photos(Path(tmp) / "photos", args.photos)
            print(f"photos: {args.photos} generated 320x240 JPEGs ({time.perf_counter() - started:.0f} s)", flush=True)
        else:
            print(f"photos: {data}", flush=True)
        for backbone in args.backbones:
            note = "" if backbone in OFFLINE_WEIGHTS else " (RANDOM weights: speed only)"
            print(f"\n== {backbone}{note}", flush=True)
            try:
                results[backbone] = measure_backbone(backbone, data, workspace, args, device)
            except Exception as exc:  # one backbone failing must not hide the others' figures
                logging.exception("%s failed", backbone)
                results[backbone] = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"  {backbone} failed: {results[backbone]['error']}", flush=True)
            finally:
                if device == "cuda":
                    torch.cuda.empty_cache()
            save()
        # torch.compile spends a minute or so compiling in the first epoch: it runs after every
        # other figure is printed and saved, so a slow or failing compile costs none of them.
        first = results.get(args.backbones[0], {})
        if args.compile and "ceiling_best" in first:
            print(f"\n== {args.backbones[0]}, trainer with torch.compile", flush=True)
            try:
                r = first["trainer_auto_compile"] = trainer(args.backbones[0], data, args.batch, "auto", workspace, device,
                                                            epochs=1 if args.smoke_cpu else 3, compile=True)
                _say_trainer("trainer_auto_compile (last of 3 epochs)", r, first.get("plain_fp32"), first["ceiling_best"])
            except Exception as exc:
                logging.exception("torch.compile failed")
                first["compile_error"] = f"{type(exc).__name__}: {exc}"
                print(f"  compile failed: {first['compile_error']}", flush=True)
            save()
        if args.real_oom and device == "cuda" and "ceiling_best" in first:
            real_oom(args.backbones[0], data, workspace, first)
            save()
    return 0


def real_oom(backbone: str, data: Path, workspace: Path, row: dict, cap_gib: float = 3.0, batch: int = 1024) -> None:
    import torch

    print(f"\n== {backbone}, a real out-of-memory: GPU memory capped at {cap_gib} GiB, batch {batch}", flush=True)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(cap_gib * 2**30 / total)
    try:
        r = row["real_oom"] = trainer(backbone, data, batch, "auto", workspace, "cuda", epochs=1)
        print(f"  {r['status']} after {r['epochs_done']} epoch(s); the batch of {batch} ran in parts of "
              f"{r['batch_part']}; peak {r['peak_mem_mb']} MB; val acc {r['val_acc']:.3f}", flush=True)
    except Exception as exc:
        logging.exception("the real out-of-memory run failed")
        row["real_oom_error"] = f"{type(exc).__name__}: {exc}"
        print(f"  FAILED: {row['real_oom_error']}", flush=True)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)


if __name__ == "__main__":
    sys.exit(main())
