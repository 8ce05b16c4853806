"""L1-norm filter pruning: remove whole convolution filters of smallest L1 norm (structured)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from prunebench.methods import Masks, Method, MethodConfig, PruningContext, Reach, Target, Taxonomy


def filter_l1_norms(weight: Tensor) -> Tensor:
    """Sum of |w| of each output filter (dim 0) of a convolution weight."""
    return weight.detach().abs().flatten(1).sum(1)


def _fill(remaining: int, sizes: list[int], room: list[int], order: list[int]) -> tuple[list[int], int]:
    """Walk `order` (layer indices, repeated while a layer has room) and take a filter of that layer
    whenever it fits into the `remaining` weights. Returns the filters taken per layer and what is left."""
    taken = [0] * len(sizes)
    for i in order:
        if taken[i] < room[i] and sizes[i] <= remaining:
            taken[i] += 1
            remaining -= sizes[i]
    return taken, remaining


def _trade(pruned: list[int], room: list[int], sizes: list[int], remaining: int) -> tuple[list[int], int]:
    """Move the pruned count toward the target where whole filters allow it: one filter pruned in (or
    given back to) some layer, then filters of the other layers given back (or pruned), largest first,
    while they fit; the best such trade is made while it strictly narrows the gap."""

    def trade(i: int, sign: int) -> tuple[list[int], int]:
        counts, left = pruned[:], remaining - sign * sizes[i]
        counts[i] += sign
        # Complete in the other direction: -sign moves shrink a gap that the first move overshot.
        while left * sign < 0:
            able = [j for j in range(len(sizes)) if j != i and (counts[j] > 0 if sign > 0 else counts[j] < room[j])]
            fits = [j for j in able if sizes[j] <= abs(left)]
            if not fits:
                break
            j = max(fits, key=lambda j: sizes[j])
            counts[j] -= sign
            left += sign * sizes[j]
        return counts, left

    while remaining != 0:
        moves = [trade(i, 1) for i in range(len(sizes)) if pruned[i] < room[i]]
        moves += [trade(i, -1) for i in range(len(sizes)) if pruned[i] > 0]
        if not moves:
            break
        best = min(moves, key=lambda m: (abs(m[1]), sum(abs(a - b) for a, b in zip(m[0], pruned, strict=True))))
        if abs(best[1]) >= abs(remaining):
            break
        pruned, remaining = best
    return pruned, remaining


def filters_to_prune(
    norms: dict[str, Tensor], sizes: dict[str, int], target: int, *, scope: Literal["layerwise", "global"]
) -> dict[str, int]:
    """How many filters of each conv layer to remove so that the pruned weights come as close to `target`
    as whole filters allow; every layer keeps at least one filter.

    layerwise: every layer loses a common fraction f of its filters, within one filter: floor(f n_l)
    or one more (`common_fraction_counts`), so no layer becomes filler for another; the total comes as
    close to the target as that allows, and may miss it by more than the protocol's tolerance.
    global: filters are ranked across layers by their L1 norm per weight (mean |w|, so that layers
    with larger filters are not penalized for their size) and taken in that order while they fit;
    then filters are traded between layers while that brings the count closer to the target (e.g.
    one more filter of 72 weights for four fewer of 9), so the miss is at most about half the
    smallest filter size wherever the layers' sizes allow.
    """
    names = list(norms)
    counts = [int(norms[n].numel()) for n in names]
    size = [sizes[n] for n in names]
    room = [c - 1 for c in counts]
    capacity = sum(r * s for r, s in zip(room, size, strict=True))
    if target > capacity:
        raise ValueError(
            f"cannot prune {target} weights in whole filters; at most {capacity} (one filter kept per layer)"
        )
    if scope == "layerwise":
        pruned = common_fraction_counts(counts, size, room, target)
    else:
        # The ranking of every filter by L1 norm per weight, ties by position.
        per_weight = torch.cat([norms[n].double().cpu() / sizes[n] for n in names])
        owner = [i for i, c in enumerate(counts) for _ in range(c)]
        order = [owner[j] for j in torch.argsort(per_weight, stable=True).tolist()]
        pruned, remaining = _fill(target, size, room, order)
        pruned, _ = _trade(pruned, room, size, remaining)
    return dict(zip(names, pruned, strict=True))


def common_fraction_counts(counts: list[int], size: list[int], room: list[int], target: int) -> list[int]:
    """Filters to prune per layer, every layer within one filter of one common fraction f of its filters:
    floor(f n_l) or floor(f n_l) + 1 (at most room_l), the total as close to the target as such choices come.

    First the greedy choice: the largest f whose floors fit in the target, then one more filter where that brings
    the total closer, the layers furthest below f first. Then every choice the rule allows at the steps of f near
    the target (`closest_within_one_filter`); one strictly closer replaces the greedy choice (whose miss may
    exceed a tolerance that another choice meets, e.g. 0.3055 where 0.2954 was possible on the quickstart's CNN)."""

    def pruned_at(f: float) -> list[int]:
        return [min(r, math.floor(f * c + 1e-9)) for r, c in zip(room, counts, strict=True)]

    def weights(taken: list[int]) -> int:
        return sum(k * s for k, s in zip(taken, size, strict=True))

    steps = sorted({k / c for c in counts for k in range(c)})  # where some layer's floor moves up
    lo, hi = 0, len(steps) - 1
    while lo < hi:  # the largest step whose floors fit
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if weights(pruned_at(steps[mid])) <= target else (lo, mid - 1)
    f = steps[lo]
    pruned = pruned_at(f)
    remaining = target - weights(pruned)
    for i in sorted(range(len(counts)), key=lambda i: (-(f * counts[i] - pruned[i]), i)):
        within_one = pruned[i] <= math.floor(f * counts[i] + 1e-9)
        if pruned[i] < room[i] and within_one and abs(remaining - size[i]) < remaining:
            pruned[i] += 1
            remaining -= size[i]
    closer = closest_within_one_filter(counts, size, room, target, steps, lo, pruned_at, abs(remaining))
    return closer if closer is not None else pruned


def closest_within_one_filter(
    counts: list[int],
    size: list[int],
    room: list[int],
    target: int,
    steps: list[float],
    start: int,
    pruned_at: Callable[[float], list[int]],
    miss: int,
) -> list[int] | None:
    """The choice of floor(f n_l) or floor(f n_l) + 1 filters per layer (at most room_l) whose weights come closest
    to the target, if one misses it by less than `miss`; else None. The floors' weights grow with f: the steps at and
    below `steps[start]` (the largest whose floors fit) are searched down while their floors plus every optional
    filter could still come closer, each exactly (a subset sum over the layers that may take one more filter, as a
    bitset), and the next step up adds its floors alone. Among equal sums the layers furthest below f take the
    optional filters."""
    best: list[int] | None = None
    for index in range(start, -1, -1):
        f = steps[index]
        floors = pruned_at(f)
        gap = target - sum(k * s for k, s in zip(floors, size, strict=True))
        able = sorted(
            (i for i in range(len(counts)) if floors[i] < room[i]), key=lambda i: (-(f * counts[i] - floors[i]), i)
        )
        if gap - sum(size[i] for i in able) >= miss:
            break  # here and below, even every optional filter stays further from the target
        # reach[j]: bit t set when some of the first j optional layers sum to t weights.
        reach = [1]
        for i in able:
            reach.append(reach[-1] | reach[-1] << size[i])
        sums = reach[-1]
        below = (sums & ((1 << (gap + 1)) - 1)).bit_length() - 1  # the largest sum <= gap
        above_bits = sums >> gap
        above = gap + (above_bits & -above_bits).bit_length() - 1 if above_bits else None  # the smallest >= gap
        total = below if above is None or gap - below <= above - gap else above
        if abs(gap - total) < miss:
            miss, best = abs(gap - total), floors[:]
            for j in range(len(able), 0, -1):  # back from the last layer: it takes a filter only where it must
                if not reach[j - 1] >> total & 1:
                    best[able[j - 1]] += 1
                    total -= size[able[j - 1]]
    if start + 1 < len(steps):
        floors = pruned_at(steps[start + 1])
        over = sum(k * s for k, s in zip(floors, size, strict=True)) - target
        if over < miss:
            best = floors
    return best


class L1FilterPruningConfig(MethodConfig):
    scope: Literal["layerwise", "global"] = Field(
        "layerwise",
        description="layerwise: the same fraction of filters in every pruned conv layer, within one filter (Li et "
        "al.); global: filters ranked across layers by L1 norm per weight.",
    )
    layers: Literal["all", "block_first"] = Field(
        "all",
        description="Which prunable convolutions lose filters: all, or block_first, the first convolution of "
        "each residual block only (`<block>.conv1`, Li et al.'s choice for ResNets in res56prune.py, so the "
        "residual additions keep their width). The target stays a fraction of all prunable weights.",
    )


def block_first(name: str) -> bool:
    """The weight of the first convolution of a residual block: `<block>.conv1.weight` (not the stem)."""
    return name.endswith(".conv1.weight") and "." in name.removesuffix(".conv1.weight")


class L1FilterPruning(Method[L1FilterPruningConfig]):
    """Pruning filters for efficient ConvNets: remove the output filters of convolutions with the
    smallest L1 norm of their weights, so the layer's output channels (and its FLOPs) go with them.

    Li et al. 2017, "Pruning filters for efficient ConvNets" (ICLR). The paper chooses per-layer
    ratios by sensitivity analysis; here the protocol's target (a fraction of all prunable weights)
    decides how many filters go. The target is a fraction of prunable *weights* (the paper speaks of
    filters): at a target s every pruned layer loses about the fraction of its filters that makes s of
    all prunable weights zero. layerwise (default): every pruned conv layer loses the same fraction of
    its filters, within one filter (floor(f n) or one more), Li et al.'s per-layer L1 ranking, the choice
    whose weights come closest to the target; whole filters rarely sum to the target exactly, and the
    result's notes give the fraction and the achieved weight sparsity. The counts depend on the layers'
    shapes alone, so a protocol whose target they miss by more than its tolerance is refused before any
    training (`reach`). global: filters ranked across layers by L1 norm per weight, then traded between
    layers while that lands closer to the target (see `filters_to_prune`). `layers: block_first` prunes
    only the first convolution of each residual block, Li et al.'s layers for ResNets (without their
    skipped sensitive layers and per-stage ratios: docs/methods.md); by default every prunable convolution
    loses filters.

    Linear layers are never pruned (as in the paper: their output rows are the classifier's classes
    or feed it), and every conv layer keeps at least one filter; a target beyond what that leaves is
    refused before any training, with what whole filters reach. The masks zero whole filters, and because
    the method's granularity is `filter` the engine prunes each pruned filter's channel with it (its bias
    and BatchNorm entries), so the channel computes exactly zero, as in the paper's physically smaller
    network: the runner then removes those channels, the next layers' input channels with them, through
    Torch-Pruning, and counts parameters and FLOPs from the compacted model (docs/efficiency.md).
    Retraining fine-tunes the pruned network (the paper's "prune once and retrain").
    """

    name = "l1_filter"
    # 1.1: layerwise keeps every layer within one filter of the common fraction; 1.2: a pruned filter's
    # BatchNorm entries are pruned with it (the engine's rule for filter granularity), as the paper removes them;
    # 1.3: layerwise takes the choice within one filter of a common fraction that comes closest to the target.
    version = "1.3"
    citation = "Li et al. 2017 (ICLR), Pruning filters for efficient ConvNets"
    taxonomy = Taxonomy(
        when="after_training",
        granularity="filter",
        scope="layerwise",
        schedule="one_shot",
        retraining="fine_tune",
    )
    taxonomy_from_config = {"scope": "scope"}

    def reach(self, shapes: Mapping[str, tuple[int, ...]], target: Target) -> Reach | None:
        """Before any training: a target beyond what whole filters can prune is refused, and layerwise, where the
        layers' filter counts and sizes alone decide the weights pruned, says what it will prune. Global ranking
        depends on the weights' norms (and lands within about half the smallest filter): None."""
        if target.kind != "sparsity":
            return None
        convs = self._convolutions(shapes)
        wanted = self._within_reach(shapes, convs, target.value)
        if self.config.scope == "global":
            return None
        counts = [shapes[name][0] for name in convs]
        sizes = [math.prod(shapes[name][1:]) for name in convs]
        taken = common_fraction_counts(counts, sizes, [c - 1 for c in counts], wanted)
        pruned = sum(k * s for k, s in zip(taken, sizes, strict=True))
        total = sum(math.prod(shape) for shape in shapes.values())
        return Reach(
            pruned / total,
            why=f"whole filters, every pruned layer within one filter of one common fraction of its filters (scope: "
            f"layerwise), come no closer than {pruned:,} of the {total:,} prunable weights to {wanted:,}; scope: "
            "global trades filters between layers and lands within about half a filter",
        )

    def _convolutions(self, shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
        """The prunable convolutions that lose filters (`layers`), in execution order."""
        names = [n for n, shape in shapes.items() if len(shape) > 2 and (self.config.layers == "all" or block_first(n))]
        if not names:
            which = (
                "" if self.config.layers == "all" else " of the first convolutions of residual blocks (`<block>.conv1`)"
            )
            raise ValueError(f"L1 filter pruning needs prunable convolution weights{which}; the model has none")
        return names

    def _within_reach(self, shapes: Mapping[str, tuple[int, ...]], convs: list[str], sparsity: float) -> int:
        """The number of weights the target sparsity asks to prune; ValueError, saying what whole filters reach and
        which weights they cannot touch, when that is beyond them."""
        total = sum(math.prod(shape) for shape in shapes.values())
        wanted = round(sparsity * total)
        capacity = sum((shapes[n][0] - 1) * math.prod(shapes[n][1:]) for n in convs)
        if wanted <= capacity:
            return wanted
        linear = sum(math.prod(shape) for shape in shapes.values() if len(shape) <= 2)
        untouched = total - linear - sum(math.prod(shapes[n]) for n in convs)
        where = {"in linear layers (never pruned)": linear}
        where[f"in convolutions that `layers: {self.config.layers}` leaves alone"] = untouched
        parts = [(count, place) for place, count in where.items() if count]
        outside = ""
        if len(parts) == 1:
            outside = f"; {parts[0][0]:,} of them are {parts[0][1]}"
        elif parts:
            listed = " and ".join(f"{count:,} {place}" for count, place in parts)
            outside = f"; {linear + untouched:,} of them lie outside the pruned convolutions: {listed}"
        raise ValueError(
            f"whole filters reach at most {capacity / total:.4f} ({capacity:,} of the {total:,} prunable weights, one "
            f"filter kept in each pruned layer){outside}"
        )

    def prune(self, ctx: PruningContext) -> Masks:
        weights = ctx.weights()
        shapes = {name: tuple(w.shape) for name, w in weights.items()}
        convs = {name: weights[name] for name in self._convolutions(shapes)}
        try:
            target = self._within_reach(shapes, list(convs), ctx.target_sparsity)
        except ValueError as exc:
            sparsity = ctx.target_sparsity
            raise ValueError(f"target sparsity {sparsity:g} is out of reach of filter pruning here: {exc}") from None
        total = sum(w.numel() for w in weights.values())
        norms = {name: filter_l1_norms(w) for name, w in convs.items()}
        sizes = {name: w[0].numel() for name, w in convs.items()}
        counts = filters_to_prune(norms, sizes, target, scope=self.config.scope)
        masks = {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}
        for name, count in counts.items():
            # The `count` filters of smallest L1 norm, ties broken by position.
            gone = torch.argsort(norms[name], stable=True)[:count]
            masks[name][gone] = False
        pruned = sum(counts[n] * sizes[n] for n in counts)
        ctx.note("filters_pruned", {n: f"{counts[n]}/{norms[n].numel()}" for n in counts})
        ctx.note("achieved_weight_sparsity", round(pruned / total, 6))
        ctx.note("target_is", "a fraction of all prunable weights (linear layers included, never pruned)")
        return masks
