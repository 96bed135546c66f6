import logging

import numpy as np
import pytest
import timm
import torch

from core.explain import gradcam, target_layer_for

log = logging.getLogger(__name__)

# (timm name, kwargs, expected target layer class): one per family Grad-CAM has a rule for
CASES = [
    ("resnet18", {}, "BasicBlock"),
    ("tf_efficientnet_lite0", {}, "BatchNormAct2d"),
    ("convnext_atto", {}, "ConvNeXtStage"),
    ("vit_tiny_patch16_224", {"img_size": 64}, "LayerNorm"),
]


def build(name, kwargs):
    if name == "tf_efficientnet_lite0":  # the one backbone with offline pretrained weights
        from core.weights import create_backbone
        return create_backbone(name, 3, weights="pretrained")
    return timm.create_model(name, pretrained=False, num_classes=3, **kwargs)


@pytest.mark.parametrize("name,kwargs,layer", CASES, ids=[c[0] for c in CASES])
def test_gradcam_overlay_has_photo_shape_and_cam_varies(name, kwargs, layer):
    torch.manual_seed(0)
    model = build(name, kwargs).eval()
    assert type(target_layer_for(model)).__name__ == layer
    x = torch.randn(1, 3, 64, 64)
    rgb = np.random.default_rng(0).uniform(size=(90, 70, 3)).astype(np.float32)  # not square
    # the predicted class: for another class an untrained head can give no positive evidence
    # anywhere, and Grad-CAM is then rightly all zero
    cam, overlay = gradcam(model, x, target_class=None, rgb_image=rgb)
    assert cam.shape == (90, 70) and overlay.shape == (90, 70, 3) and overlay.dtype == np.uint8
    assert 0.0 <= cam.min() and cam.max() <= 1.0 + 1e-6
    assert cam.std() > 0.01  # a constant map would explain nothing


def test_gradcam_without_rgb_uses_the_tensor():
    model = timm.create_model("resnet18", pretrained=False, num_classes=2).eval()
    cam, overlay = gradcam(model, torch.randn(1, 3, 64, 64))
    assert overlay.shape == (64, 64, 3)


def test_vit_tokens_map_to_the_right_grid_cells():
    from core.explain import reshape_transform_for
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=2, img_size=64)
    gh, gw = model.patch_embed.grid_size
    n_prefix = model.num_prefix_tokens
    tokens = torch.arange(n_prefix + gh * gw, dtype=torch.float32)[None, :, None].repeat(1, 1, 2)
    grid = reshape_transform_for(model)(tokens)
    assert grid.shape == (1, 2, gh, gw)
    # patch_embed flattens rows first: token n_prefix + r*gw + c is row r, column c
    assert grid[0, 0, 1, 2] == n_prefix + 1 * gw + 2
    assert reshape_transform_for(timm.create_model("resnet18", pretrained=False)) is None
