"""Which processor trains the model, how busy it is, and how much memory an epoch took.

`pick_device("auto")` prefers CUDA, then Apple MPS, then the CPU. `device_info()` gives the
UI one small dict to show (name, memory used/total, utilisation). `PeakMemory` measures the
peak memory of one epoch: exact on CUDA (max_memory_allocated), sampled RSS on the CPU
(psutil has no per-interval peak, so the training loop samples it between batches).
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import psutil
import torch

from core.errors import LatihError
from core.i18n import Msg

log = logging.getLogger(__name__)
MB = 1024 * 1024


class DeviceUnavailableError(LatihError):
    """The processor asked for (cuda / mps) is not present on this machine."""


def pick_device(preference: str = "auto") -> torch.device:
    """Resolve "auto" | "cpu" | "cuda" | "mps" to a torch.device that really exists."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(Msg("err.device.no_cuda"))
    if preference == "mps" and not _mps_available():
        raise DeviceUnavailableError(Msg("err.device.no_mps"))
    if preference not in ("cpu", "cuda", "mps"):
        raise DeviceUnavailableError(Msg("err.device.unknown", got=repr(preference)))
    return torch.device(preference)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def cpu_threads() -> int:
    """CPUs this process may use (respects taskset / container limits, unlike cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def configure_cpu_threads() -> int:
    """Use every allowed core for intra-op work; returns the thread count set.

    Why: torch defaults to the physical-core count of the host, which in a container can be
    far more than the cores we are allowed, and oversubscription makes CPU training slower.
    """
    threads = cpu_threads()
    torch.set_num_threads(threads)
    return threads


def device_info(device: torch.device | str | None = None) -> dict:
    """A small, display-ready summary of the processor and memory."""
    device = pick_device("auto") if device is None else torch.device(device)
    if device.type == "cuda":
        return _cuda_info(device)
    vm = psutil.virtual_memory()
    return {
        "type": device.type,
        "name": _cpu_name() if device.type == "cpu" else "Apple GPU (MPS)",
        "memory_used_mb": round((vm.total - vm.available) / MB),
        "memory_total_mb": round(vm.total / MB),
        "utilisation_pct": psutil.cpu_percent(interval=None),
        "threads": torch.get_num_threads(),
        "process_rss_mb": round(psutil.Process().memory_info().rss / MB),
    }


def _cuda_info(device: torch.device) -> dict:
    index = device.index if device.index is not None else torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(index)
    try:
        utilisation = torch.cuda.utilization(index)
    except Exception as exc:  # needs pynvml; not worth failing the UI over
        log.debug("GPU utilisation unavailable: %s", exc)
        utilisation = None
    return {
        "type": "cuda",
        "name": torch.cuda.get_device_name(index),
        "memory_used_mb": round((total - free) / MB),
        "memory_total_mb": round(total / MB),
        "utilisation_pct": utilisation,
        "threads": torch.get_num_threads(),
        "process_rss_mb": round(psutil.Process().memory_info().rss / MB),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: fall through to the generic name
    import platform

    return platform.processor() or "CPU"


class PeakMemory:
    """Peak memory (MB) over an interval such as one epoch."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._process = psutil.Process()
        self._peak_rss = 0

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._peak_rss = self._process.memory_info().rss

    def sample(self) -> None:
        """Call between batches on CPU/MPS; a no-op cost on CUDA where the driver tracks it."""
        if self.device.type != "cuda":
            self._peak_rss = max(self._peak_rss, self._process.memory_info().rss)

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return round(torch.cuda.max_memory_allocated(self.device) / MB, 1)
        self.sample()
        return round(self._peak_rss / MB, 1)


__all__ = ["pick_device", "device_info", "PeakMemory", "configure_cpu_threads", "cpu_threads",
           "DeviceUnavailableError"]


def use_channels_last(device: torch.device) -> bool:
    """channels_last on CUDA (tensor cores) and on the CPU, where oneDNN runs these depthwise
    nets' inference ~1.7x faster in that layout (EfficientNet-Lite0 on the 2-core build box;
    training speed is about equal). Not on MPS, where support is patchy."""
    return device.type in ("cuda", "cpu")


def to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    if use_channels_last(device):
        return images.to(device, non_blocking=device.type == "cuda", memory_format=torch.channels_last)
    return images.to(device)


@dataclass
class Autocast:
    device_type: str
    dtype: torch.dtype | None

    def context(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def autocast_for(device: torch.device) -> Autocast:
    """Mixed precision on CUDA only (bf16 where supported); CPU autocast is slower for these nets."""
    if device.type != "cuda":
        return Autocast(device.type, None)
    return Autocast("cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
