"""Scratch-E and Scratch-B for channels (Liu et al. 2019): the very architecture `channel_l1` prunes to, at every
kind of target, re-initialized by the engine (the scratch regime), Scratch-B asking for the epochs its FLOPs saving
buys, at most twice the recipe's."""

from __future__ import annotations

import math

import pytest
import torch
from prunebench_baselines.channel_pruning import ChannelL1
from prunebench_baselines.channel_scratch import ChannelScratchB, ChannelScratchE

from prunebench.data import DataBundle, load_data
from prunebench.methods import Target, registered_methods
from prunebench.protocol import DataSpec, TrainingSpec
from prunebench.testing import engine_for, pruning_context, seeded_model


@pytest.fixture(scope="module")
def synthetic() -> DataBundle:
    return load_data(DataSpec(name="synthetic"))


@pytest.mark.parametrize("target", [Target("sparsity", 0.5), Target("flops_reduction", 2.0)])
def test_scratch_takes_the_architecture_of_channel_l1(synthetic: DataBundle, target: Target) -> None:
    masks = {}
    for cls in (ChannelL1, ChannelScratchE, ChannelScratchB):
        model = seeded_model("cifar_resnet20", synthetic.input_shape, width=8)
        engine = engine_for(synthetic, model=model, whole_filters=True)
        sparsity = target.value if target.kind == "sparsity" else None
        masks[cls.name] = cls().prune(pruning_context(engine, sparsity, target=target))
    for name in ("channel_scratch_e", "channel_scratch_b"):
        assert masks[name].keys() == masks["channel_l1"].keys()
        assert all(torch.equal(masks[name][k], masks["channel_l1"][k]) for k in masks[name])
    assert any(not m.all() for m in masks["channel_l1"].values())


def test_their_regime_is_scratch_and_they_are_registered() -> None:
    found = registered_methods()
    for cls in (ChannelScratchE, ChannelScratchB):
        assert found[cls.name].cls is cls
        assert cls().taxonomy.retraining == "scratch" and cls().taxonomy.granularity == "filter"
        assert cls(cls.Config(scope="global")).taxonomy.scope == "global"
    assert ChannelL1().taxonomy.retraining == "fine_tune"


@pytest.mark.parametrize(("target", "cap"), [(2.0, 2.0), (4.0, 2.0), (4.0, 3.0)])
def test_scratch_b_asks_for_the_epochs_its_flops_saving_buys(synthetic: DataBundle, target: float, cap: float) -> None:
    model = seeded_model("cifar_resnet20", synthetic.input_shape, width=8)
    engine = engine_for(synthetic, model=model, whole_filters=True)
    engine.retrain_spec = TrainingSpec(epochs=10)  # the protocol's retraining
    ctx = pruning_context(engine, None, target=Target("flops_reduction", target))
    method = ChannelScratchB(ChannelScratchB.Config(max_factor=cap))
    engine.set_masks(method.prune(ctx))
    ratio = ctx.forward_flops(dense=True) / ctx.forward_flops()
    epochs = method.retrain_epochs(ctx)
    assert ratio > 1.5 and epochs == max(ctx.retrain_epochs, math.floor(ctx.retrain_epochs * min(cap, ratio) + 1e-9))
    assert epochs > ctx.retrain_epochs
    assert ChannelScratchE().retrain_epochs(ctx) is None  # Scratch-E: the protocol's epochs
