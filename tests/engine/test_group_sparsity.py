"""DepGraph's group sparsity as the engine applies it (`GroupSparsity`): its gradient is what Torch-Pruning's
`GroupNormPruner.regularize` adds to every coupled weight's gradient, on the same weights and groups; the term is
the declared formula by hand; a group the model does not have fails the job with its reason; it is data."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch_pruning as tp
from prunebench_baselines.channel_base import group_sparsity
from pydantic import ValidationError
from torch import nn

from prunebench.efficiency.compact import output_layers
from prunebench.engine import Engine
from prunebench.engine.group_sparsity import GroupSparsityTerm
from prunebench.errors import JobFailed
from prunebench.masks import prunable_parameters
from prunebench.methods import GroupSlice, GroupSparsity, PruningContext, find_channel_groups, validate_regularizers
from prunebench.models import layer_macs
from prunebench.protocol import OptimizerSpec, PrunableSpec, TrainingSpec
from prunebench.testing import seeded_model

MODELS: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {
    "cifar_resnet20": ((3, 32, 32), {"width": 8}),
    "cifar_vgg11_bn": ((3, 32, 32), {"width": 0.25}),
    "cifar_mobilenetv2": ((3, 32, 32), {"width": 0.25}),  # depthwise filters: neither counts them
    "resnet18": ((3, 64, 64), {}),  # torchvision's
}


@pytest.mark.parametrize("name", list(MODELS))
def test_the_gradient_is_torch_prunings_regularize(name: str) -> None:
    shape, args = MODELS[name]
    model = seeded_model(name, shape, **args)
    groups = find_channel_groups(model, shape, prunable_parameters(model, PrunableSpec(), layer_macs(model, shape)))
    ours = copy.deepcopy(model)
    GroupSparsityTerm(ours, group_sparsity(groups, 5e-4, 4.0))().backward()  # type: ignore[union-attr]
    reference = copy.deepcopy(model)
    for p in reference.parameters():
        p.grad = torch.zeros_like(p)
    example = torch.zeros(1, *shape)
    tp.pruner.GroupNormPruner(  # reproduce/main.py --method group_sl: its importance, reg 5e-4, alpha 2 ** 4
        reference,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=2, normalizer="max"),
        reg=5e-4,
        ignored_layers=output_layers(reference, example),
    ).regularize(reference)
    touched = 0
    for (n, a), b in zip(ours.named_parameters(), reference.parameters(), strict=True):
        expected = b.grad
        got = a.grad if a.grad is not None else torch.zeros_like(a)
        touched += bool(expected.abs().max() > 0)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-12, msg=n)
    assert touched >= 10


def test_the_term_by_hand() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2), nn.Conv2d(2, 1, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([3.0, 1.0]).view(2, 1, 1, 1))
        net[1].weight.copy_(torch.tensor([4.0, 0.0]))
        net[2].weight.copy_(torch.tensor([0.0, 1.0]).view(1, 2, 1, 1))
    group = (
        GroupSlice(param="0.weight", dim=0, positions=((0,), (1,))),
        GroupSlice(param="1.weight", dim=0, positions=((0,), (1,))),
        GroupSlice(param="2.weight", dim=1, positions=((0,), (1,))),
    )
    # channel 0: 9 + 16 + 0 = 25 (norm 5, the largest: gamma 1); channel 1: 1 + 0 + 1 = 2 (the least: 2 ** alpha)
    term = GroupSparsityTerm(net, GroupSparsity(coefficient=0.1, alpha=3.0, groups=(group,)))()
    assert term is not None and term.item() == pytest.approx(0.1 / 2 * (1 * 25 + 8 * 2))
    flat = GroupSparsityTerm(net, GroupSparsity(coefficient=0.1, alpha=0.0, groups=(group,)))()
    assert flat is not None and flat.item() == pytest.approx(0.1 / 2 * 27)  # alpha 0: plain decay of the group
    off = GroupSparsity(coefficient=0.0, groups=(group,))
    assert GroupSparsityTerm(net, off)() is None


def test_a_declaration_is_data_and_checked_against_the_model() -> None:
    good = GroupSparsity(coefficient=5e-4, groups=((GroupSlice(param="0.weight", dim=0, positions=((0,), (1,))),),))
    assert validate_regularizers(json.loads(json.dumps([good.model_dump(mode="json")]))) == (good,)
    two, one = GroupSlice(param="a", dim=0, positions=((0,), (1,))), GroupSlice(param="b", dim=0, positions=((0,),))
    with pytest.raises(ValidationError, match="same number of channels"):
        GroupSparsity(coefficient=1.0, groups=((two, one),))
    with pytest.raises(ValidationError, match="dim"):
        GroupSlice(param="a", dim=2, positions=((0,),))  # type: ignore[arg-type]
    net = nn.Sequential(nn.Conv2d(1, 2, 1))
    for param, dim, positions, why in [
        ("1.weight", 0, ((0,), (1,)), "no parameter 1.weight"),
        ("0.weight", 0, ((0,), (2,)), "no such positions along dim 0"),
        ("0.bias", 1, ((0,), (1,)), "no such positions along dim 1"),
    ]:
        bad = GroupSparsity(coefficient=1.0, groups=((GroupSlice(param=param, dim=dim, positions=positions),),))
        with pytest.raises(ValueError, match=why):
            GroupSparsityTerm(net, bad)


def test_the_engine_applies_it_and_fails_the_job_on_a_group_it_lacks(
    make_engine_and_context: Callable[..., tuple[Engine, PruningContext]],
) -> None:
    spec = TrainingSpec(epochs=1, batch_size=128, optimizer=OptimizerSpec(lr=0.1))
    norms = []
    for coefficient in (0.0, 0.5):
        engine, ctx = make_engine_and_context()
        groups = find_channel_groups(ctx.model, ctx.input_shape, ctx.weights())
        ctx.train(1, spec=spec, regularizers=[group_sparsity(groups, coefficient, 4.0)])
        norms.append(sum(float(w.detach().norm()) for n, w in ctx.weights().items() if n != "classifier.weight"))
    assert norms[1] < 0.6 * norms[0]  # the coupled weights decayed (11.4 -> 4.8 in a calibration run)
    engine, _ = make_engine_and_context()
    missing = GroupSparsity(coefficient=1.0, groups=((GroupSlice(param="nope.weight", dim=0, positions=((0,),)),),))
    with pytest.raises(JobFailed, match="regularizers the engine cannot apply: group_sparsity group 0: the model"):
        engine.train_while_pruning(1, spec, [missing])
