"""The freeze recipe as data: each strategy is one entry of RECIPES, a list of stages.

fastai's `fine_tune` reads as six lines; here every strategy is a row of the table below.
`recipe(config)` turns the row into concrete `Stage`s (epochs, what is trainable, learning
rate, layer decay); the training loop (core/loop.py), the freezing (core/freezing.py) and the
cost estimate (core/cost.py) all read those stages, so adding a strategy is adding one entry.

A stage template is (trainable, epochs):
  trainable  "head"        only the new classifier learns, on cached frozen features
             "blocks"      the last `config.unfreeze_blocks` blocks, the neck and the classifier
             an int N      the last N blocks, the neck and the classifier
             "all"         every layer, with layer-wise learning-rate decay towards the input
  epochs     "head"        `config.head_epochs` (always leaving an epoch to each later stage)
             "rest"        what is left of `config.epochs`
Stages that end up with 0 epochs are dropped (e.g. two-stage with epochs=1 is head only).

This module imports nothing of Latih's, so core/config.py can take STRATEGIES from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

Trainable = Union[str, int]  # "head" | "all" | N (last N blocks)


@dataclass(frozen=True)
class Recipe:
    stages: tuple[tuple[Trainable, str], ...]
    backbone_lr: float  # the default LR of the unfrozen backbone layers (the head's is DEFAULT_HEAD_LR)


# Why these learning rates: a fresh head needs a large step, pretrained layers a small one or
# they forget what ImageNet taught them.
RECIPES: dict[str, Recipe] = {
    "feature-extraction": Recipe((("head", "rest"),), 0.0),
    "fine-tune": Recipe((("blocks", "rest"),), 1e-4),
    "full": Recipe((("all", "rest"),), 5e-5),
    "two-stage": Recipe((("head", "head"), ("all", "rest")), 1e-4),
    "gradual": Recipe((("head", "head"), (2, "head"), ("all", "rest")), 1e-4),  # gradual unfreezing
}
STRATEGIES = tuple(RECIPES)
DEFAULT_BACKBONE_LR = {name: r.backbone_lr for name, r in RECIPES.items()}


@dataclass(frozen=True)
class Stage:
    name: str  # "head" (cached features, the classifier only) | "finetune" (a loop over photos)
    epochs: int
    trainable: Trainable  # "head" | "all" | N last blocks
    lr: float  # learning rate of the unfrozen backbone layers (0 for the head stage)
    layer_decay: float | None  # LR shrinks by this per block towards the input ("all" stages only)

    @property
    def share_label(self) -> str:
        """For logs: what this stage trains."""
        return {"head": "the head", "all": "every layer"}.get(self.trainable, f"the last {self.trainable} blocks")


def stages(strategy: str, epochs: int, head_epochs: int = 3, unfreeze_blocks: int = 2,
           backbone_lr: float | None = None, layer_decay: float | None = None) -> list[Stage]:
    """The concrete stages of one strategy (see the module docstring); `layer_decay` is the
    config's (TrainConfig.layer_decay), applied to "all" stages."""
    if strategy not in RECIPES:
        raise ValueError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    entry = RECIPES[strategy]
    lr = entry.backbone_lr if backbone_lr is None else backbone_lr
    out, remaining = [], epochs
    for index, (trainable, share) in enumerate(entry.stages):
        later = len(entry.stages) - index - 1
        n = remaining if share == "rest" else min(head_epochs, max(remaining - later, 1))
        n = max(0, min(n, remaining))
        remaining -= n
        if trainable == "blocks":
            trainable = unfreeze_blocks
        if n > 0:
            out.append(Stage("head" if trainable == "head" else "finetune", n, trainable,
                             0.0 if trainable == "head" else lr, layer_decay if trainable == "all" else None))
    return out


def recipe(config: Any) -> list[Stage]:
    """The stages a TrainConfig trains, in order."""
    return stages(config.strategy, config.epochs, config.head_epochs, config.unfreeze_blocks,
                  config.unfrozen_lr, config.layer_decay)


__all__ = ["Recipe", "RECIPES", "STRATEGIES", "DEFAULT_BACKBONE_LR", "Stage", "stages", "recipe"]
