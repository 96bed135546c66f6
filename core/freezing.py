"""What is trained: which parameters a stage of the recipe (core/recipe.py) unfreezes, frozen
BatchNorm kept in eval mode, and the optimizer's parameter groups (discriminative learning
rates by layer)."""
from __future__ import annotations

from timm.models import group_parameters
from timm.optim import param_groups_layer_decay
from torch import nn

from core.recipe import STRATEGIES, Trainable, stages
from core.errors import LatihError
from core.i18n import Msg


def classifier_prefix(model: nn.Module) -> str | None:
    classifier = model.get_classifier()
    for module_name, module in model.named_modules():
        if module is classifier:
            return module_name
    return None


def classifier_param_names(model: nn.Module) -> set[str]:
    prefix = classifier_prefix(model)
    if not prefix:
        return set()
    return {n for n, _ in model.named_parameters() if n.startswith(prefix + ".")}


def block_groups(model: nn.Module) -> tuple[list[list[str]], list[str]]:
    """(blocks, neck): parameter names per block from the input upwards (timm's coarse
    group matcher: stem, stage 1, ..., last stage), and the non-classifier parameters that
    sit with the classifier after the last block (e.g. MobileNetV3's conv_head,
    ConvNeXt's head.norm). The classifier itself is in neither."""
    classifier = classifier_param_names(model)
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
    """What the first stage of `strategy` trains (core/recipe.py): feature-extraction,
    two-stage and gradual start with the classifier only; fine-tune the last `unfreeze_blocks`
    blocks; full everything."""
    if strategy not in STRATEGIES:
        raise LatihError(Msg("err.strategy.unknown", strategy=repr(strategy), choices=', '.join(STRATEGIES)))
    set_trainable(model, stages(strategy, epochs=1, unfreeze_blocks=unfreeze_blocks)[0].trainable)


def set_trainable(model: nn.Module, trainable: Trainable) -> None:
    """Set requires_grad for one stage and put frozen BatchNorm in eval mode.

    "head": only the classifier learns; N: the last N blocks, the final norm/conv head and
    the classifier; "all": everything."""
    if trainable == "all":
        model.requires_grad_(True)
        return
    names = set(classifier_param_names(model))
    if trainable != "head":
        if not isinstance(trainable, int) or trainable < 0:
            raise LatihError(Msg("err.freezing.negative", got=repr(trainable)))
        blocks, neck = block_groups(model)
        names |= set(neck)
        for block in blocks[len(blocks) - min(trainable, len(blocks)):]:
            names |= set(block)
    for param_name, param in model.named_parameters():
        param.requires_grad_(param_name in names)
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
        raise LatihError(Msg("err.strategy.unknown", strategy=repr(strategy), choices=', '.join(STRATEGIES)))
    no_decay = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    timm_groups = param_groups_layer_decay(
        model, weight_decay=weight_decay, no_weight_decay_list=no_decay,
        layer_decay=layer_decay if layer_decay else 1.0)
    head_ids = {id(p) for n, p in model.named_parameters() if n in classifier_param_names(model)}
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

