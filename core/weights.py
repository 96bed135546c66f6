"""Where a backbone's pretrained weights come from, and loading them safely.

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

import importlib
import logging
import os
import pickle
from pathlib import Path

import timm
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from timm.data import resolve_data_config
from timm.models import get_pretrained_cfg
from torch import nn

from core.backbones import ALLOW_DOWNLOAD_ENV, BUNDLED, get_spec
from core.errors import WeightsUnavailableError
from core.freezing import classifier_prefix
from core.workspace import workspace_dir
from core.i18n import Msg

logger = logging.getLogger(__name__)


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
    if name not in BUNDLED:
        return None
    module_name, class_name = BUNDLED[name]
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
    if name in BUNDLED:
        return _converted_file(name).is_file() or _bundled_file(name) is not None
    return _hub_cached_file(name) is not None


def _remap_by_position(source: dict, target: dict, name: str) -> dict:
    """The bundled files use the original EfficientNet-PyTorch names (`_conv_stem.weight`)
    but hold exactly timm's tensors in timm's order, so position is the mapping."""
    if len(source) != len(target):
        raise WeightsUnavailableError(
            Msg("err.weights.bundled_count", name=name, have=str(len(source)), want=str(len(target))))
    remapped = {}
    for (src_key, src), (dst_key, dst) in zip(source.items(), target.items()):
        if src.shape != dst.shape:
            raise WeightsUnavailableError(
                Msg("err.weights.bundled_shape", name=name, src=f"{src_key} {tuple(src.shape)}", dst=f"{dst_key} {tuple(dst.shape)}"))
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
            Msg("err.weights.offline_missing", name=name, package=BUNDLED[name][0].replace('_', '-')))
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
    if name in BUNDLED:
        model = timm.create_model(name, pretrained=False)
        model.load_state_dict(_bundled_state_dict(name, model, workspace))
        return model
    return _timm_pretrained(name)


def read_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a user's .safetensors or .pth file; anything but plain tensors is refused."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(Msg("err.weights.file_missing", path=str(path)))
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except (SafetensorError, OSError) as err:
            raise WeightsUnavailableError(
                Msg("err.weights.bad_safetensors", name=path.name, detail=_one_line(err))) from err
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsUnavailableError(
            Msg("err.weights.pickle_refused", name=path.name)) from err
    except (RuntimeError, EOFError, ValueError) as err:
        raise WeightsUnavailableError(
            Msg("err.weights.bad_torch", name=path.name, detail=_one_line(err))) from err
    return _unwrap_state_dict(loaded, path)


def _unwrap_state_dict(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    # Training scripts often save {"state_dict": ...} or {"model": ...}; DataParallel adds "module.".
    if isinstance(loaded, dict):
        for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise WeightsUnavailableError(Msg("err.weights.not_dict", name=path.name))
    return {k.removeprefix("module."): v for k, v in loaded.items()}



def load_weights_into(model: nn.Module, state: dict[str, torch.Tensor], label: str) -> None:
    """Strict on the backbone; the classifier is taken only when its shape fits."""
    target = model.state_dict()
    prefix = classifier_prefix(model)
    is_head = (lambda key: key.startswith(prefix + ".")) if prefix else (lambda key: False)
    state = {k: v for k, v in state.items() if not (is_head(k) and k in target and v.shape != target[k].shape)}
    missing = [k for k in target if k not in state and not is_head(k) and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    misshapen = [k for k in state if k in target and state[k].shape != target[k].shape]
    if missing or unexpected or misshapen:
        example = (missing + unexpected + misshapen)[0]
        raise WeightsUnavailableError(
            Msg("err.weights.does_not_fit", label=str(label), missing=str(len(missing)), unexpected=str(len(unexpected)), misshapen=str(len(misshapen)), example=str(example)))
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

