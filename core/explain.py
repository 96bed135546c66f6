"""Grad-CAM heat maps: which part of the photo drove the prediction.

A shortcut (a ruler, a watermark, the image border, the background of lab photos) shows up as
heat away from the lesion or leaf, which is the most useful thing a non-expert can check.
Uses pytorch_grad_cam; this module only picks the right layer per backbone family.
"""
from __future__ import annotations

import logging

import cv2
import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

log = logging.getLogger(__name__)


def _is_vit(model) -> bool:
    return hasattr(model, "patch_embed") and hasattr(model, "blocks") and hasattr(model, "num_prefix_tokens")


def _last_4d_module(model: torch.nn.Module, image_size: int = 224) -> torch.nn.Module:
    """Fallback for unknown architectures: the last module whose output is a (B, C, H, W) map."""
    seen: list[torch.nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, _i, out: seen.append(mod)
                                     if isinstance(out, torch.Tensor) and out.dim() == 4 and
                                     min(out.shape[-2:]) > 1 else None)
             for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=_device(model)))
    finally:
        for h in hooks:
            h.remove()
    if not seen:
        raise ValueError(f"no convolutional feature map found in {type(model).__name__}")
    return seen[-1]


def _device(model) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def target_layer_for(model: torch.nn.Module) -> torch.nn.Module:
    """The layer whose activations Grad-CAM weighs, chosen by backbone family."""
    name = type(model).__name__
    if _is_vit(model):
        return model.blocks[-1].norm1
    if name == "ResNet" or hasattr(model, "layer4"):
        return model.layer4[-1]
    if name == "EfficientNet" and hasattr(model, "bn2"):
        # bn2 = BN + activation after conv_head: the last spatial map, post-activation
        return model.bn2
    if name == "MobileNetV3" or (hasattr(model, "blocks") and hasattr(model, "conv_stem")):
        # MobileNetV3's conv_head runs after global pooling (1x1), so use the last block
        return model.blocks[-1]
    if hasattr(model, "stages"):  # ConvNeXt, RegNet-style, EfficientFormer, ...
        return model.stages[-1]
    log.info("no Grad-CAM rule for %s; using the last 4D feature map", name)
    return _last_4d_module(model)


def reshape_transform_for(model: torch.nn.Module):
    """ViT tokens (B, prefix + h*w, C) -> (B, C, h, w) so Grad-CAM can treat them as a map."""
    if not _is_vit(model):
        return None
    n_prefix = int(model.num_prefix_tokens)
    gh, gw = model.patch_embed.grid_size

    def transform(tokens: torch.Tensor) -> torch.Tensor:
        grid = tokens[:, n_prefix:, :].reshape(tokens.size(0), gh, gw, tokens.size(2))
        return grid.permute(0, 3, 1, 2)
    return transform


def _rgb_from_tensor(image_tensor: torch.Tensor) -> np.ndarray:
    # Without the original photo: stretch the normalised tensor back to [0, 1] for display.
    x = image_tensor[0].detach().cpu().permute(1, 2, 0).numpy().astype(np.float32)
    return (x - x.min()) / max(float(x.max() - x.min()), 1e-8)


def gradcam(model: torch.nn.Module, image_tensor: torch.Tensor, target_class: int | None = None,
            rgb_image: np.ndarray | None = None, alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(cam HxW float in [0,1], overlay HxWx3 uint8) for one preprocessed image (1,3,H,W).

    target_class None explains the predicted class. rgb_image (float in [0,1], any size) is
    the photo to draw on; the CAM is resized to it.
    """
    model.eval()
    rgb = _rgb_from_tensor(image_tensor) if rgb_image is None else np.asarray(rgb_image, np.float32)
    if rgb.max() > 1.0:
        rgb = rgb / 255.0
    targets = None if target_class is None else [ClassifierOutputTarget(int(target_class))]
    x = image_tensor.to(_device(model))
    with GradCAM(model=model, target_layers=[target_layer_for(model)],
                 reshape_transform=reshape_transform_for(model)) as cam_fn:
        cam = cam_fn(input_tensor=x, targets=targets)[0]
    cam = cv2.resize(cam.astype(np.float32), (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    overlay = show_cam_on_image(np.clip(rgb, 0, 1), cam, use_rgb=True, image_weight=1 - alpha)
    return cam, overlay
