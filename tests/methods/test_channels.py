"""Coupled channel groups (prunebench.methods.channels and its siblings): what is grouped and what is not, and
that removing groups never breaks the model: the masks, applied as the engine applies them, compact physically to
the very parameters, MACs and zeros the allocation counted, with the same outputs; targets are reached as closely
as whole groups allow, and one out of reach is one line."""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable

import pytest
import torch
from torch import nn

from prunebench.efficiency import Compacted, compact
from prunebench.masks import MaskSet, prunable_parameters
from prunebench.methods import (
    ChannelGroups,
    Tally,
    Target,
    channel_masks,
    find_channel_groups,
    magnitude_scores,
    random_scores,
    reach_target,
    removal_order,
    replay,
)
from prunebench.models import channel_parameters, layer_macs
from prunebench.protocol import PrunableSpec
from prunebench.run.measurement.measure import scattered_zeros
from prunebench.testing import seeded_model

SHAPE = (3, 16, 16)


class Branches(nn.Module):
    """Two convolutions concatenated, a strided convolution, flattened into a linear layer, the classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.bn_a = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.b = nn.Conv2d(3, 3, 3, padding=1)
        self.c = nn.Conv2d(7, 5, 3, stride=8, bias=False)  # 16x16 -> 2x2
        self.fc1, self.fc2 = nn.Linear(5 * 2 * 2, 6), nn.Linear(6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([torch.relu(self.bn_a(self.a(x))), torch.relu(self.b(x))], 1)
        return self.fc2(torch.relu(self.fc1(torch.relu(self.c(y)).flatten(1))))


class PreActivation(nn.Module):
    """A residual sum followed by a BatchNorm (pre-activation: the sum's channels pass the BatchNorm's shift on, so
    they are not removable exactly), then a plain and a grouped convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.conv = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.bn, self.mid = nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, padding=1)
        self.grouped, self.fc = nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(self.bn(x + self.conv(x)))
        return self.fc(self.grouped(torch.relu(self.mid(x))).mean((2, 3)))


Shape = tuple[int, int, int]


def groups_of(
    model: nn.Module, prunable: PrunableSpec | None = None, shape: Shape = SHAPE
) -> tuple[ChannelGroups, dict[str, nn.Parameter]]:
    params = prunable_parameters(model, prunable or PrunableSpec(), layer_macs(model, shape).keys())
    return find_channel_groups(model, shape, params.keys()), params


def applied(model: nn.Module, masks: dict[str, torch.Tensor], prunable: PrunableSpec, shape: Shape) -> nn.Module:
    """A copy of `model` with `masks` applied as the engine applies a filter method's (MaskSet: the weights, and
    the bias and BatchNorm entries of every filter pruned whole)."""
    model = copy.deepcopy(model)
    macs = layer_macs(model, shape)
    params = prunable_parameters(model, prunable, macs.keys())
    by_name = dict(model.named_parameters())
    channels = {f"{layer}.weight": [by_name[n] for n in ps] for layer, ps in channel_parameters(model, shape).items()}
    MaskSet(params, {n: macs[n.removesuffix(".weight")] for n in params}, channels).set(masks)
    return model


def compacted(
    model: nn.Module, masks: dict[str, torch.Tensor], prunable: PrunableSpec | None = None, shape: Shape = SHAPE
) -> Compacted:
    """The model with `masks` applied, compacted (which checks its outputs); every weight the masks prune lies
    where compaction removes it (a whole filter, or a removed channel's input slice), as the runner checks."""
    pruned = applied(model, masks, prunable or PrunableSpec(), shape)
    torch.manual_seed(1)
    out = compact(pruned, torch.randn(8, *shape))
    pattern = {name: mask.float() for name, mask in masks.items()}  # zero where pruned
    assert scattered_zeros(pattern, out.inputs_removed) == {}, "a pruned weight the compaction does not remove"
    return out


