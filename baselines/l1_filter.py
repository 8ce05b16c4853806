"""L1-norm filter pruning: remove whole convolution filters of smallest L1 norm (structured)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from prunebench.methods import Masks, Method, MethodConfig, PruningContext, Taxonomy


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

    layerwise: every layer loses the same fraction of its filters (rounded down), and the remainder is
    filled one filter at a time, the layers furthest below that fraction first, while filters fit.
    global: filters are ranked across layers by their L1 norm per weight (mean |w|, so that layers
    with larger filters are not penalized for their size) and taken in that order while they fit.
    Then, in both, filters are traded between layers while that brings the count closer to the
    target (e.g. one more filter of 72 weights for four fewer of 9), so the miss is at most about
    half the smallest filter size wherever the layers' sizes allow.
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
        conv_total = sum(c * s for c, s in zip(counts, size, strict=True))
        ratio = target / conv_total
        base = [min(r, math.floor(ratio * c)) for r, c in zip(room, counts, strict=True)]
        remaining = target - sum(b * s for b, s in zip(base, size, strict=True))
        left = [r - b for r, b in zip(room, base, strict=True)]
        # The deficit below the common fraction decides who gets the next filter; a layer is visited
        # again (its deficit one filter later) until nothing more fits.
        visits = sorted(
            ((ratio * c - b - j, i) for i, (c, b) in enumerate(zip(counts, base, strict=True)) for j in range(left[i])),
            key=lambda t: (-t[0], t[1]),
        )
        extra, remaining = _fill(remaining, size, left, [i for _, i in visits])
        pruned = [b + e for b, e in zip(base, extra, strict=True)]
    else:
        # The ranking of every filter by L1 norm per weight, ties by position.
        per_weight = torch.cat([norms[n].double().cpu() / sizes[n] for n in names])
        owner = [i for i, c in enumerate(counts) for _ in range(c)]
        order = [owner[j] for j in torch.argsort(per_weight, stable=True).tolist()]
        pruned, remaining = _fill(target, size, room, order)
    pruned, _ = _trade(pruned, room, size, remaining)
    return dict(zip(names, pruned, strict=True))


class L1FilterPruningConfig(MethodConfig):
    scope: Literal["layerwise", "global"] = Field(
        "layerwise",
        description="layerwise: the same fraction of filters in every conv layer (Li et al.); "
        "global: filters ranked across layers by L1 norm per weight.",
    )


class L1FilterPruning(Method[L1FilterPruningConfig]):
    """Pruning filters for efficient ConvNets: remove the output filters of convolutions with the
    smallest L1 norm of their weights, so the layer's output channels (and its FLOPs) go with them.

    Li et al. 2017, "Pruning filters for efficient ConvNets" (ICLR). The paper chooses per-layer
    ratios by sensitivity analysis; here the protocol's target (a fraction of all prunable weights)
    decides how many filters go. layerwise (default): every conv layer loses the same fraction of its
    filters, Li et al.'s per-layer L1 ranking; global: filters ranked across layers by L1 norm per
    weight. Whole filters rarely sum to the target exactly: after the ranking, filters are traded
    between layers while that lands closer to it (see `filters_to_prune`), so the miss is about half
    a filter of the smallest kind at most, wherever the layer sizes allow; the engine measures what
    is achieved and its tolerance check says if that is not enough.

    Linear layers are never pruned (as in the paper: their output rows are the classifier's classes
    or feed it), and every conv layer keeps at least one filter; a target beyond what that leaves is
    refused with an error. The masks zero whole filters; BatchNorm and biases stay, so a pruned
    channel still passes its BN shift (a constant) to the next layer, whose kernels on that channel
    are therefore kept and counted: the FLOPs fall by the pruned filters' own MACs (the engine scales
    each layer's MACs by its kept fraction). Retraining fine-tunes the pruned network (the paper's
    "prune once and retrain").
    """

    name = "l1_filter"
    version = "1.0"
    citation = "Li et al. 2017 (ICLR), Pruning filters for efficient ConvNets"
    taxonomy = Taxonomy(
        when="after_training",
        granularity="filter",
        scope="layerwise",
        schedule="one_shot",
        retraining="fine_tune",
    )

    def __init__(self, config: L1FilterPruningConfig | None = None) -> None:
        super().__init__(config)
        self.taxonomy = self.taxonomy.model_copy(update={"scope": self.config.scope})

    def prune(self, ctx: PruningContext) -> Masks:
        weights = ctx.weights()
        convs = {name: w for name, w in weights.items() if w.dim() > 2}
        if not convs:
            raise ValueError("L1 filter pruning needs prunable convolution weights; the model has none")
        total = sum(w.numel() for w in weights.values())
        target = round(ctx.target_sparsity * total)
        norms = {name: filter_l1_norms(w) for name, w in convs.items()}
        sizes = {name: w[0].numel() for name, w in convs.items()}
        try:
            counts = filters_to_prune(norms, sizes, target, scope=self.config.scope)
        except ValueError as exc:
            linear = total - sum(w.numel() for w in convs.values())
            raise ValueError(
                f"target sparsity {ctx.target_sparsity:g} is out of reach of filter pruning here: {exc} of "
                f"{total} prunable weights ({linear} in linear layers, never pruned)"
            ) from None
        masks = {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}
        for name, count in counts.items():
            # The `count` filters of smallest L1 norm, ties broken by position.
            gone = torch.argsort(norms[name], stable=True)[:count]
            masks[name][gone] = False
        return masks
