"""Issue 12 benchmark: full fine-tuning, our trainer against a plain PyTorch loop, one run.

Both ways fine-tune tf_efficientnet_lite0 (bundled pretrained weights) on hymenoptera's own
train/ and val/ folders: strategy full, lr 1e-4 for every layer, batch 32, seeded, for each
epoch budget given (default 3). Each way is timed from its first training batch to the end of
its last epoch's validation (so the per-epoch validation both need is included; model loading,
the trainer's evaluation report and Python start are not), and its images per second are
training photos x epochs / that time.

  our trainer  core.train.train(TrainConfig(...)) -- the path `latih train` uses, with the
               default recipe for everything the command line would not set.
  plain loop   written below: torchvision ImageFolder, RandomResizedCrop(224) + horizontal flip,
               one process (no workers), AdamW lr 1e-4 on all parameters, constant LR.

Bar on CPU (issue 12): ratio trainer / plain >= 1.3 at equal or better validation accuracy,
at every epoch budget. Measured 2026-12-02 03:12-03:15 UTC (2-core Zen 4, nothing else running,
load 1.6-1.9), 3 epochs, seed 0, after the fine-tuning step fixes (gradients cleared after the
forward pass; no deterministic-algorithms flag on the CPU) and the flat-cosine schedule:
  trainer 9.55 images/s (77.0 s), val acc 0.9216 (per epoch 0.752 0.922 0.922)
  plain   5.86 images/s (124.8 s), val acc 0.9150 (per epoch 0.667 0.902 0.915)
  ratio 1.63x, accuracy +0.65 points: the bar is met at seed 0.
Repeated twice 2026-12-02 06:41-06:48 UTC (quiet, load 1.9-2.0), same accuracies bit for bit:
  trainer 9.79 / 10.37 images/s, plain 6.89 / 6.94 images/s: ratio 1.42x / 1.49x (per CPU-second
  1.57x / 1.65x). The plain loop ran faster than at 03:12 (5.86); the trainer's figure held.
Over seeds 0, 1, 2 and budgets 1, 2, 3, 5 (measured 2026-12-02 05:00-06:30 UTC; accuracy is
seeded and bit-repeatable, so load does not change it), the mean of the checkpoint the trainer
keeps against the plain loop's last epoch (153 photos: one photo is 0.65 points):
  1 epoch   trainer 0.784  plain 0.778  (+0.65 points)
  2 epochs  trainer 0.900  plain 0.900  ( 0.00)
  3 epochs  trainer 0.900  plain 0.911  (-1.09)
  5 epochs  trainer 0.911  plain 0.922  (-1.09)
Seeds 3 and 4 added at 3 and 5 epochs (5-seed means): 3 epochs trainer 0.907, plain 0.916 (-0.91);
5 epochs trainer 0.914, plain 0.926 (-1.18); the trainer is ahead once in 10 pairs: the gap is real.
Each per-seed difference is 0-4 photos at 2-5 epochs (9 at 1 epoch, seed 0, the trainer ahead);
across seeds the plain loop spreads 1.3-2.6 points at 3-5 epochs, the trainer 3.3-4.6. Tried and
not kept (none beats the default at every budget by more than that noise): the plain loop's
RandomResizedCrop(0.08-1) + flip (0.778 / 0.893 / 0.911 / 0.913), label smoothing 0.1 (3 epochs
0.895), a constant LR at 5 epochs (alone: 0.911, the default's very accuracies; with that crop: 0.917).
2026-12-02 09:00-10:10 UTC, 5 epochs, seeds 0-2, one more cause checked (the photos): the trainer
crops from the decoded cache (shorter side 256), the plain loop from the full-size JPEG. A cache
at 512 gave 0.922 / 0.902 / 0.922 (mean 0.915: +0.44 on the default, -0.65 on the plain loop);
with the plain loop's crop and a constant LR on top, 0.915 / 0.902 / 0.908 (0.908). The constant
LR alone, rerun with every epoch recorded: each epoch's accuracy the default's, bit for bit (the
schedule's cosine tail moves the validation loss, not one of the 153 decisions). So no single
difference from the plain loop explains the point; the recipe and the 256 cache stay.
2026-12-02 14:30-16:10 UTC, the last two untested differences and five more seeds. Weight decay on
norms and biases as the plain loop does (AdamW 0.01 on every parameter): at 5 epochs, seeds 0-2,
0.928 / 0.908 / 0.895, the default's very accuracies. The evaluation pipeline: each epoch's model
of the trainer also scored with the plain loop's own (PIL, antialiased Resize(256) + CenterCrop):
0.922 / 0.902 / 0.902 at 5 epochs (mean 0.909 against 0.911 with ours), so ours is not the cause.
Seeds 5-9 added at every budget (10 seeds; trainer's kept checkpoint vs plain loop's last epoch):
  1 epoch   trainer 0.800  plain 0.800  ( 0.00 points, Welch SE 3.80; trainer ahead 4 of 10)
  2 epochs  trainer 0.907  plain 0.904  (+0.26, SE 1.16; ahead 5, level 1)
  3 epochs  trainer 0.914  plain 0.916  (-0.19, SE 0.84; ahead 5)
  5 epochs  trainer 0.920  plain 0.926  (-0.65, SE 0.54; ahead 2, level 1)
The 5-seed "gap is real" above was seeds 0-4 landing low for the trainer: over 10 seeds the two
ways are level within one standard error at 1-3 epochs and 1.2 SE apart at 5 (one photo of 153
at most). Not proven at least as good at 5 epochs; not shown worse either. Recipe unchanged.
2026-12-04 18:40-19:39 UTC, 5 epochs, 15 more seeds (10-24), trainer / plain in photos of 153:
  seeds 10-14  141/141 141/141 142/141 142/141 139/141
  seeds 15-24  142/143 143/142 141/143 142/140 140/138 140/142 141/140 142/141 141/139 141/141
Over all 25 seeds at 5 epochs: trainer 0.9216, plain 0.9231, -0.16 points (paired SE 0.21, Welch
0.28; ahead 9, level 6, behind 10); seeds 10-24 alone +0.17. The 10-seed -0.65 was noise: at 5
epochs the two ways are level, and a 95% interval of the gap is -0.57..+0.25 points, under one
photo of 153. So the default recipe is level with the plain loop at every budget measured (1, 2,
3, 5 epochs). Speed of those runs (one 5-epoch run each way per seed): ratio trainer / plain
1.35-1.62x in 12 of these 15 (trainer 14.1-16.2 images/s, plain 9.1-11.4); seed 10 overlapped my
tests, and seeds 15 and 23 ran slow for the trainer (1.11x, 0.83x; per CPU-second 1.40x, 0.94x)
with no other load on the machine's load average: not explained. Both ways ran ~1.5x faster than
on 2026-12-02 on this 2-core machine; the ratio held.
Usage:
  .venv/bin/python bench/bench_finetune.py                   # 3 epochs, both ways
  .venv/bin/python bench/bench_finetune.py --epochs 1 2 3 5  # every budget a user may choose
  .venv/bin/python bench/bench_finetune.py --only trainer --set layer_decay=1.0 warmup_epochs=0
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
DATA = ROOT.parent / "shared" / "datasets" / "hymenoptera"
BACKBONE = "tf_efficientnet_lite0"


def trainer_way(data: Path, epochs: int, seed: int, overrides: dict, workspace: Path) -> dict:
    from core.callbacks import Callback
    from core.config import TrainConfig
    from core.train import train

    class LoopClock(Callback):
        """From the first fine-tuning epoch's start to its last epoch's end (validation included)."""

        def __init__(self):
            self.started, self.ended, self.epochs = None, None, []

        def on_epoch_start(self, ctx):
            if self.started is None:
                self.started, self.cpu_started = time.perf_counter(), _cpu_seconds()

        def on_epoch_end(self, ctx, metrics):
            self.ended, self.cpu_ended = time.perf_counter(), _cpu_seconds()
            self.epochs.append(metrics)

    settings = dict(data_path=str(data), backbone=BACKBONE, strategy="full", epochs=epochs, lr=1e-4,
                    backbone_lr=1e-4, batch_size=32, seed=seed, early_stopping_patience=0)
    settings.update(overrides)
    config = TrainConfig(**settings)
    clock = LoopClock()
    result = train(config, workspace=workspace, callbacks=[clock])
    n_train = int(result.metrics.get("n_train", 0)) or _count(data / "train")
    loop_s = clock.ended - clock.started
    last = clock.epochs[-1]
    return {"way": "trainer", "epochs": epochs, "loop_s": loop_s,
            "images_per_s": n_train * len(clock.epochs) / loop_s,
            "images_per_cpu_s": n_train * len(clock.epochs) / (clock.cpu_ended - clock.cpu_started),
            "train_images_per_s": [m.get("images_per_s") for m in clock.epochs],
            "val_acc_last": last["val_acc"], "val_acc_best": result.metrics["val_acc"],
            "best_epoch": result.best_epoch, "per_epoch_val_acc": [m["val_acc"] for m in clock.epochs],
            "precision": [m.get("precision") for m in clock.epochs],
            "config": {k: v for k, v in config.to_dict().items() if k not in ("data_path", "notes", "exclude")}}


def plain_way(data: Path, epochs: int, seed: int) -> dict:
    """The hand-written loop a PyTorch tutorial would give (one process, constant LR)."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from core.weights import create_backbone, data_config

    torch.manual_seed(seed)
    model = create_backbone(BACKBONE, 2, weights="pretrained")
    dc = data_config(model)
    size = int(dc["input_size"][-1])
    norm = transforms.Normalize(dc["mean"], dc["std"])
    train_tf = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), norm])
    val_tf = transforms.Compose([transforms.Resize(int(round(size / float(dc["crop_pct"])))),
                                 transforms.CenterCrop(size), transforms.ToTensor(), norm])
    train_set = datasets.ImageFolder(str(data / "train"), train_tf)
    val_set = datasets.ImageFolder(str(data / "val"), val_tf)
    g = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True, generator=g, num_workers=0)
    val_loader = DataLoader(val_set, batch_size=32, shuffle=False, num_workers=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    accs = []
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the same threads the trainer uses
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    for _ in range(epochs):
        model.train()
        for images, labels in train_loader:
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in val_loader:
                correct += (model(images).argmax(1) == labels).sum().item()
        accs.append(correct / len(val_set))
    loop_s, cpu_s = time.perf_counter() - started, _cpu_seconds() - cpu_started
    return {"way": "plain", "epochs": epochs, "loop_s": loop_s, "images_per_s": len(train_set) * epochs / loop_s,
            "images_per_cpu_s": len(train_set) * epochs / cpu_s,
            "val_acc_last": accs[-1], "val_acc_best": max(accs), "per_epoch_val_acc": accs}


def _cpu_seconds() -> float:
    """CPU seconds this process (and its loader workers) used: on a shared, busy machine the
    fairer figure, since wall time also counts the time other people's jobs held the cores."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def _parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, nargs="+", default=[3], help="epoch budgets to compare")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("trainer", "plain"), help="run one way only")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="TrainConfig overrides for the trainer (ablations), e.g. layer_decay=1.0")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu cores allowed "
          f"{len(os.sched_getaffinity(0))}, load {os.getloadavg()[0]:.1f}", flush=True)
    overrides = _parse_overrides(args.set)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for epochs in args.epochs:
            pair = {}
            if args.only in (None, "trainer"):
                pair["trainer"] = trainer_way(args.data, epochs, args.seed, overrides, Path(tmp) / f"ws{epochs}")
            if args.only in (None, "plain"):
                pair["plain"] = plain_way(args.data, epochs, args.seed)
            for way, r in pair.items():
                print(f"[{epochs} epochs] {way:7s}: {r['images_per_s']:.2f} images/s ({r['loop_s']:.1f} s), "
                      f"{r['images_per_cpu_s']:.2f} images per CPU-second, "
                      f"val acc last {r['val_acc_last']:.4f}, best {r['val_acc_best']:.4f}, "
                      f"per epoch {[round(a, 4) for a in r['per_epoch_val_acc']]}", flush=True)
            if len(pair) == 2:
                t, p = pair["trainer"], pair["plain"]
                ratio = t["images_per_s"] / p["images_per_s"]
                cpu_ratio = t["images_per_cpu_s"] / p["images_per_cpu_s"]
                verdict = "meets" if ratio >= 1.3 and t["val_acc_best"] >= p["val_acc_last"] else "misses"
                print(f"[{epochs} epochs] ratio trainer/plain {ratio:.2f}x (per CPU-second {cpu_ratio:.2f}x); accuracy trainer {t['val_acc_best']:.4f} "
                      f"vs plain {p['val_acc_last']:.4f} ({t['val_acc_best'] - p['val_acc_last']:+.4f}): {verdict} "
                      f"the bar (>= 1.3x at equal or better accuracy)", flush=True)
            rows.append(pair)
            print(f"load now {os.getloadavg()[0]:.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