# ---- what is grouped -------------------------------------------------------------------------------------------
def test_a_residual_stage_is_one_coupling_and_the_classifier_none() -> None:
    groups, _ = groups_of(seeded_model("cifar_resnet20", SHAPE, width=8))
    roots = [c.root for c in groups.couplings]
    assert len(roots) == 3 + 9 and len(set(roots)) == len(roots) and not groups.excluded  # 3 stages, 9 blocks
    assert not any(s.module == "fc" and s.kind == "out" for c in groups.couplings for s in c.slices)
    stage = next(c for c in groups.couplings if any(s.module == "conv" for s in c.slices))
    writers = {s.module for s in stage.slices if s.kind == "out"}
    assert writers == {"conv", "blocks.0.conv2", "blocks.1.conv2", "blocks.2.conv2"}
    readers = {s.module for s in stage.slices if s.kind == "in"}
    assert readers == {"blocks.0.conv1", "blocks.1.conv1", "blocks.2.conv1", "blocks.3.conv1", "blocks.3.shortcut.0"}
    assert {s.module for s in stage.slices if s.kind == "norm"} == {
        "bn",
        "blocks.0.bn2",
        "blocks.1.bn2",
        "blocks.2.bn2",
    }
    follows = {s.module: s.follows for s in stage.slices if s.kind == "norm"}  # each BatchNorm's own writer
    assert follows == {"bn": "conv", **{f"blocks.{i}.bn2": f"blocks.{i}.conv2" for i in range(3)}}
    assert all(s.follows is None for s in stage.slices if s.kind != "norm")
    assert stage.size == 8


def test_concatenation_and_flattening_map_each_channel_to_its_slices() -> None:
    groups, _ = groups_of(Branches().eval())
    by_root = {c.root: c for c in groups.couplings}
    assert set(by_root) == {"a", "b", "c", "fc1"}  # fc2 is the output layer
    c_in = {c.root: next(s for s in c.slices if s.module == "c") for c in groups.couplings if c.root in "ab"}
    assert c_in["a"].positions == ((0,), (1,), (2,), (3,)) and c_in["b"].positions == ((4,), (5,), (6,))
    fc1_in = next(s for s in by_root["c"].slices if s.module == "fc1")
    assert fc1_in.kind == "in" and fc1_in.positions[1] == (4, 5, 6, 7)  # a channel is 2x2 flattened features


def test_what_cannot_be_removed_exactly_is_left_out_with_the_reason() -> None:
    groups, _ = groups_of(PreActivation().eval())
    assert groups.excluded == {
        "stem": "the BatchNorm bn does not follow a layer that writes it directly",
        "mid": "grouped is a grouped or transposed convolution",
        "grouped": "grouped is a grouped or transposed convolution",
    }
    assert not groups.couplings


def test_a_batchnorm_without_a_scale_to_zero_keeps_its_channels() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, affine=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)
    ).eval()
    groups, _ = groups_of(model)
    assert groups.excluded == {"0": "1 shifts the channels by its running mean and has no scale to zero"}


def test_a_writer_the_protocol_keeps_dense_excludes_its_channels_a_reader_does_not() -> None:
    model = Branches().eval()
    spec = PrunableSpec(include_first=False, include_last=False)  # `a` writes, fc2 only reads
    groups, params = groups_of(model, spec)
    assert groups.excluded == {"a": "written by a.weight, which is not prunable"}
    fc1 = next(c for c in groups.couplings if c.root == "fc1")
    reader = next(s for s in fc1.slices if s.module == "fc2")
    assert reader.kind == "in" and not reader.prunable
    removed = [(groups.couplings.index(fc1), 2)]
    masks = channel_masks(groups, removed, {n: p.detach() for n, p in params.items()})
    assert "fc2.weight" not in masks and not masks["fc1.weight"][2].any() and masks["fc1.weight"].sum() == 5 * 20
    out = compacted(model, masks, spec)
    assert out.model.fc2.in_features == 5  # removed all the same: the channel is zero
    tally = replay(groups, removed)
    assert (tally.macs, tally.params, tally.zeros) == (out.macs, out.params, 20)


