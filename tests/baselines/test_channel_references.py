"""The channel criteria against Torch-Pruning (the reference of DepGraph, Fang et al. 2023), on the same weights
and Torch-Pruning's own dependency graph of the same model: every coupling's scores equal its importance, and the
channels the allocation removes are the ones its pruner removes (global and local pruning)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch_pruning as tp
from torch import nn

from prunebench.efficiency.compact import WRITERS, output_layers
from prunebench.masks import prunable_parameters
from prunebench.methods import ChannelGroups, find_channel_groups, magnitude_scores, removal_order
from prunebench.models import layer_macs
from prunebench.protocol import PrunableSpec
from prunebench.testing import seeded_model

CONV_LINEAR = [nn.modules.conv._ConvNd, nn.Linear]
MODELS: dict[str, tuple[str, tuple[int, int, int], dict[str, Any]]] = {
    "cifar_resnet20": ("cifar_resnet20", (3, 32, 32), {}),
    "cifar_vgg11_bn": ("cifar_vgg11_bn", (3, 32, 32), {"width": 0.25}),
    "cifar_mobilenetv2": ("cifar_mobilenetv2", (3, 32, 32), {"width": 0.25}),
    "mobilenet_v2": ("mobilenet_v2", (3, 32, 32), {"width_mult": 0.25}),  # torchvision's
    "resnet18": ("resnet18", (3, 64, 64), {}),  # torchvision's
    "resnet50": ("resnet50", (3, 64, 64), {}),  # torchvision's
}
# (our options, Torch-Pruning's importance, whether its group is cut to the writers' filters)
CRITERIA: list[tuple[dict[str, Any], Callable[[], Any], bool]] = [
    ({"p": 2, "members": "all"}, lambda: tp.importance.GroupMagnitudeImportance(p=2), False),  # group_norm
    ({"p": 1, "members": "all"}, lambda: tp.importance.MagnitudeImportance(p=1), False),
    (
        {"p": 1, "members": "coupled", "reduction": "sum", "normalizer": "none"},
        lambda: tp.importance.MagnitudeImportance(
            p=1, group_reduction="sum", normalizer=None, target_types=CONV_LINEAR
        ),
        False,
    ),
    (
        {"p": 2, "members": "coupled", "reduction": "max", "normalizer": "max"},
        lambda: tp.importance.MagnitudeImportance(
            p=2, group_reduction="max", normalizer="max", target_types=CONV_LINEAR
        ),
        False,
    ),
    (
        {"p": 1, "members": "all", "reduction": "first", "normalizer": "sum"},
        lambda: tp.importance.MagnitudeImportance(p=1, group_reduction="first", normalizer="sum"),
        False,
    ),
    ({"p": 1, "members": "filters"}, lambda: tp.importance.MagnitudeImportance(p=1), True),  # channel_l1
    ({"p": 2, "members": "filters"}, lambda: tp.importance.MagnitudeImportance(p=2), True),  # channel_l2
]


def setting(name: str) -> tuple[nn.Module, ChannelGroups, torch.Tensor, dict[str, Any]]:
    """The seeded model, our channel groups, an example input, Torch-Pruning's graph's groups by root name."""
    model_name, shape, args = MODELS[name]
    model = seeded_model(model_name, shape, **args)
    params = prunable_parameters(model, PrunableSpec(), layer_macs(model, shape).keys())
    groups = find_channel_groups(model, shape, params.keys())
    example = torch.zeros(1, *shape)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    names = {m: n for n, m in model.named_modules()}
    reference = {
        names[g[0].dep.target.module]: (graph, g)
        for g in graph.get_all_groups(ignored_layers=output_layers(model, example), root_module_types=WRITERS)
    }
    return model, groups, example, reference


def writers_only(graph: Any, group: Any) -> Any:
    """Torch-Pruning's group cut to the conv/linear layers that write its channels (their filters)."""
    cut = tp.Group()
    for item in group:
        if isinstance(item.dep.target.module, WRITERS) and graph.is_out_channel_pruning_fn(item.dep.handler):
            cut.add_dep(item.dep, item.idxs)
            cut[len(cut) - 1].root_idxs = item.root_idxs  # as the graph sets it
    return cut


MODEL_PARAMS = [pytest.param(n, marks=pytest.mark.slow) if n == "resnet50" else n for n in MODELS]


@pytest.mark.parametrize("name", MODEL_PARAMS)
def test_scores_are_torch_prunings_importance(name: str) -> None:
    model, groups, _, reference = setting(name)
    assert not groups.excluded and {c.root for c in groups.couplings} == set(reference)
    params = dict(model.named_parameters())
    for options, importance, cut in CRITERIA:
        ours = magnitude_scores(groups, params, **options)
        for coupling, score in zip(groups.couplings, ours, strict=True):
            graph, group = reference[coupling.root]
            expected = importance()(writers_only(graph, group) if cut else group)
            torch.testing.assert_close(score, expected, rtol=1e-6, atol=0, msg=f"{options} {coupling.root}")
            assert torch.equal(torch.argsort(score, stable=True), torch.argsort(expected, stable=True))


@pytest.mark.parametrize("name", ["cifar_resnet20", "cifar_mobilenetv2", "mobilenet_v2"])
@pytest.mark.parametrize("ratio", [0.3, 0.6])
def test_the_channels_removed_are_torch_prunings_pruners(name: str, ratio: float) -> None:
    model, groups, example, _ = setting(name)
    scores = magnitude_scores(groups, dict(model.named_parameters()), p=2, members="all")
    names = {m: n for n, m in model.named_modules()}
    for global_pruning in (True, False):
        pruner = tp.pruner.BasePruner(
            model,
            example,
            importance=tp.importance.GroupMagnitudeImportance(p=2),
            global_pruning=global_pruning,
            pruning_ratio=ratio,
            ignored_layers=output_layers(model, example),
        )
        expected = {names[g[0].dep.target.module]: sorted(map(int, g[0].idxs)) for g in pruner.step(interactive=True)}
        expected = {root: channels for root, channels in expected.items() if channels}
        if global_pruning:  # the first as many as its threshold removes
            order = removal_order(groups, scores, scope="global")[: sum(map(len, expected.values()))]
        else:  # each coupling's lowest, as many as its local ratio removes: size - int(size * (1 - ratio))
            left = {i: c.size - int(c.size * (1 - ratio)) for i, c in enumerate(groups.couplings)}
            order = []
            for i, channel in removal_order(groups, scores, scope="layerwise"):
                if left[i] > 0:
                    left[i] -= 1
                    order.append((i, channel))
        ours: dict[str, list[int]] = {}
        for i, channel in order:
            ours.setdefault(groups.couplings[i].root, []).append(channel)
        assert {root: sorted(channels) for root, channels in ours.items()} == expected, global_pruning


def test_depthwise_filters_count_only_when_asked() -> None:
    """Torch-Pruning 1.6 leaves a depthwise convolution's filters out of its importance; DepGraph's definition,
    every coupled parameter, counts them (`depthwise=True`): on MobileNetV2 that moves the scores."""
    model, groups, _, _ = setting("cifar_mobilenetv2")
    params = dict(model.named_parameters())
    plain = magnitude_scores(groups, params, p=2, members="all")
    counted = magnitude_scores(groups, params, p=2, members="all", depthwise=True)
    with_depthwise = [i for i, c in enumerate(groups.couplings) if any(s.depthwise for s in c.slices)]
    assert with_depthwise and all(not torch.allclose(plain[i], counted[i]) for i in with_depthwise)
    assert all(torch.equal(plain[i], counted[i]) for i in range(len(plain)) if i not in with_depthwise)
