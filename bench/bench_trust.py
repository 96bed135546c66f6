"""Benchmarks for the trust features on real photos (CPU is enough).

    python bench/bench_trust.py            # ONNX + TorchScript parity, bootstrap timings
    python bench/bench_trust.py --ood      # also Mahalanobis vs kNN OOD on real features (~1-2 min)

Grad-CAM overlays of four families: bench/bench_gradcam.py.

Parity: 20 photos from hymenoptera/val through PyTorch and onnxruntime; largest |logit diff|.
tf_efficientnet_lite0 has real (bundled) ImageNet weights; the others are random weights
(no network here), which still exercises every operator the exporter has to translate.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LATIH_WORKSPACE", tempfile.mkdtemp(prefix="latih-bench-"))

import timm  # noqa: E402
from PIL import Image  # noqa: E402
from timm.data import create_transform, resolve_data_config  # noqa: E402

from core.weights import pretrained_model  # noqa: E402
from core.stats import bootstrap_cis  # noqa: E402
from core.export import (check_onnx_parity, check_torchscript_parity, export_onnx,  # noqa: E402
                         export_torchscript)

DATA = Path(os.environ.get("LATIH_DATASETS", ROOT.parent / "shared" / "datasets"))
if not DATA.exists():
    DATA = Path("/work/shared/datasets")
HYM = DATA / "hymenoptera" / "val"
BACKBONES = [("tf_efficientnet_lite0", "real ImageNet weights (bundled)"),
             ("resnet18", "random weights"), ("convnext_atto", "random weights"),
             ("vit_tiny_patch16_224", "random weights")]
IMAGENET_BEE = 309


def build(name: str) -> torch.nn.Module:
    if name == "tf_efficientnet_lite0":
        return pretrained_model(name).eval()  # 1000-class ImageNet head: real predictions
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=2).eval()


def photos(n_per_class: int = 10) -> list[Path]:
    return [Path(p) for cls in ("ants", "bees")
            for p in sorted(glob.glob(str(HYM / cls / "*.jpg")))[:n_per_class]]


def batch(model, paths) -> torch.Tensor:
    tf = create_transform(**resolve_data_config(model=model))
    return torch.stack([tf(Image.open(p).convert("RGB")) for p in paths])


def bench_parity(tmp: Path) -> None:
    paths = photos()
    print(f"\n== export parity on {len(paths)} real photos ({HYM}) ==")
    print(f"{'backbone':24s} {'weights':32s} {'onnx max|dlogit|':>17s} {'ts max|dlogit|':>15s} {'export s':>9s}")
    for name, weights in BACKBONES:
        model = build(name)
        x = batch(model, paths)
        size = x.shape[-1]
        t = time.perf_counter()
        onnx_path = export_onnx(model, tmp / f"{name}.onnx", size, check=False)
        secs = time.perf_counter() - t
        d_onnx = check_onnx_parity(model, onnx_path, x)
        ts_path = export_torchscript(model, tmp / f"{name}.pt", size, check=False)
        d_ts = check_torchscript_parity(model, ts_path, x)
        extra = ""
        if name == "tf_efficientnet_lite0":
            with torch.no_grad():
                bees = (model(x[len(x) // 2:]).argmax(1) == IMAGENET_BEE).float().mean().item()
            extra = f"  (ImageNet 'bee' top-1 on the bee photos: {bees:.0%})"
        print(f"{name:24s} {weights:32s} {d_onnx:17.2e} {d_ts:15.2e} {secs:9.1f}{extra}")


def bench_bootstrap() -> None:
    print("\n== bootstrap CIs (1000 stratified resamples, 4 metrics at once) ==")
    rng = np.random.default_rng(0)
    for n, c in ((100, 2), (1000, 2), (1000, 5), (10000, 5)):
        y = np.arange(n) % c
        logits = rng.normal(size=(n, c))
        logits[np.arange(n), y] += 1.5
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        t = time.perf_counter()
        ci = bootstrap_cis(p, y, n=1000)
        secs = time.perf_counter() - t
        print(f"N={n:6d} C={c}: {secs:6.3f} s   accuracy CI {ci['accuracy'][0]:.3f}-{ci['accuracy'][1]:.3f}")


def bench_ood() -> None:
    """Mahalanobis (core.ood) vs 1-NN cosine on real lite0 features: ID = hymenoptera."""
    from sklearn.metrics import roc_auc_score

    from core.ood import OODDetector, _normalise
    model = pretrained_model("tf_efficientnet_lite0").eval()

    def feats(paths):
        with torch.no_grad():
            return torch.cat([model.forward_head(model.forward_features(batch(model, paths[i:i + 32])),
                                                 pre_logits=True) for i in range(0, len(paths), 32)]).numpy()
    train = [Path(p) for c in ("ants", "bees") for p in sorted(glob.glob(str(DATA / "hymenoptera/train" / c / "*")))]
    ytr = np.array([0 if p.parent.name == "ants" else 1 for p in train])
    val = [Path(p) for c in ("ants", "bees") for p in sorted(glob.glob(str(HYM / c / "*")))]
    ood = [Path(p) for d in sorted(glob.glob(str(DATA / "plantvillage_potato_pepper/*")))
           for p in sorted(glob.glob(d + "/*"))[:20]] + \
          [Path(p) for d in ("glaucoma", "normal") for p in sorted(glob.glob(str(DATA / "acrima_glaucoma" / d / "*")))[:30]]
    ftr, fva, food = feats(train), feats(val), feats(ood)
    calib, test = fva[::2], fva[1::2]
    det = OODDetector.fit(ftr, ytr)
    det.calibrate(calib)

    def knn(x):
        return 1 - (_normalise(x) @ _normalise(ftr).T).max(1)
    print(f"\n== OOD: ID hymenoptera (train {len(train)}), OOD {len(ood)} leaf + fundus photos ==")
    for label, f in (("mahalanobis", det.score), ("1-NN cosine", knn)):
        thr = np.percentile(f(calib), 95)
        s_id, s_ood = f(test), f(food)
        auc = roc_auc_score(np.r_[np.zeros(len(s_id)), np.ones(len(s_ood))], np.r_[s_id, s_ood])
        print(f"{label:12s} AUROC {auc:.3f}; flagged: ID val {np.mean(s_id > thr):.0%}, OOD {np.mean(s_ood > thr):.0%}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ood", action="store_true")
    ap.add_argument("--no-parity", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_parity:
            bench_parity(Path(tmp))
    bench_bootstrap()
    if args.ood:
        bench_ood()
    return 0


if __name__ == "__main__":
    sys.exit(main())