# ---- counts and compaction -------------------------------------------------------------------------------------
MODELS: dict[str, tuple[Callable[[], nn.Module], Shape]] = {
    "resnet20": (lambda: seeded_model("cifar_resnet20", SHAPE, width=8), SHAPE),
    "vgg11": (lambda: seeded_model("cifar_vgg11_bn", (3, 32, 32), width=0.125), (3, 32, 32)),  # five poolings
    "mobilenetv2": (lambda: seeded_model("cifar_mobilenetv2", SHAPE, width=0.25), SHAPE),
    "wrn": (lambda: seeded_model("cifar_wrn", SHAPE, depth=10, widen=2), SHAPE),  # pre-activation
    "branches": (lambda: Branches().eval(), SHAPE),
    "resnet50": (lambda: seeded_model("resnet50", (3, 32, 32)), (3, 32, 32)),  # torchvision's
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "resnet50" else n for n in MODELS])
@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_removed_groups_compact_to_the_counts_the_allocation_reported(name: str, scope: str) -> None:
    build, shape = MODELS[name]
    model = build()
    groups, params = groups_of(model, shape=shape)
    scores = magnitude_scores(groups, dict(model.named_parameters()), p=2, members="all")
    order = removal_order(groups, scores, scope=scope)  # type: ignore[arg-type]
    weights = {n: p.detach() for n, p in params.items()}
    for target in (Target("sparsity", 0.4), Target("flops_reduction", 2.0), Target("params_reduction", 3.0)):
        removed, tally = reach_target(groups, order, target, scope=scope)  # type: ignore[arg-type]
        masks = channel_masks(groups, removed, weights)
        out = compacted(model, masks, shape=shape)
        assert (out.macs, out.params) == (tally.macs, tally.params), target
        assert sum(int((~m).sum()) for m in masks.values()) == tally.zeros
        assert out.channels_removed == len(removed)


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_a_sparsity_target_is_met_as_closely_as_whole_groups_allow(scope: str) -> None:
    model = seeded_model("cifar_resnet20", SHAPE, width=8)
    groups, _ = groups_of(model)
    total = sum(groups.prunable.values())
    scores = magnitude_scores(groups, dict(model.named_parameters()), p=1, members="filters")
    order = removal_order(groups, scores, scope=scope)  # type: ignore[arg-type]
    prefixes = [replay(groups, order[:k]).zeros for k in range(len(order) + 1)]
    for sparsity in (0.2, 0.5, 0.8):
        removed, tally = reach_target(groups, order, Target("sparsity", sparsity), scope=scope)  # type: ignore[arg-type]
        goal = round(sparsity * total)
        assert tally.zeros == replay(groups, removed).zeros
        within = max(k for k, z in enumerate(prefixes) if z <= goal)
        # Never further off than the best prefix of the order; the groups passed over at the margin are too
        # large, and a coupling's channels still go lowest score first.
        assert abs(tally.zeros - goal) <= min(abs(z - goal) for z in prefixes)
        assert removed[:within] == order[:within] or removed == order[: within + 1]
        for i in {i for i, _ in removed}:
            mine = [ch for j, ch in removed if j == i]
            assert mine == [ch for j, ch in order if j == i][: len(mine)]
        taken = Counter(i for i, _ in removed)
        if scope == "layerwise":  # every coupling within one channel of one fraction
            sizes = [c.size for c in groups.couplings]
            assert max((taken[i] - 1) / n for i, n in enumerate(sizes)) <= min(
                (taken[i] + 1) / n for i, n in enumerate(sizes)
            )
        assert abs(tally.sparsity() - sparsity) < (0.001 if scope == "global" else 0.01)


