"""Which channel groups a structured method removes: an order of removal from the groups' scores, how far along it
the job's target takes, and the keep-masks of what it removes.

Allocation (`scope`):
- `global`: every channel group of every coupling ranked by its score, lowest first (Torch-Pruning's
  `global_pruning=True`: one threshold over all the couplings' scores, normalized per coupling);
- `layerwise`: every coupling loses the same fraction of its channels, within one channel: its k-th lowest
  channel goes at fraction k / n (n: its channels), the couplings' removals merged in that order (Torch-Pruning's
  local pruning: one pruning ratio per group).

Each coupling keeps at least one channel, and at most `max_ratio` of its channels go (Torch-Pruning's
`max_pruning_ratio`; None: no cap); a coupling whose cap is reached drops out of the order.

The masks of what goes, and a method's whole `prune` on top of these: prunebench.methods.channel_prune.

Reaching the target (`Target`): for a weight `sparsity`, the groups whose zeroed prunable weights (every prunable
slice of the removed groups, the readers' input columns included, as compaction removes them) come closest to
round(target x prunable weights): the order up to the target, then what still fits (`_closest`: whole groups rarely
sum to the target exactly, a large group at the margin is passed over for smaller ones ranked after it, as
prunebench's `l1_filter` fills its filters); for `flops_reduction` / `params_reduction`, the shortest prefix
whose compacted model's conv/linear MACs or parameters are the dense model's divided by at least the target
(counted exactly, prunebench.methods.channel_cost). A target the whole order cannot reach is a `ValueError`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal

import torch
from torch import Tensor

from prunebench.methods.channel_cost import Tally
from prunebench.methods.coupling import ChannelGroups
from prunebench.results.targets import Target

Allocation = Literal["global", "layerwise"]


def removal_limits(groups: ChannelGroups, max_ratio: float | None) -> list[int]:
    """How many channels each coupling may lose: all but one, and at most floor(max_ratio x its channels)."""
    if max_ratio is not None and not 0 < max_ratio <= 1:
        raise ValueError(f"max_ratio {max_ratio} outside (0, 1]")
    cap = 1.0 if max_ratio is None else max_ratio
    return [min(c.size - 1, math.floor(cap * c.size + 1e-9)) for c in groups.couplings]


def removal_order(
    groups: ChannelGroups, scores: list[Tensor], *, scope: Allocation, max_ratio: float | None = None
) -> list[tuple[int, int]]:
    """(coupling number, channel) in the order they are removed; ties go by coupling order, then channel."""
    if len(scores) != len(groups.couplings) or any(
        s.shape != (c.size,) for s, c in zip(scores, groups.couplings, strict=True)
    ):
        raise ValueError("scores must hold one value per channel of every coupling, in coupling order")
    limits = removal_limits(groups, max_ratio)
    if scope == "layerwise":
        ranked = [torch.argsort(s.double(), stable=True).tolist() for s in scores]
        events = sorted(
            (Fraction(k, c.size), i, k) for i, c in enumerate(groups.couplings) for k in range(1, limits[i] + 1)
        )
        return [(i, ranked[i][k - 1]) for _, i, k in events]
    flat = torch.cat([s.double().flatten() for s in scores]) if scores else torch.zeros(0)
    owners = [(i, ch) for i, c in enumerate(groups.couplings) for ch in range(c.size)]
    taken = [0] * len(scores)
    order = []
    for j in torch.argsort(flat, stable=True).tolist():
        i, ch = owners[j]
        if taken[i] < limits[i]:
            taken[i] += 1
            order.append((i, ch))
    return order


def reach_target(
    groups: ChannelGroups, order: list[tuple[int, int]], target: Target, *, scope: Allocation = "global"
) -> tuple[list[tuple[int, int]], Tally]:
    """The channel groups to remove for `target` (in `order`, made under `scope`), and the tally they leave."""
    if target.kind == "sparsity":
        return _closest(groups, order, round(target.value * sum(groups.prunable.values())), target, scope)
    everything = replay(groups, order)
    if everything.reduction(target.kind) < target.value:
        what = "FLOPs" if target.kind == "flops_reduction" else "parameter"
        raise ValueError(
            f"target {target.label()} is out of reach of channel pruning here: removing every channel group it may "
            f"({_limits_said(groups)}) gives a {what} reduction of {everything.reduction(target.kind):.3f}x"
        )
    return _closest_cost(groups, order, target, scope)


def _closest_cost(
    groups: ChannelGroups, order: list[tuple[int, int]], target: Target, scope: Allocation
) -> tuple[list[tuple[int, int]], Tally]:
    """As `_closest`, for a cost: the longest prefix of `order` whose reduction stays within the target, then the
    groups after it that still fit, or the prefix one group longer, which crosses the target, when its reduction is
    closer to it (relatively): a coupling of many channels removed in one step no longer overshoots by its size."""
    kind, tally = target.kind, Tally(groups)
    goal = groups.dense_macs if kind == "flops_reduction" else groups.dense_params
    goal /= target.value  # the cost to come down to
    k = 0
    while k < len(order) and tally.cost(kind) - tally.saved(*order[k], kind) >= goal:
        tally.remove(*order[k])
        k += 1
    if k == len(order) or tally.cost(kind) <= goal:
        return order[:k], tally
    removed, done = order[:k], set()
    for i, ch in order[k:]:
        if i in done:
            continue
        fits = tally.cost(kind) - tally.saved(i, ch, kind) >= goal
        if fits:
            tally.remove(i, ch)
            removed.append((i, ch))
        if not fits or scope == "layerwise":
            done.add(i)
    crossing = replay(groups, order[: k + 1])
    if abs(crossing.reduction(kind) / target.value - 1) < abs(tally.reduction(kind) / target.value - 1):
        return order[: k + 1], crossing
    return removed, tally


def _closest(
    groups: ChannelGroups, order: list[tuple[int, int]], goal: int, target: Target, scope: Allocation
) -> tuple[list[tuple[int, int]], Tally]:
    """The removal whose zeroed prunable weights come closest to `goal`: the longest prefix of `order` that stays
    within it, then the groups after it that still fit (a coupling whose next channel does not fit takes no more;
    layerwise, each coupling at most one more channel, so that it stays within one of the common fraction), or,
    when that lands further off, the prefix one group longer, which crosses the goal."""
    everything = replay(groups, order)
    if everything.zeros < goal:
        raise ValueError(
            f"target sparsity {target.value:g} is out of reach of channel pruning here: removing every channel "
            f"group it may ({_limits_said(groups)}) zeroes {everything.sparsity():.4f} of the prunable weights"
        )
    tally = Tally(groups)
    k = 0
    while k < len(order) and tally.zeros + tally.added_zeros(*order[k]) <= goal:
        tally.remove(*order[k])
        k += 1
    crossing = tally.zeros + tally.added_zeros(*order[k]) if k < len(order) else None
    removed, done = order[:k], set()
    for i, ch in order[k:]:
        if i in done:
            continue
        fits = tally.zeros + tally.added_zeros(i, ch) <= goal
        if fits:
            tally.remove(i, ch)
            removed.append((i, ch))
        if not fits or scope == "layerwise":
            done.add(i)
    if crossing is not None and abs(crossing - goal) < abs(tally.zeros - goal):
        return order[: k + 1], replay(groups, order[: k + 1])
    return removed, tally


def replay(groups: ChannelGroups, removed: list[tuple[int, int]]) -> Tally:
    """The tally of `groups`' model without the channel groups `removed`."""
    tally = Tally(groups)
    for i, ch in removed:
        tally.remove(i, ch)
    return tally


def _limits_said(groups: ChannelGroups) -> str:
    left_out = f"; {len(groups.excluded)} coupling(s) not removable" if groups.excluded else ""
    return f"each of {len(groups.couplings)} coupling(s) keeping a channel, within its cap{left_out}"
