"""Issue 4: Grad-CAM overlays from four backbone families, saved as one picture to look at.

EfficientNet-Lite0 uses its bundled ImageNet weights and is explained for its own top class
on real photos (a bee, an ant). ResNet-50, ConvNeXt-Tiny and ViT-Small have no offline
weights here, so they use random weights: their maps show the machinery works for each family
(right layer, right shape, ViT tokens mapped back to the grid), not what a trained model sees.
Usage: .venv/bin/python bench/bench_gradcam.py [--out test-artifacts/gradcam_grid.png]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image, ImageDraw

from core.augment import build_eval_transform
from core.weights import data_config, pretrained_model
from core.data.decode import load_image
from core.explain import gradcam

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
PHOTOS = [SHARED / "hymenoptera" / "val" / "bees" / "10870992_eebeeb3a12.jpg",
          sorted((SHARED / "hymenoptera" / "val" / "ants").glob("*.jpg"))[3]]
MODELS = [("tf_efficientnet_lite0", "ImageNet (bundled)"), ("resnet50", "random"),
          ("convnext_tiny", "random"), ("vit_small_patch16_224", "random")]


def build(name: str, weights: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = pretrained_model(name) if weights.startswith("ImageNet") else timm.create_model(name, pretrained=False)
    return model.eval()


def overlays(name: str, weights: str) -> list[np.ndarray]:
    model = build(name, weights)
    cfg = data_config(model)
    size = cfg["input_size"][-1]
    transform = build_eval_transform(size, cfg["mean"], cfg["std"], crop_pct=cfg["crop_pct"])
    preview = build_eval_transform(size, (0, 0, 0), (1 / 255,) * 3, crop_pct=cfg["crop_pct"])
    tiles = []
    for photo in PHOTOS:
        array = np.asarray(load_image(photo))
        x = transform(image=array)["image"].unsqueeze(0)
        rgb = preview(image=array)["image"].permute(1, 2, 0).numpy() / 255.0
        started = time.perf_counter()
        cam, overlay = gradcam(model, x, rgb_image=np.clip(rgb, 0, 1))
        with torch.no_grad():
            top = int(model(x).argmax(1))
        print(f"{name:24s} {weights:20s} {photo.parent.name}/{photo.name}: class {top}, "
              f"cam mean {cam.mean():.2f} max {cam.max():.2f}, {time.perf_counter() - started:.2f} s")
        tiles.append(np.asarray(Image.fromarray(overlay).resize((224, 224))))
    return tiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="test-artifacts/gradcam_grid.png")
    args = parser.parse_args()
    rows = []
    for name, weights in MODELS:
        tiles = overlays(name, weights)
        label = Image.new("RGB", (224, 224), "white")
        ImageDraw.Draw(label).multiline_text((8, 90), f"{name}\n{weights} weights", fill="black")
        rows.append(np.concatenate([np.asarray(label), *tiles], axis=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
