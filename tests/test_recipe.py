"""The freeze recipe as data (core/recipe.py): one table entry per strategy, read by the loop,
the freezing and the cost estimate; "gradual unfreezing" is one entry of that table."""
from __future__ import annotations

import pytest

from core import cost, freezing
from core.callbacks import FunctionCallback
from core.cli import build_parser
from core.cli_train import config_from_args
from core.config import ConfigError, TrainConfig
from core.recipe import RECIPES, STRATEGIES, Stage, recipe, stages
from core.runs import read_metrics
from core.train import train


def test_every_strategy_is_one_table_entry():
    assert STRATEGIES == tuple(RECIPES) and "gradual" in STRATEGIES
    assert [(s.name, s.epochs, s.trainable) for s in stages("feature-extraction", 15)] == [("head", 15, "head")]
    assert [(s.name, s.epochs, s.trainable) for s in stages("fine-tune", 15, unfreeze_blocks=3)] == \
        [("finetune", 15, 3)]
    assert [(s.epochs, s.trainable, s.layer_decay) for s in stages("full", 15, layer_decay=0.8)] == [(15, "all", 0.8)]
    assert [(s.epochs, s.trainable) for s in stages("two-stage", 15, head_epochs=3)] == [(3, "head"), (12, "all")]
    assert [(s.epochs, s.trainable) for s in stages("two-stage", 1)] == [(1, "head")]  # no epoch left to unfreeze
    assert [(s.epochs, s.trainable, s.layer_decay) for s in stages("gradual", 7, head_epochs=2, layer_decay=0.8)] == \
        [(2, "head", None), (2, 2, None), (3, "all", 0.8)]
    config = TrainConfig(data_path="-", strategy="gradual", epochs=5, head_epochs=1, backbone_lr=3e-5)
    assert recipe(config) == [Stage("head", 1, "head", 0.0, None), Stage("finetune", 1, 2, 3e-5, None),
                              Stage("finetune", 3, "all", 3e-5, config.layer_decay)]


def test_the_cost_estimate_reads_the_recipe():
    def seconds(strategy, **kw):
        return cost.estimate_cost("tf_efficientnet_lite0", strategy, 500, epochs=10, **kw)["seconds"]

    assert seconds("feature-extraction") < seconds("two-stage") < seconds("full")
    # gradual trains two epochs less of the whole network than two-stage, but more than the head alone
    assert seconds("feature-extraction") < seconds("gradual") < seconds("two-stage")
    assert seconds("fine-tune", unfreeze_blocks=1) < seconds("fine-tune", unfreeze_blocks=4)


def test_settings_that_cannot_train_are_refused_with_a_plain_message():
    with pytest.raises(ConfigError, match="blocks to unfreeze"):
        TrainConfig(data_path="-", unfreeze_blocks=-1)
    with pytest.raises(ConfigError, match="head epochs"):
        TrainConfig(data_path="-", head_epochs=-2)


def test_unfreeze_blocks_and_head_epochs_are_settable_in_latih_train(tmp_path):
    args = build_parser(["train"]).parse_args(["train", str(tmp_path), "--strategy", "fine-tune",
                                               "--unfreeze-blocks", "3", "--head-epochs", "4"])
    config = config_from_args(args)
    assert (config.strategy, config.unfreeze_blocks, config.head_epochs) == ("fine-tune", 3, 4)


def test_gradual_unfreezing_trains_the_head_then_the_last_two_blocks_then_everything(make_dataset, workspace):
    data = make_dataset({"red": 10, "green": 10})
    seen = []

    def record(ctx):
        trainable = {n for n, p in ctx.model.named_parameters() if p.requires_grad}
        seen.append((ctx.stage, trainable))

    config = TrainConfig(data_path=str(data), strategy="gradual", epochs=3, head_epochs=1, image_size=64,
                         batch_size=8, lr=0.01, augment="none", val_fraction=0.25, early_stopping_patience=0)
    result = train(config, workspace=workspace, callbacks=[FunctionCallback(on_epoch_start=record)])
    assert result.status == "done"
    assert read_metrics(result.run_dir)["stage"].tolist() == ["head", "finetune", "finetune"]
    assert [stage for stage, _ in seen] == ["head", "finetune", "finetune"]

    from core.weights import create_backbone

    model = create_backbone("tf_efficientnet_lite0", 2, weights="scratch")
    blocks, neck = freezing.block_groups(model)
    head = freezing.classifier_param_names(model)
    everything = {n for n, _ in model.named_parameters()}
    last_two = {n for block in blocks[-2:] for n in block}
    assert seen[0][1] == head  # stage 1: the new head only
    assert seen[1][1] == head | set(neck) | last_two  # stage 2: the last two blocks join
    assert not seen[1][1] & {n for block in blocks[:-2] for n in block}  # the rest stays frozen
    assert seen[2][1] == everything  # stage 3: the whole network
