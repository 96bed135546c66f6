"""Rough training time and peak memory of a backbone + strategy choice (the model cards),
and a sensible first backbone for the machine."""
from __future__ import annotations

from core.backbones import DEFAULT_BACKBONE, BackboneSpec, get_spec
from core.recipe import STRATEGIES, stages
from core.errors import LatihError
from core.weights import weights_available_offline
from core.i18n import Msg

# Rough constants, stated so the UI text can be honest about them:
_BACKWARD_FACTOR = 2.0  # a backward pass costs about twice the forward
_FINE_TUNE_SHARE_PER_BLOCK = 0.15  # share of the compute in each unfrozen top block (guess)
_DATA_SECONDS_PER_IMAGE = 0.004  # cached decode + augmentation on one CPU core (guess)
_HEAD_IMAGES_PER_S = 20000.0  # a linear head on cached features is nearly free
_RUNTIME_MB = 400.0  # PyTorch itself, the data loader and the app


def _trained_share(trainable) -> float:
    """Share of the network's compute that gets a backward pass in a stage."""
    if trainable == "all":
        return 1.0
    if trainable == "head":
        return 0.0
    return min(1.0, _FINE_TUNE_SHARE_PER_BLOCK * trainable)


def estimate_cost(name: str, strategy: str, n_images: int, image_size: int | None = None,
                  epochs: int = 15, batch_size: int = 32, *, head_epochs: int = 3,
                  unfreeze_blocks: int = 2, val_fraction: float = 0.2,
                  speed_factor: float = 1.0) -> dict:
    """Rough training time (seconds) and peak memory (MB) for the model cards.

    n_images: all photos (train + val); speed_factor: how many times faster the machine is
    than Latih's 2-core reference box (1.0 = a modest laptop CPU; measure one batch to set
    it). The stages are the recipe's (core/recipe.py): a head stage is one forward pass over
    the photos, then near-free epochs on cached features; a fine-tuning stage costs a
    forward and a backward pass through its trainable share of the network per photo.
    """
    if strategy not in STRATEGIES:
        raise LatihError(Msg("err.strategy.unknown", strategy=repr(strategy), choices=', '.join(STRATEGIES)))
    spec = get_spec(name)
    native = spec.input_size[-1]
    pixels = ((image_size or native) / native) ** 2
    forward_s = pixels / (spec.cpu_images_per_s or 10.0) / speed_factor
    n_val = n_images * val_fraction
    n_train = n_images - n_val

    def trained_epochs_s(share: float, count: int) -> float:
        per_image = forward_s * (1 + _BACKWARD_FACTOR * share) + _DATA_SECONDS_PER_IMAGE
        return count * (n_train * per_image + n_val * forward_s)

    plan = stages(strategy, epochs, head_epochs, unfreeze_blocks)
    seconds = 0.0
    for stage in plan:
        if stage.trainable == "head":
            seconds += n_images * (forward_s + _DATA_SECONDS_PER_IMAGE) + stage.epochs * n_train / _HEAD_IMAGES_PER_S
        else:
            seconds += trained_epochs_s(_trained_share(stage.trainable), stage.epochs)
    share = max((_trained_share(stage.trainable) for stage in plan), default=0.0)
    return {"seconds": round(seconds, 1), "memory_mb": round(_memory_mb(spec, share, pixels, batch_size))}


def _memory_mb(spec: BackboneSpec, share: float, pixels: float, batch_size: int) -> float:
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

