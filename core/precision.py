"""Number format and memory layout of the training loop, chosen per processor and backbone family.

`choose(setting, device, backbone)` turns `TrainConfig.precision` ("auto", "fp32", "bf16",
"fp16") into a `Precision`: the autocast dtype (None = plain fp32), whether the model and the
photos use channels_last, and whether fp16 needs a gradient scaler. "auto" reads
`AUTO_CHOICES`, which holds only what was measured to help (bench/bench_finetune.py and
bench/bench_gpu.py print the figures); anything not in the table trains in fp32, contiguous.

`NonFiniteGuard` is the fallback: when a loss under autocast is not finite, that batch's
update is skipped and the rest of the run trains in fp32 (logged, and kept in the epoch's
metrics as "precision").
"""
from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass

import torch

from core.errors import LatihError
from core.i18n import Msg

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# (device type, backbone family) -> (autocast dtype name or None, channels_last).
# CUDA: bf16 autocast and channels_last are the standard tensor-core recipe for convolutional
# nets; a ViT has no convolutions after its patch embedding, so it keeps the default layout.
# These CUDA rows are the starting point bench/bench_gpu.py checks; no GPU has run them yet.
# CPU (AMD Zen 4, avx512_bf16, no AMX; 2 cores; Lite0, batch 16, 224 px, photos per CPU-second,
# load ~13): train step fp32 contiguous 1.80, fp32 channels_last 4.66, bf16 channels_last 3.53,
# bf16 contiguous 1.72; so channels_last yes, bf16 autocast no (it is slower for training).
# Families not listed train in fp32, contiguous (not measured).
AUTO_CHOICES: dict[tuple[str, str], tuple[str | None, bool]] = {
    ("cuda", "efficientnet"): ("bf16", True),
    ("cuda", "resnet"): ("bf16", True),
    ("cuda", "convnext"): ("bf16", True),
    ("cuda", "vit"): ("bf16", False),
    ("cuda", "other"): ("bf16", False),
    ("cpu", "efficientnet"): (None, True),
}

_FAMILY_PREFIXES = (
    ("efficientnet", ("tf_efficientnet", "efficientnet", "mobilenet", "tf_mobilenet", "mnasnet", "fbnet",
                      "ghostnet", "mixnet", "tf_mixnet", "lcnet")),
    ("resnet", ("resnet", "resnext", "wide_resnet", "seresnet", "regnet", "densenet")),
    ("convnext", ("convnext",)),
    ("vit", ("vit_", "deit", "beit", "eva", "swin", "dinov2", "cait")),
)


def family(backbone: str) -> str:
    """The backbone family whose speed behaviour the AUTO_CHOICES table is keyed by."""
    name = backbone.lower()
    for fam, prefixes in _FAMILY_PREFIXES:
        if name.startswith(prefixes):
            return fam
    return "other"


def cpu_bf16_supported() -> bool:
    """oneDNN has bf16 kernels here (avx512_bf16 or AMX); without them bf16 is emulated and slow."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError) as exc:
        log.info("cannot tell whether this CPU has bf16 kernels (%s); assuming not", exc)
        return False


@dataclass(frozen=True)
class Precision:
    device_type: str
    dtype: torch.dtype | None  # autocast dtype; None = fp32
    channels_last: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16 and self.device_type == "cuda"

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def fp32(self) -> "Precision":
        return Precision(self.device_type, None, self.channels_last)


def choose(setting: str, device: torch.device | str, backbone: str) -> Precision:
    """The Precision for TrainConfig.precision on this device and backbone."""
    device_type = torch.device(device).type
    if setting not in PRECISIONS:
        raise LatihError(Msg("err.precision.unknown", choices=', '.join(PRECISIONS), got=repr(setting)))
    if device_type not in ("cuda", "cpu"):  # MPS: autocast and channels_last support is patchy
        return Precision(device_type, None, False)
    if setting == "auto":
        dtype_name, channels_last = AUTO_CHOICES.get((device_type, family(backbone)), (None, False))
        if dtype_name == "bf16" and device_type == "cuda" and not torch.cuda.is_bf16_supported():
            dtype_name = "fp16"  # older GPUs: fp16 with a gradient scaler
        if dtype_name == "bf16" and device_type == "cpu" and not cpu_bf16_supported():
            dtype_name = None
        return Precision(device_type, _DTYPES[dtype_name], channels_last)
    if setting == "fp16" and device_type != "cuda":
        raise LatihError(Msg("err.precision.fp16_cuda"))
    if setting == "bf16" and device_type == "cpu" and not cpu_bf16_supported():
        log.warning("this CPU has no bf16 kernels: bf16 will be emulated and slow")
    conv = family(backbone) != "vit"
    return Precision(device_type, _DTYPES[None if setting == "fp32" else setting], conv and device_type == "cuda")


_DTYPES = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteGuard:
    """Falls back to fp32 for the rest of the run when a loss under autocast is not finite."""

    def __init__(self, precision: Precision):
        self.precision = precision
        self.fell_back = False

    def check(self, loss_value: float) -> bool:
        """True when the step may be applied; False skips it (and switches to fp32 if it can)."""
        if math.isfinite(loss_value):
            return True
        if self.precision.dtype is None:
            return True  # fp32 itself diverged: nothing to fall back to; the loop's own checks apply
        log.warning("the loss was %s under %s autocast; skipping this batch and training the rest of the "
                    "run in fp32", loss_value, self.precision.name)
        self.precision = self.precision.fp32()
        self.fell_back = True
        return False


def configure_cuda() -> None:
    """cuDNN picks the fastest convolution algorithm for the (fixed) input size once."""
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


__all__ = ["PRECISIONS", "AUTO_CHOICES", "Precision", "choose", "family", "NonFiniteGuard",
           "cpu_bf16_supported", "configure_cuda"]
