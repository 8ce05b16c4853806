"""The data-driven channel criteria as methods (`channel_taylor`, `channel_hessian`, `hrank`, `network_slimming`,
`group_norm` with its group-sparsity training): on a real engine whose masks act as in a filter job, every target
kind is met on the physically compacted model; scoring and training are counted where the engine counts them;
what a criterion cannot rank is one line before any training."""

from __future__ import annotations

from typing import Any

import pytest
from prunebench_baselines.channel_hessian import ChannelHessian
from prunebench_baselines.channel_pruning import GroupNorm
from prunebench_baselines.channel_taylor import ChannelTaylor
from prunebench_baselines.hrank import HRank
from prunebench_baselines.network_slimming import NetworkSlimming

from prunebench.data import DataBundle, load_data
from prunebench.engine import Engine
from prunebench.methods import Method, PruningContext, Target, channel_groups, registered_methods, removal_order
from prunebench.protocol import BudgetSpec, DataSpec, OptimizerSpec, TrainingSpec
from prunebench.testing import engine_for, filter_job_measures, pruning_context, seeded_model

METHODS: dict[str, Method[Any]] = {
    "channel_taylor": ChannelTaylor(),
    "channel_taylor_group": ChannelTaylor(ChannelTaylor.Config(criterion="group", normalizer="mean")),
    "channel_hessian": ChannelHessian(),
    "hrank": HRank(),
    "network_slimming": NetworkSlimming(),
    "group_norm_sparse": GroupNorm(GroupNorm.Config(sparsity_epochs=None)),
}
TRAINS = {"network_slimming", "group_norm_sparse"}


@pytest.fixture(scope="module")
def synthetic() -> DataBundle:
    return load_data(DataSpec(name="synthetic"))  # 3x16x16, 10 classes, 900 training examples


def job(
    data: DataBundle, target: Target, model: str = "cifar_resnet20", **budget: float
) -> tuple[Engine, PruningContext]:
    """A filter job's engine on a seeded model (CIFAR ResNet-20 at width 8), its retraining recipe one epoch of
    SGD, and the pruning context at `target` under `budget` (one pruning epoch by default)."""
    engine = engine_for(data, model=seeded_model("cifar_resnet20", data.input_shape, width=8), whole_filters=True)
    engine.retrain_spec = TrainingSpec(epochs=1, batch_size=128, optimizer=OptimizerSpec(lr=0.05))
    sparsity = target.value if target.kind == "sparsity" else None
    spec = BudgetSpec(**{"pruning_epochs": 1.0, **budget})
    return engine, pruning_context(engine, sparsity, target=target, scoring_examples=128, budget=spec)


def test_registered_and_listed(cli) -> None:  # type: ignore[no-untyped-def]
    found, listed = registered_methods(), cli("methods")
    assert listed.code == 0
    for name in ("channel_taylor", "channel_hessian", "hrank", "network_slimming", "group_norm"):
        cls = found[name].cls
        assert cls.name == name and name in listed.out and cls.citation
        assert cls.taxonomy.granularity == "filter"
        assert cls.targets == ("sparsity", "flops_reduction", "params_reduction")
    assert found["network_slimming"].cls.taxonomy.when == "during_training"
    assert GroupNorm().taxonomy.when == "after_training" and METHODS["group_norm_sparse"].taxonomy.when == (
        "during_training"
    )


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize(
    "target", [Target("flops_reduction", 2.0), Target("params_reduction", 2.5), Target("sparsity", 0.5)]
)
def test_every_target_is_met_on_the_compacted_model(synthetic: DataBundle, name: str, target: Target) -> None:
    engine, ctx = job(synthetic, target)
    engine.set_masks(METHODS[name].prune(ctx))
    sparsity, flops, params = filter_job_measures(engine, synthetic)
    if target.kind == "sparsity":
        assert abs(sparsity - 0.5) < 0.005
    else:
        reached = flops if target.kind == "flops_reduction" else params
        assert abs(reached / target.value - 1) < 0.05  # within the default tolerance, either side
    assert engine.notes["flops_reduction"] == pytest.approx(flops, abs=1e-4)
    assert engine.notes["params_reduction"] == pytest.approx(params, abs=1e-4)
    assert engine.notes["achieved_weight_sparsity"] == pytest.approx(sparsity, abs=1e-6)
    pruning = engine.ledger.pruning
    if name in TRAINS:  # the whole stated budget, through the engine; no scoring batches
        assert pruning.epochs == 1.0 and engine.notes["sparsity_epochs"] == 1 and pruning.forward_examples == 0
    else:  # the protocol's scoring examples, backward where gradients are taken; no training
        assert pruning.epochs == 0 and pruning.forward_examples == 128
        dense = 128 * ctx.forward_flops(dense=True)
        assert pruning.forward_flops == pytest.approx(dense if name == "hrank" else 3 * dense)


