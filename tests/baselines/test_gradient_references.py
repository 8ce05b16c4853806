"""The gradient-based channel criteria against their references, on the same seeded weights and the same scoring
batches: `channel_taylor`'s gate importance is what gates after every BatchNorm (the authors' GateLayer,
NVlabs/Taylor_pruning `layers/gate_layer.py`, criterion of method 22 in `pruning_engine.py`) give; its group variant
and `channel_hessian` equal Torch-Pruning's `GroupTaylorImportance` and `GroupHessianImportance` on its own
dependency graph's groups."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import torch_pruning as tp
from prunebench_baselines.channel_hessian import ChannelHessian
from prunebench_baselines.channel_taylor import ChannelTaylor
from torch import Tensor, nn

from prunebench.data import DataBundle, load_data
from prunebench.efficiency.compact import WRITERS, output_layers
from prunebench.methods import ChannelGroups, PruningContext, channel_groups
from prunebench.protocol import DataSpec
from prunebench.testing import engine_for, pruning_context, seeded_model

MODELS = {"cifar_resnet20": {"width": 8}, "cifar_vgg11_bn": {"width": 0.25}, "cifar_mobilenetv2": {"width": 0.25}}


@pytest.fixture(scope="module")
def synthetic() -> DataBundle:
    return load_data(DataSpec(name="synthetic"))  # 3x16x16, 10 classes


def job(data: DataBundle, name: str) -> tuple[nn.Module, PruningContext, ChannelGroups, list[tuple[Tensor, Tensor]]]:
    """A seeded model's job (three scoring batches of 32), its channel groups and the batches it scores on."""
    engine = engine_for(data, model=seeded_model(name, data.input_shape, **MODELS[name]), whole_filters=True)
    engine.scoring_batch_size = 32
    ctx = pruning_context(engine, 0.5, scoring_examples=96)
    return copy.deepcopy(engine.model), ctx, channel_groups(ctx), list(ctx.batches(96))


def tp_groups(model: nn.Module, data: DataBundle) -> dict[str, Any]:
    example = torch.zeros(1, *data.input_shape)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    names = {m: n for n, m in model.named_modules()}
    groups = graph.get_all_groups(ignored_layers=output_layers(model, example), root_module_types=WRITERS)
    return {names[g[0].dep.target.module]: g for g in groups}


@pytest.mark.parametrize("name", list(MODELS))
def test_the_gate_importance_is_what_gates_after_the_batch_norms_give(synthetic: DataBundle, name: str) -> None:
    """The authors' gates z = 1 (one per channel, tied over a coupling's BatchNorms) multiply every BatchNorm's
    output; per batch (its mean loss, batch statistics as while fine-tuning) (dL/dz)^2, averaged over batches."""
    model, ctx, groups, batches = job(synthetic, name)
    model.train()
    gates = [torch.ones(c.size, requires_grad=True) for c in groups.couplings]
    for i, c in enumerate(groups.couplings):
        for s in c.slices:
            if s.kind == "norm":
                index = torch.tensor([p[0] for p in s.positions]).argsort()  # BatchNorm entry -> channel
                gate = gates[i]
                model.get_submodule(s.module).register_forward_hook(
                    lambda _m, _a, out, g=gate, k=index: out * g[k].view(1, -1, 1, 1)
                )
    assert all(any(s.kind == "norm" for s in c.slices) for c in groups.couplings)  # a gate on every channel
    expected = [torch.zeros(c.size) for c in groups.couplings]
    for x, y in batches:
        for e, g in zip(expected, torch.autograd.grad(F.cross_entropy(model(x), y), gates), strict=True):
            e += g.pow(2) / len(batches)
    ours = ChannelTaylor().scores(ctx, groups)
    for c, score, e in zip(groups.couplings, ours, expected, strict=True):
        torch.testing.assert_close(score, e, rtol=1e-4, atol=1e-12, msg=c.root)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("multivariable", [False, True])
def test_the_group_variant_is_torch_prunings_group_taylor(
    synthetic: DataBundle, name: str, multivariable: bool
) -> None:
    """Torch-Pruning's way (its examples): evaluation mode, the batches' mean-loss gradients summed in .grad."""
    model, ctx, groups, batches = job(synthetic, name)
    model.eval().zero_grad()
    for x, y in batches:
        F.cross_entropy(model(x), y).backward()
    importance = tp.importance.GroupTaylorImportance(multivariable=multivariable)
    reference = tp_groups(model, synthetic)
    config = ChannelTaylor.Config(criterion="group", multivariable=multivariable, normalizer="mean", batch_norm="eval")
    ours = ChannelTaylor(config).scores(ctx, groups)
    for c, score in zip(groups.couplings, ours, strict=True):
        torch.testing.assert_close(score, importance(reference[c.root]), rtol=1e-4, atol=0, msg=c.root)


def fisher(model: nn.Module, batches: list[tuple[Tensor, Tensor]]) -> dict[nn.Parameter, Tensor]:
    """Each example's squared gradient, averaged: what GroupHessianImportance.accumulate_grad means to sum."""
    total = {p: torch.zeros_like(p) for p in model.parameters()}
    seen = 0
    for x, y in batches:
        for loss in F.cross_entropy(model(x), y, reduction="none"):
            for p, g in zip(total, torch.autograd.grad(loss, list(total), retain_graph=True), strict=True):
                total[p] += g.pow(2)
            seen += 1
    return {p: t / seen for p, t in total.items()}


@pytest.mark.parametrize("name", list(MODELS))
def test_the_hessian_importance_is_torch_prunings(synthetic: DataBundle, name: str) -> None:
    model, ctx, groups, batches = job(synthetic, name)
    model.eval()
    for p, h in fisher(model, batches).items():  # as GroupHessianImportance's __call__ sets .grad from its sums
        p.grad = h
    importance = tp.importance.GroupHessianImportance()
    reference = tp_groups(model, synthetic)
    ours = ChannelHessian().scores(ctx, groups)
    for c, score in zip(groups.couplings, ours, strict=True):
        torch.testing.assert_close(score, importance(reference[c.root]), rtol=1e-4, atol=0, msg=c.root)


def test_torch_prunings_accumulation_keeps_the_last_example_alone(synthetic: DataBundle) -> None:
    """Torch-Pruning 1.6's accumulate_grad tests membership by name in a dict keyed by parameter, so every call
    starts over: its Hessian is the last example's squared gradient. On one example the two agree end to end."""
    model, ctx, groups, _ = job(synthetic, "cifar_resnet20")
    model.eval()
    importance = tp.importance.GroupHessianImportance()
    (x, y), *_ = list(ctx.batches(2))
    for loss in F.cross_entropy(model(x[:2]), y[:2], reduction="none"):
        model.zero_grad()
        loss.backward(retain_graph=True)
        importance.accumulate_grad(model)
    last = {p: p.grad.pow(2) for p in model.parameters()}
    assert set(importance._counter.values()) == {1}
    assert all(torch.equal(importance._accu_grad[p], g) for p, g in last.items())
    single = ChannelHessian(ChannelHessian.Config(examples=1)).scores(ctx, groups)
    ((x1, y1),) = list(ctx.batches(1))  # the example it scored on
    model.zero_grad()
    F.cross_entropy(model(x1), y1).backward()
    importance.zero_grad()
    importance.accumulate_grad(model)
    reference = tp_groups(model, synthetic)
    for c, score in zip(groups.couplings, single, strict=True):
        torch.testing.assert_close(score, importance(reference[c.root]), rtol=1e-4, atol=0, msg=c.root)
