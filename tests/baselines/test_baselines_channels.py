"""The channel criteria as methods (`channel_l1`, `channel_l2`, `group_norm`, `random_channels`): on a real engine
whose masks act as in a filter job, every target kind is met on the physically compacted model, as the runner
counts it; each criterion removes what its norm says; configs are validated, and out of reach is one line."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from prunebench_baselines.channel_pruning import ChannelL1, ChannelL2, GroupNorm, RandomChannels
from pydantic import ValidationError

from prunebench.data import DataBundle, load_data
from prunebench.engine import Engine
from prunebench.methods import Method, PruningContext, Target, registered_methods
from prunebench.protocol import DataSpec
from prunebench.testing import engine_for, filter_job_measures, pruning_context, seeded_model

METHODS: dict[str, type[Method[Any]]] = {
    "channel_l1": ChannelL1,
    "channel_l2": ChannelL2,
    "group_norm": GroupNorm,
    "random_channels": RandomChannels,
}


@pytest.fixture(scope="module")
def synthetic() -> DataBundle:
    return load_data(DataSpec(name="synthetic"))  # 3x16x16, 10 classes


def resnet_job(data: DataBundle, target: Target) -> tuple[Engine, PruningContext]:
    """CIFAR ResNet-20 at width 8, as a filter job's engine holds it, and the pruning context at `target`."""
    engine = engine_for(data, model=seeded_model("cifar_resnet20", data.input_shape, width=8), whole_filters=True)
    sparsity = target.value if target.kind == "sparsity" else None
    return engine, pruning_context(engine, sparsity, target=target)


def test_registered_and_listed(cli) -> None:  # type: ignore[no-untyped-def]
    found = registered_methods()
    listed = cli("methods")
    assert listed.code == 0
    for name, cls in METHODS.items():
        assert found[name].cls is cls and cls.name == name and name in listed.out
        assert cls.taxonomy.granularity == "filter"
        assert cls.targets == ("sparsity", "flops_reduction", "params_reduction")


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_a_sparsity_target_is_met_in_whole_channel_groups(synthetic: DataBundle, name: str, scope: str) -> None:
    engine, ctx = resnet_job(synthetic, Target("sparsity", 0.5))
    method = METHODS[name](METHODS[name].Config(scope=scope))  # type: ignore[call-arg]
    assert method.taxonomy.scope == scope
    engine.set_masks(method.prune(ctx))
    sparsity, flops, params = filter_job_measures(engine, synthetic)
    assert abs(sparsity - 0.5) < 0.005  # ResNet-20's groups are small enough for the default tolerance
    assert engine.notes["achieved_weight_sparsity"] == pytest.approx(sparsity, abs=1e-6)
    assert engine.notes["flops_reduction"] == pytest.approx(flops, abs=1e-4)
    assert engine.notes["params_reduction"] == pytest.approx(params, abs=1e-4)


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("target", [Target("flops_reduction", 2.0), Target("params_reduction", 2.5)])
def test_a_cost_target_is_met_on_the_compacted_model(synthetic: DataBundle, name: str, target: Target) -> None:
    engine, ctx = resnet_job(synthetic, target)
    assert ctx.target_sparsity is None
    engine.set_masks(METHODS[name]().prune(ctx))
    _, flops, params = filter_job_measures(engine, synthetic)
    reached = flops if target.kind == "flops_reduction" else params
    assert abs(reached / target.value - 1) < 0.05  # within the default tolerance, either side
    assert engine.notes[target.kind] == pytest.approx(reached, abs=1e-4)


def test_l1_and_l2_remove_the_filters_of_smallest_norm(make_engine_and_context) -> None:  # type: ignore[no-untyped-def]
    for method, norm in ((ChannelL1(), 1), (ChannelL2(), 2)):
        engine, ctx = make_engine_and_context(0.4, width=0.5)  # small_cnn: one writer per coupling
        masks = method.prune(ctx)
        for name, w in ctx.weights().items():
            if name == "classifier.weight":
                continue
            gone = ~masks[name].flatten(1).any(1)
            norms = w.detach().flatten(1).norm(p=norm, dim=1)
            assert gone.any() and norms[gone].max() <= norms[~gone].min(), (method.name, name)
        assert set(engine.notes["channels_removed"]) == {"features.0.0", "features.1.0", "features.3.0"}


def test_the_criteria_choose_differently_and_random_follows_the_generator(synthetic: DataBundle) -> None:
    chosen = {}
    for label, method, seed in [
        ("l1", ChannelL1(ChannelL1.Config(scope="global")), 0),
        ("group_norm", GroupNorm(), 0),
        ("random", RandomChannels(), 0),
        ("random_again", RandomChannels(), 0),
        ("random_other_seed", RandomChannels(), 1),
    ]:
        engine = engine_for(synthetic, model=seeded_model("cifar_resnet20", synthetic.input_shape, width=8))
        chosen[label] = method.prune(pruning_context(engine, 0.5, seed=seed))
    same = [
        all(torch.equal(chosen[a][k], chosen[b][k]) for k in chosen[a])
        for a, b in [
            ("l1", "group_norm"),
            ("l1", "random"),
            ("random", "random_again"),
            ("random", "random_other_seed"),
        ]
    ]
    assert same == [False, False, True, False]


def test_the_cap_holds_and_configs_are_checked(synthetic: DataBundle) -> None:
    engine, ctx = resnet_job(synthetic, Target("sparsity", 0.3))
    GroupNorm(GroupNorm.Config(max_layer_ratio=0.4)).prune(ctx)
    for removed in engine.notes["channels_removed"].values():
        k, n = map(int, removed.split("/"))
        assert k <= math.floor(0.4 * n)
    for bad in ({"max_layer_ratio": 0}, {"max_layer_ratio": 1.5}, {"members": "weights"}, {"scope": "block"}):
        with pytest.raises(ValidationError):
            ChannelL1.Config(**bad)
    assert GroupNorm.Config().scope == "global" and ChannelL2.Config().scope == "layerwise"


def test_out_of_reach_is_one_line(synthetic: DataBundle) -> None:
    _, ctx = resnet_job(synthetic, Target("sparsity", 0.6))
    with pytest.raises(ValueError, match=r"^target sparsity 0.6 is out of reach .* within its cap") as caught:
        ChannelL2(ChannelL2.Config(max_layer_ratio=0.3)).prune(ctx)
    assert "\n" not in str(caught.value)
