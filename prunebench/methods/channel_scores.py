"""Scores of channel groups (prunebench.methods.channels): one score per channel of every coupling, lowest
removed first. Magnitude scores follow Torch-Pruning's `GroupMagnitudeImportance` (torch_pruning/pruner/
importance.py, v1.6), the reference of DepGraph (Fang et al. 2023, CVPR), step by step:

1. every member slice of the group gives each channel the sum of |w|^p over its elements (so p = 2 gives the
   squared L2 norm, as Torch-Pruning computes it; a reader's several columns after a flattening add up);
2. the members' values are reduced to one per channel (`reduction`): `mean` (Torch-Pruning's default: the sum
   over members divided by their number), `sum`, `max`, or `first` (the first member, the root layer's filter);
3. the coupling's scores are normalized over its channels (`normalizer`): divided by their `mean` (Torch-
   Pruning's default), `max` or `sum`, or left as they are (`none`). Normalizing makes the couplings' scores
   comparable in a global ranking; it changes nothing within one coupling.

`members` says which slices count: `filters`, the filters that write the channel (Li et al. 2017's criterion, the
norm of the filter); `coupled`, every conv/linear slice, the readers' input columns too (Torch-Pruning's
`MagnitudeImportance(target_types=[conv, linear])`); `all`, those and the BatchNorm scales (Torch-Pruning's
default `target_types`, DepGraph's group norm). Biases are left out, as Torch-Pruning's default `bias=False`.
A depthwise convolution's filters count only with `depthwise=True`: Torch-Pruning 1.6 leaves them out (its
importance recognizes only the plain convolution's and linear layer's pruning functions, not the depthwise
convolution's), so the default follows it; DepGraph's definition, every coupled parameter, counts them.

`coupling_sums` does steps 1 to 3 for any elementwise value of the parameters, not only |w|^p: a data-driven
criterion (Taylor's |w * g|, the Hessian diagonal's w^2 * h) passes its own, and `per_channel` adds up values
that are already one per index (a writer's feature maps).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor

from prunebench.methods.coupling import ChannelGroups, Coupling, Slice

Members = Literal["filters", "coupled", "all"]
Reduction = Literal["mean", "sum", "max", "first"]
Normalizer = Literal["mean", "max", "sum", "none"]
KINDS: dict[Members, tuple[str, ...]] = {"filters": ("out",), "coupled": ("out", "in"), "all": ("out", "in", "norm")}


def slice_magnitudes(member: Slice, weight: Tensor, p: float, size: int) -> Tensor:
    """Sum of |w|^p over the member's elements of each of the coupling's `size` channels (float32, as Torch-Pruning:
    per row or column first, then added up per channel)."""
    return slice_sums(member, weight.detach().float().abs().pow(p), size)


def slice_sums(member: Slice, values: Tensor, size: int) -> Tensor:
    """Sum over the member's elements of `values` (one per element of its parameter: |w|^p, |w * g|, w^2 * h, ...)
    for each of the coupling's `size` channels: per row (`out`, `norm`) or column (`in`) first, then per channel."""
    return per_channel(member, index_sums(member, values), size)


def index_sums(member: Slice, values: Tensor) -> Tensor:
    """`values` (one per element of the member's parameter) summed per index along its dim: per filter (`out`),
    per input column (`in`), as they are for a BatchNorm's entries (`norm`)."""
    if member.kind == "norm":
        return values
    if member.kind == "out":
        return values.flatten(1).sum(1)
    return values.transpose(0, 1).flatten(1).sum(1)


def per_channel(member: Slice, per_index: Tensor, size: int) -> Tensor:
    """`per_index` (one value per index along the member's dim: a filter, a column, a BatchNorm entry, a feature
    map of the writer's output) added up per channel of the coupling (several indices after a flattening)."""
    index = torch.tensor([i for pos in member.positions for i in pos], dtype=torch.long, device=per_index.device)
    owner = torch.tensor([c for c, pos in enumerate(member.positions) for _ in pos], dtype=torch.long)
    out = torch.zeros(size, dtype=per_index.dtype, device=per_index.device)
    return out.scatter_add_(0, owner.to(per_index.device), per_index[index])


def reduce_members(values: list[Tensor], reduction: Reduction) -> Tensor:
    """One score per channel from the members' values, in the members' order (Torch-Pruning's `_reduce`)."""
    if not values:
        raise ValueError("a channel group has no member slice to score")
    if reduction == "first":
        return values[0].clone()
    if reduction == "max":
        return torch.stack(values).max(0).values
    total = torch.zeros_like(values[0])
    for v in values:
        total += v
    return total / len(values) if reduction == "mean" else total


def normalize(scores: Tensor, normalizer: Normalizer) -> Tensor:
    """The coupling's scores over their `mean`, `max` or `sum` (Torch-Pruning's `_normalize`), or unchanged."""
    if normalizer == "none":
        return scores
    scale = {"mean": scores.mean, "max": scores.max, "sum": scores.sum}[normalizer]()
    return scores / scale


def coupling_magnitudes(
    coupling: Coupling,
    params: Mapping[str, Tensor],
    *,
    p: float,
    members: Members,
    reduction: Reduction = "mean",
    normalizer: Normalizer = "mean",
    depthwise: bool = False,
) -> Tensor:
    """The magnitude score of each channel of one coupling (the module docstring's three steps)."""
    values = {
        s.param: params[s.param].detach().float().abs().pow(p) for s in coupling.slices if s.kind in KINDS[members]
    }
    return coupling_sums(
        coupling, values, kinds=KINDS[members], reduction=reduction, normalizer=normalizer, depthwise=depthwise
    )


def coupling_sums(
    coupling: Coupling,
    values: Mapping[str, Tensor],
    *,
    kinds: tuple[str, ...],
    reduction: Reduction = "mean",
    normalizer: Normalizer = "mean",
    depthwise: bool = False,
) -> Tensor:
    """One score per channel of a coupling from elementwise `values` by parameter name (|w|^p for magnitudes,
    |w * g| for Taylor, w^2 * h for the Hessian diagonal): each member slice of a kind in `kinds` (`out`, `in`,
    `norm`) sums them per channel (`slice_sums`), then the members are reduced and the coupling normalized as
    magnitudes are (steps 2 and 3 of the module docstring)."""
    sums = [
        slice_sums(s, values[s.param], coupling.size)
        for s in coupling.slices
        if s.kind in kinds and (depthwise or not s.depthwise)
    ]
    return normalize(reduce_members(sums, reduction), normalizer)


def magnitude_scores(
    groups: ChannelGroups,
    params: Mapping[str, Tensor],
    *,
    p: float,
    members: Members,
    reduction: Reduction = "mean",
    normalizer: Normalizer = "mean",
    depthwise: bool = False,
) -> list[Tensor]:
    """Magnitude scores of every coupling of `groups`, from the model's parameters by name (`params`, e.g.
    `dict(ctx.model.named_parameters())`: non-prunable slices count in the score, they are only never masked)."""
    return [
        coupling_magnitudes(
            c, params, p=p, members=members, reduction=reduction, normalizer=normalizer, depthwise=depthwise
        ).cpu()
        for c in groups.couplings
    ]


def random_scores(groups: ChannelGroups, generator: torch.Generator) -> list[Tensor]:
    """Uniform random scores, one per channel, drawn from `generator` (the job's: `ctx.generator`) in coupling
    order, as Torch-Pruning's `RandomImportance`."""
    return [torch.rand(c.size, generator=generator) for c in groups.couplings]