def test_what_has_no_batch_norm_or_maps_is_refused_before_training(synthetic: DataBundle) -> None:
    for method, why in [
        (NetworkSlimming(), r"^network_slimming ranks channels by their BatchNorm scales, and 2 coupling\(s\)"),
        (HRank(), r"^hrank ranks the H x W feature maps of convolutions, and 2 coupling\(s\) are written by layers"),
    ]:
        engine = engine_for(synthetic, model_name="lenet_300_100", whole_filters=True)
        ctx = pruning_context(engine, None, target=Target("flops_reduction", 2.0), budget=BudgetSpec(pruning_epochs=1))
        with pytest.raises(ValueError, match=why) as caught:
            method.prune(ctx)
        assert "\n" not in str(caught.value) and engine.ledger.pruning.epochs == 0


def test_sparsity_training_needs_a_budget(synthetic: DataBundle) -> None:
    for method in (NetworkSlimming(), GroupNorm(GroupNorm.Config(sparsity_epochs=None))):
        engine, ctx = job(synthetic, Target("flops_reduction", 2.0), pruning_epochs=0.0)
        with pytest.raises(ValueError, match=r"but budget.pruning_epochs is 0: state a budget") as caught:
            method.prune(ctx)
        assert "\n" not in str(caught.value) and engine.ledger.pruning.epochs == 0
    engine, ctx = job(synthetic, Target("flops_reduction", 2.0), pruning_epochs=0.0)
    NetworkSlimming(NetworkSlimming.Config(sparsity_epochs=0)).prune(ctx)  # the scales as they are: allowed
    assert engine.ledger.pruning.epochs == 0 and engine.notes["sparsity_epochs"] == 0


def test_the_sparsity_training_moves_the_scores(synthetic: DataBundle) -> None:
    """With a penalty heavy enough, the L1 on the scales drives some of them to (near) zero: the ranking after the
    training is not the dense model's."""
    orders = []
    for config in ({"sparsity_epochs": 0}, {"penalty": 5e-2}):
        _, ctx = job(synthetic, Target("flops_reduction", 2.0))
        groups = channel_groups(ctx)
        scores = NetworkSlimming(NetworkSlimming.Config(**config)).scores(ctx, groups)
        orders.append(removal_order(groups, scores, scope="global"))
    assert orders[0] != orders[1]


def test_network_slimming_keeps_the_residual_stages_unless_told(synthetic: DataBundle) -> None:
    """The authors' ResNets prune only inside the blocks (resprune.py): by default no channel of a residual stage (a
    coupling several layers write) goes; with `residual: true` they are ranked with the others, as Torch-Pruning's
    slimming ranks them."""
    removed = {}
    for residual in (False, True):
        engine, ctx = job(synthetic, Target("flops_reduction", 2.0))
        groups = channel_groups(ctx)
        stages = {c.root for c in groups.couplings if len({s.module for s in c.slices if s.kind == "out"}) > 1}
        method = NetworkSlimming(NetworkSlimming.Config(residual=residual, sparsity_epochs=0))
        method.prune(ctx)
        cut = {root: n for root, n in engine.notes["channels_removed"].items() if not n.startswith("0/")}
        removed[residual] = (stages, cut, engine.notes.get("not_removable", {}))
    stages, cut, excluded = removed[False]
    assert stages and not stages & set(cut) and stages <= set(excluded)
    assert stages & set(removed[True][1])
