"""How fast THIS computer runs a backbone: the training loop's images per second, measured.

The one source of speed for the time estimates (core/time_estimate.py, the Model page, the
advice) and for the speed benchmarks: a short measurement of the same steps training takes,

  * "forward": eval mode, no autograd, channels_last where training uses it: frozen feature
    extraction, validation passes and the outputs written at the end;
  * "train": train mode, forward + backward + AdamW step over every layer: full fine-tuning,

at the batch size training uses, on random photos of the training size (speed does not
depend on what is in the photos). One warm-up batch, then timed batches. Results are cached
in `<workspace>/cache/machine_speed.json`, keyed by backbone, size, batch, mode, device and
CPU threads, with the load of the machine when measured (a busy computer is slower).

`python -m core.machine_speed BACKBONE [--image-size N] [--batch-size N] [--workspace WS]`
measures both modes in a background process (what the Model page starts) and caches them.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from core.workspace import subdir

log = logging.getLogger(__name__)

MODES = ("forward", "train")
# What a real fine-tuning epoch on every layer ran at on this machine (photos from the cache,
# augmented by the loader, forward + backward + step): written by the training loop itself
# (`record_loop`), read first by the time estimate. The short "train" measurement is the
# fallback before the first fine-tune: on 2 busy cores one batch of it swung 4.7-22.9 images/s
# while the loop ran at 8.
LOOP_MODE = "loop"
CACHE_FILE = "machine_speed.json"
WARMUP_BATCHES = {"forward": 1, "train": 2}  # the first train batch also builds the optimizer state
TIMED_BATCHES = {"forward": 2, "train": 2}
MIN_TIMED_S = {"forward": 3.0, "train": 8.0}  # keep timing until this much time has passed (a busy CPU's bursts average out)
MAX_TIMED_BATCHES = 20


@dataclass(frozen=True)
class Speed:
    """One measurement: images per second of a mode, the seconds to build the model and to save
    its weights once (each epoch saves them), and the peak memory while measuring."""

    backbone: str
    image_size: int
    batch_size: int
    mode: str
    device: str
    threads: int
    images_per_s: float
    warmup_s: float  # extra seconds of the first batch of a pass (allocations), beyond a timed one
    model_s: float
    save_s: float
    peak_mem_mb: float
    measured_at: float
    load: float

    def to_dict(self) -> dict:
        return asdict(self)


def native_size(backbone: str) -> int:
    from core.backbones import get_spec

    return int(get_spec(backbone).input_size[-1])


def speed_key(backbone: str, image_size: int, batch_size: int, mode: str, device: str, threads: int) -> str:
    return f"{backbone}|{int(image_size)}|{int(batch_size)}|{mode}|{device}|{int(threads)}"


def _device_type(device: str) -> str:
    from core.device import pick_device

    return pick_device(device).type


def _threads() -> int:
    return int(torch.get_num_threads())


def _cache_path(workspace=None) -> Path:
    return subdir("cache", workspace) / CACHE_FILE


def _read_cache(workspace=None) -> dict:
    path = _cache_path(workspace)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("machine speed cache %s unreadable (%s); measuring again", path, exc)
        return {}


def _write_cache(entries: dict, workspace=None) -> None:
    path = _cache_path(workspace)
    fd, temp = tempfile.mkstemp(suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(entries, handle, indent=1)
    os.replace(temp, path)


def cached(backbone: str, image_size: int | None = None, batch_size: int = 32, mode: str = "forward",
           device: str = "auto", workspace=None) -> Speed | None:
    """The cached measurement, or None when this machine has not measured it yet."""
    from core.device import configure_cpu_threads

    configure_cpu_threads()  # the thread count training will use, part of the key
    size = int(image_size or native_size(backbone))
    key = speed_key(backbone, size, batch_size, mode, _device_type(device), _threads())
    entry = _read_cache(workspace).get(key)
    if not entry:
        return None
    try:
        return Speed(**entry)
    except TypeError as exc:  # an older layout of the file
        log.warning("machine speed entry %s has an old layout (%s); measuring again", key, exc)
        return None


def measure(backbone: str, image_size: int | None = None, batch_size: int = 32, mode: str = "forward",
            device: str = "auto", workspace=None, store: bool = True) -> Speed:
    """Time `mode` for the backbone on this machine (a few batches) and cache the result."""
    from core.freezing import apply_strategy
    from core.weights import create_backbone, weights_available_offline
    from core.device import PeakMemory, configure_cpu_threads, pick_device
    from core.device import to_device as _to_device, use_channels_last

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    configure_cpu_threads()
    dev = pick_device(device)
    size = int(image_size or native_size(backbone))
    memory = PeakMemory(dev)
    memory.reset()
    start_mb = memory.peak_mb()
    started = time.perf_counter()
    weights = "pretrained" if weights_available_offline(backbone) else "scratch"
    model = create_backbone(backbone, 2, weights=weights, workspace=workspace).to(dev)
    model_s = time.perf_counter() - started
    if use_channels_last(dev):
        model = model.to(memory_format=torch.channels_last)
    images = torch.randn(batch_size, 3, size, size)
    labels = torch.randint(0, 2, (batch_size,))
    if mode == "forward":
        model.eval()

        def step() -> None:
            with torch.inference_mode():
                x = _to_device(images, dev)
                model.get_classifier()(model.forward_head(model.forward_features(x), pre_logits=True))
    else:
        apply_strategy(model, "full")
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step() -> None:
            x, y = _to_device(images, dev), labels.to(dev)
            loss = loss_fn(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    warm = time.perf_counter()
    for _ in range(WARMUP_BATCHES[mode]):
        step()
        memory.sample()
    _sync(dev)
    warm_s = (time.perf_counter() - warm) / WARMUP_BATCHES[mode]
    timed, count = time.perf_counter(), 0
    while count < TIMED_BATCHES[mode] or (time.perf_counter() - timed < MIN_TIMED_S[mode] and count < MAX_TIMED_BATCHES):
        step()
        memory.sample()
        count += 1
    _sync(dev)
    seconds = time.perf_counter() - timed
    save_s = _save_seconds(model)
    result = Speed(backbone, size, int(batch_size), mode, dev.type, _threads(),
                   round(count * batch_size / max(seconds, 1e-9), 2), round(max(warm_s - seconds / count, 0.0), 3),
                   round(model_s, 3), round(save_s, 3),
                   _memory_mb(memory.peak_mb(), start_mb, dev), round(time.time(), 1), round(os.getloadavg()[0], 2))
    log.info("measured %s %s at %d px, batch %d on %s: %.1f images/s (load %.1f)", backbone, mode, size,
             batch_size, dev.type, result.images_per_s, result.load)
    if store:
        entries = _read_cache(workspace)
        entries[speed_key(backbone, size, batch_size, mode, dev.type, result.threads)] = result.to_dict()
        _write_cache(entries, workspace)
    return result


def record_loop(backbone: str, image_size: int, batch_size: int, device_type: str, images_per_s: float,
                peak_mem_mb: float, workspace=None) -> Speed:
    """Store the speed a real fine-tuning epoch of every layer just ran at (core/loop.py calls
    this after each such epoch but a run's first, which also decodes the photos): the figure
    the next estimate on this machine is built from. Model and save times are kept from the
    short measurement when there is one. The load stored leaves out the training's own threads
    (it was running), so that it compares with the load when the estimate is made."""
    entries = _read_cache(workspace)
    threads = _threads()
    known = entries.get(speed_key(backbone, image_size, batch_size, "train", device_type, threads)) or {}
    result = Speed(backbone, int(image_size), int(batch_size), LOOP_MODE, device_type, threads,
                   round(float(images_per_s), 2), float(known.get("warmup_s", 0.0)),
                   float(known.get("model_s", 0.0)), float(known.get("save_s", 0.0)), round(float(peak_mem_mb), 1),
                   round(time.time(), 1), round(max(os.getloadavg()[0] - threads, 0.0), 2))
    entries[speed_key(backbone, image_size, batch_size, LOOP_MODE, device_type, threads)] = result.to_dict()
    _write_cache(entries, workspace)
    log.info("recorded the fine-tuning loop's speed for %s at %d px, batch %d on %s: %.1f images/s (load %.1f)",
             backbone, image_size, batch_size, device_type, result.images_per_s, result.load)
    return result


RUNTIME_MB = 600.0  # a fresh Python with torch and timm loaded, before any model


def _memory_mb(peak_mb: float, start_mb: float, dev: torch.device) -> float:
    """What training these settings needs: the growth while measuring, plus a fresh runtime (a
    long-lived process that trained before would otherwise count its own leftovers)."""
    if dev.type == "cuda":
        return round(peak_mb, 1)
    return round(max(peak_mb - start_mb, 0.0) + min(start_mb, RUNTIME_MB), 1)


SAVE_REPEATS = 3  # weight writes timed for save_s (their median)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _save_seconds(model: torch.nn.Module) -> float:
    """Seconds to write the weights once (training writes the best and the last each epoch):
    the median of SAVE_REPEATS writes, so that one write stalled behind the disk's other work
    (seen in CI: 1.1 s where a write takes a few hundredths) does not set every epoch's figure."""
    from core.callbacks import save_weights

    times = []
    with tempfile.TemporaryDirectory() as folder:
        for k in range(SAVE_REPEATS):
            started = time.perf_counter()
            save_weights(model, Path(folder) / f"model-{k}.safetensors")
            times.append(time.perf_counter() - started)
    return float(sorted(times)[len(times) // 2])


def speed(backbone: str, image_size: int | None = None, batch_size: int = 32, mode: str = "forward",
          device: str = "auto", workspace=None) -> Speed:
    """The cached measurement, measured now when missing (a few seconds)."""
    return cached(backbone, image_size, batch_size, mode, device, workspace) or measure(
        backbone, image_size, batch_size, mode, device, workspace)


# ---- in the background, for the page ---------------------------------------------------------------
def _job_file(backbone: str, image_size: int | None, batch_size: int, workspace=None) -> Path:
    folder = subdir("cache", workspace) / "machine_speed"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{backbone}-{int(image_size or 0)}-{int(batch_size)}.json"


def measuring(backbone: str, image_size: int | None, batch_size: int, workspace=None) -> bool:
    """True while a background measurement of these settings runs."""
    from core.liveness import pid_alive as _alive  # zombies count as gone there too

    job = _job_file(backbone, image_size, batch_size, workspace)
    try:
        pid = int(json.loads(job.read_text(encoding="utf-8"))["pid"])
    except (FileNotFoundError, KeyError, ValueError, json.JSONDecodeError):
        return False
    return _alive(pid)


def start(backbone: str, image_size: int | None = None, batch_size: int = 32, workspace=None,
          batches: tuple[int, ...] = ()) -> int | None:
    """Measure both modes in a detached process (it outlives the page); None when one already runs."""
    import subprocess

    if measuring(backbone, image_size, batch_size, workspace):
        return None
    from core.workspace import workspace_dir

    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    args = [sys.executable, "-m", "core.machine_speed", backbone, "--batch-size", str(batch_size),
            "--workspace", str(workspace_dir(workspace))]
    if image_size:
        args += ["--image-size", str(image_size)]
    for extra in batches:
        args += ["--also-batch", str(extra)]
    job = _job_file(backbone, image_size, batch_size, workspace)
    with open(job.with_suffix(".log"), "ab") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=root,
                                env=env, start_new_session=True, close_fds=True)
    job.write_text(json.dumps({"pid": proc.pid, "started": time.time()}), encoding="utf-8")
    log.info("measuring %s on this machine in process %d", backbone, proc.pid)
    return proc.pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.machine_speed", description=__doc__.splitlines()[0])
    parser.add_argument("backbone")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--also-batch", type=int, action="append", default=[],
                        help="also time the forward pass at this batch size (e.g. the feature batch)")
    parser.add_argument("--workspace", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for mode in ("forward", "train"):
        result = measure(args.backbone, args.image_size, args.batch_size, mode, workspace=args.workspace)
        print(json.dumps(result.to_dict()))
    for extra in args.also_batch:
        result = measure(args.backbone, args.image_size, extra, "forward", workspace=args.workspace)
        print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
