"""Prunable tensors, exact mask construction, enforcement through optimizer steps, measured sparsity."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench.errors import FieldError
from prunebench.masks import MaskSet, masks_from_scores, measure_sparsity, prunable_parameters
from prunebench.protocol import PrunableSpec


class Net(nn.Module):
    """Registration order differs from execution order on purpose."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 3)
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.mid = nn.Conv2d(4, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mid(torch.relu(self.bn(self.stem(x))))
        return self.head(x.mean((2, 3)))


ORDER = ["stem", "mid", "head"]


def test_prunable_follows_execution_order_and_first_last_flags() -> None:
    net = Net()
    assert list(prunable_parameters(net, PrunableSpec(), ORDER)) == ["stem.weight", "mid.weight", "head.weight"]
    spec = PrunableSpec(include_first=False, include_last=False)
    assert list(prunable_parameters(net, spec, ORDER)) == ["mid.weight"]
    assert list(prunable_parameters(net, PrunableSpec(layer_types=["linear"]), ORDER)) == ["head.weight"]
    assert list(prunable_parameters(net, PrunableSpec(exclude=["m*"]), ORDER)) == ["stem.weight", "head.weight"]


def test_nothing_prunable_is_a_field_error() -> None:
    with pytest.raises(FieldError) as info:
        prunable_parameters(Net(), PrunableSpec(exclude=["*"]), ORDER)
    assert info.value.loc == ("pruning", "prunable")


def test_global_masks_prune_exactly_the_lowest_scores() -> None:
    scores = {"a": torch.tensor([5.0, 1.0, 3.0]), "b": torch.tensor([[2.0, 4.0], [0.5, 6.0]])}
    masks = masks_from_scores(scores, 3 / 7, scope="global")
    assert masks["a"].tolist() == [True, False, True]
    assert masks["b"].tolist() == [[False, True], [False, True]]


def test_layerwise_masks_prune_each_layer_alike() -> None:
    scores = {"a": torch.arange(10.0), "b": torch.arange(100.0).flip(0)}
    masks = masks_from_scores(scores, 0.3, scope="layerwise")
    assert int((~masks["a"]).sum()) == 3 and not masks["a"][:3].any()
    assert int((~masks["b"]).sum()) == 30 and not masks["b"][-30:].any()


def test_ties_are_broken_by_position_so_the_count_is_exact() -> None:
    scores = {"a": torch.ones(10), "b": torch.ones(7)}
    masks = masks_from_scores(scores, 0.5, scope="global")
    assert int(sum((~m).sum() for m in masks.values())) == round(0.5 * 17)


def test_pruned_weights_stay_pruned_and_count_toward_the_target() -> None:
    scores = {"a": torch.tensor([9.0, 8.0, 1.0, 2.0])}
    current = {"a": torch.tensor([False, True, True, True])}  # the highest score is already pruned
    masks = masks_from_scores(scores, 0.5, scope="global", current=current)
    assert masks["a"].tolist() == [False, True, False, True]


def test_measure_sparsity_counts_zeros_in_weights() -> None:
    w = {"x": torch.tensor([0.0, 1.0, 0.0, 2.0]), "y": torch.zeros(4)}
    total, per_layer = measure_sparsity(w)
    assert total == pytest.approx(6 / 8)
    assert per_layer == {"x": (4, 2), "y": (4, 4)}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_masks_survive_momentum_weight_decay_and_clipping(optimizer: str) -> None:
    torch.manual_seed(0)
    net = Net()
    params = prunable_parameters(net, PrunableSpec(), ORDER)
    maskset = MaskSet(params, {k: 1 for k in params})
    opt: torch.optim.Optimizer
    if optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=1e-3)
    x, y = torch.randn(16, 1, 6, 6), torch.randint(0, 3, (16,))

    def step() -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        maskset.apply_to_grads()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        maskset.apply_to_weights()

    for _ in range(3):  # build up momentum on every weight first
        step()
    masks = masks_from_scores({k: p.abs() for k, p in params.items()}, 0.7, scope="global")
    maskset.set(masks, opt)
    for name, p in params.items():
        for value in opt.state[p].values():
            if value.shape == p.shape:
                assert not value[~masks[name]].any(), "optimizer state of pruned weights must be cleared"
    for _ in range(5):
        step()
        for name, p in params.items():
            assert not p[~masks[name]].any()
            # Without masked gradients the momentum buffer would refill: check it stays empty.
            for value in opt.state[p].values():
                if value.shape == p.shape:
                    assert not value[~masks[name]].any()
    assert measure_sparsity(params)[0] >= 0.7


def test_validate_rejects_wrong_masks() -> None:
    net = Net()
    params = prunable_parameters(net, PrunableSpec(), ORDER)
    maskset = MaskSet(params, {k: 1 for k in params})
    good = {k: torch.ones_like(p, dtype=torch.bool) for k, p in params.items()}
    with pytest.raises(ValueError, match="missing"):
        maskset.validate({k: v for k, v in good.items() if k != "mid.weight"})
    with pytest.raises(ValueError, match="shape"):
        maskset.validate({**good, "mid.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="binary"):
        maskset.validate({**good, "mid.weight": torch.full(params["mid.weight"].shape, 0.5)})
    assert maskset.validate({**good, "mid.weight": torch.ones(params["mid.weight"].shape)})["mid.weight"].dtype == (
        torch.bool
    )


def test_effective_macs_scale_with_density() -> None:
    net = Net()
    params = prunable_parameters(net, PrunableSpec(include_first=False), ORDER)
    all_macs = {"stem": 100, "mid": 1000, "head": 24}
    maskset = MaskSet(params, {"mid.weight": 1000, "head.weight": 24})
    assert maskset.effective_macs(all_macs) == 1124
    half = masks_from_scores({k: torch.rand(p.shape) for k, p in params.items()}, 0.5, scope="layerwise")
    maskset.set(half)
    assert maskset.effective_macs(all_macs) == pytest.approx(100 + 500 + 12)


def test_a_filter_pruned_whole_takes_its_channel_and_keeps_it_through_training() -> None:
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3)
    masks = MaskSet({"conv.weight": conv.weight}, {"conv.weight": 1}, {"conv.weight": [conv.bias, bn.weight, bn.bias]})
    keep = torch.ones_like(conv.weight, dtype=torch.bool)
    keep[0] = False  # filter 0 whole
    keep[1, 0, 0, 0] = False  # filter 1 loses a single weight: its channel stays
    optimizer = torch.optim.SGD([*conv.parameters(), *bn.parameters()], lr=0.1, momentum=0.9)
    masks.set({"conv.weight": keep}, optimizer)
    for _ in range(3):
        optimizer.zero_grad()
        bn(conv(torch.randn(4, 2, 5, 5))).square().mean().backward()
        masks.apply_to_grads()
        optimizer.step()
        masks.apply_to_weights()
    for p in (conv.bias, bn.weight, bn.bias):
        assert p[0] == 0 and bool((p[1:] != 0).all())
    assert conv.weight[1, 0, 0, 0] == 0 and bool((conv.weight[1].flatten()[1:] != 0).all())
    assert float(optimizer.state[bn.bias]["momentum_buffer"][0]) == 0.0


def test_without_channels_a_pruned_filter_leaves_its_batchnorm_alone() -> None:
    conv, bn = nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)
    nn.init.constant_(bn.bias, 0.5)
    masks = MaskSet({"conv.weight": conv.weight}, {"conv.weight": 1})
    keep = torch.ones_like(conv.weight, dtype=torch.bool)
    keep[0] = False
    masks.set({"conv.weight": keep})
    assert float(bn.bias.detach()[0]) == 0.5