def test_a_cost_target_lands_closest_to_it_that_the_order_allows() -> None:
    """The longest prefix of the order that stays within the target, then the later groups that still fit; or
    the shortest prefix that crosses it, when that lands closer: never further than the crossing prefix alone."""
    model = seeded_model("cifar_mobilenetv2", SHAPE, width=0.25)
    groups, _ = groups_of(model)
    order = removal_order(groups, random_scores(groups, torch.Generator().manual_seed(0)), scope="global")
    for kind, value in (("flops_reduction", 1.7), ("params_reduction", 2.5), ("flops_reduction", 3.0)):
        removed, tally = reach_target(groups, order, Target(kind, value))  # type: ignore[arg-type]
        assert tally.reduction(kind) == replay(groups, removed).reduction(kind)
        k = next(k for k in range(len(order) + 1) if replay(groups, order[:k]).reduction(kind) >= value)
        crossing = replay(groups, order[:k]).reduction(kind)
        below = replay(groups, order[: k - 1]).reduction(kind)
        assert removed[: k - 1] == order[: k - 1] and below < value <= crossing
        assert abs(tally.reduction(kind) / value - 1) <= abs(crossing / value - 1) + 1e-12
        if removed != order[:k]:  # the fill: within the target, and closer than the crossing prefix
            assert below <= tally.reduction(kind) <= value


def test_layerwise_keeps_couplings_within_one_channel_of_one_fraction_and_the_cap_holds() -> None:
    model = seeded_model("cifar_resnet20", SHAPE, width=8)
    groups, _ = groups_of(model)
    scores = magnitude_scores(groups, dict(model.named_parameters()), p=1, members="filters")
    sizes = [c.size for c in groups.couplings]
    order = removal_order(groups, scores, scope="layerwise")
    for k in (10, 40, 70):
        taken = Counter(i for i, _ in order[:k])
        fractions = [(taken[i] - 1) / n for i, n in enumerate(sizes)], [(taken[i] + 1) / n for i, n in enumerate(sizes)]
        assert max(fractions[0]) <= min(fractions[1])
    full = Counter(i for i, _ in order)
    assert all(full[i] == n - 1 for i, n in enumerate(sizes)), "every coupling keeps exactly its last channel"
    for scope in ("global", "layerwise"):
        capped = Counter(i for i, _ in removal_order(groups, scores, scope=scope, max_ratio=0.3))  # type: ignore[arg-type]
        assert all(capped[i] == math.floor(0.3 * n) for i, n in enumerate(sizes))
    # Within a coupling, the lowest scores go first.
    first = [ch for i, ch in order if i == 0]
    assert first == torch.argsort(scores[0], stable=True).tolist()[: len(first)]


@pytest.mark.parametrize(
    ("target", "cap", "said"),
    [
        (
            Target("sparsity", 0.999),
            None,
            r"target sparsity 0.999 is out of reach of channel pruning here: .* zeroes 0\.",
        ),
        (Target("flops_reduction", 1000.0), None, r"target FLOPs 1000x is out of reach .* FLOPs reduction of \d"),
        (Target("params_reduction", 2.0), 0.2, r"target params 2x is out of reach .* parameter reduction of 1\."),
        (Target("sparsity", 0.5), 0.2, r"within its cap"),
    ],
)
def test_an_unreachable_target_or_cap_is_one_line(target: Target, cap: float | None, said: str) -> None:
    model = seeded_model("cifar_resnet20", SHAPE, width=8)
    groups, _ = groups_of(model)
    order = removal_order(groups, random_scores(groups, torch.Generator()), scope="global", max_ratio=cap)
    with pytest.raises(ValueError, match=said) as caught:
        reach_target(groups, order, target)
    assert "\n" not in str(caught.value)


def test_a_tally_refuses_a_group_twice_and_counts_what_a_hand_count_gives() -> None:
    groups, _ = groups_of(Branches().eval())
    tally = Tally(groups)
    b = next(i for i, c in enumerate(groups.couplings) if c.root == "b")
    tally.remove(b, 0)
    # b's filter 0 (27 weights, a bias) and c's input channel 0 (5 x 9 weights): 72 zeros, 73 parameters;
    # MACs: b's 16x16 outputs x 27 and c's 5 x 2x2 outputs x 9.
    assert tally.zeros == 27 + 45 and groups.dense_params - tally.params == 73
    assert groups.dense_macs - tally.macs == 16 * 16 * 27 + 5 * 4 * 9
    with pytest.raises(ValueError, match="removed already"):
        tally.remove(b, 0)
