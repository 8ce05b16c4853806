"""The keep-masks of removed channel groups, and a channel-scoring method's whole `prune`: groups
(prunebench.methods.channels), an order from their scores and the job's target (channel_allocation), masks."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from prunebench.masks import Masks
from prunebench.methods.channel_allocation import Allocation, reach_target, removal_order
from prunebench.methods.coupling import ChannelGroups

if TYPE_CHECKING:
    from prunebench.methods.context import PruningContext


def channel_masks(groups: ChannelGroups, removed: list[tuple[int, int]], weights: dict[str, Tensor]) -> Masks:
    """Keep-masks (True = kept) of every prunable weight in `weights` with the channel groups `removed` gone: each
    removed channel's slices of prunable weights are False, everything else True."""
    masks = {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}
    for i, ch in removed:
        for s in groups.couplings[i].slices:
            if s.kind != "norm" and s.prunable and s.param in masks:
                index = torch.tensor(s.positions[ch], dtype=torch.long, device=masks[s.param].device)
                masks[s.param].index_fill_(s.dim, index, False)
    return masks


def prune_channels(
    ctx: PruningContext, groups: ChannelGroups, scores: list[Tensor], *, scope: Allocation, max_ratio: float | None
) -> Masks:
    """The keep-masks of a channel-scoring method at `ctx.target`: `groups` (prunebench.methods.channel_groups)
    removed in the order of `scores` (one per channel of every coupling) under `scope` and `max_ratio`, as far as
    the target needs. The notes say how many channels of each coupling went, the weight sparsity and the FLOPs and
    parameter reductions the compacted model will have, and which couplings were not removable."""
    order = removal_order(groups, scores, scope=scope, max_ratio=max_ratio)
    removed, tally = reach_target(groups, order, ctx.target, scope=scope)
    per = Counter(i for i, _ in removed)
    ctx.note("channels_removed", {c.root: f"{per[i]}/{c.size}" for i, c in enumerate(groups.couplings)})
    ctx.note("achieved_weight_sparsity", round(tally.sparsity(), 6))
    ctx.note("flops_reduction", round(tally.reduction("flops_reduction"), 4))
    ctx.note("params_reduction", round(tally.reduction("params_reduction"), 4))
    if groups.excluded:
        ctx.note("not_removable", groups.excluded)
    return channel_masks(groups, removed, ctx.weights())
