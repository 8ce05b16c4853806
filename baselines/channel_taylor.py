"""First-order Taylor importance of channel groups (Molchanov et al. 2019), from the loss gradients of the
protocol's scoring batches on a copy of the model."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from prunebench_baselines.channel_base import EXAMPLES, SCOPE, ChannelConfig, ChannelMethod, channel_taxonomy
from prunebench_baselines.snip import BatchNormMode, scoring_copy
from pydantic import Field
from torch import Tensor, nn

from prunebench.methods import (
    ChannelGroups,
    Coupling,
    Normalizer,
    PruningContext,
    index_sums,
    normalize,
    per_channel,
    reduce_members,
    slice_sums,
)


def batch_gradients(
    model: nn.Module, names: list[str], batches: Iterable[tuple[Tensor, Tensor]]
) -> Iterator[dict[str, Tensor]]:
    """For every batch, the gradients of its mean cross-entropy with respect to the named parameters."""
    params = [model.get_parameter(n) for n in names]
    for x, y in batches:
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), params, allow_unused=True)
        yield {n: torch.zeros_like(p) if g is None else g for n, p, g in zip(names, params, grads, strict=True)}


def gate_gradient(coupling: Coupling, params: dict[str, Tensor], grads: dict[str, Tensor]) -> Tensor:
    """dL/dz of one gate z = 1 on every map of each channel of `coupling` (tied over the maps): after a BatchNorm
    that follows a writer, gamma * dL/dgamma + beta * dL/dbeta; after a writer without one, the sum of w * dL/dw
    over its filter and bias. Removing the channel zeroes every one of these maps, so -dL/dz is its first-order
    change of the loss."""
    total = torch.zeros(coupling.size, device=next(iter(params.values())).device)
    normalized = {s.follows for s in coupling.slices if s.kind == "norm"}
    for s in coupling.slices:
        if s.kind == "norm" or (s.kind == "out" and s.module not in normalized):
            total += slice_sums(s, params[s.param] * grads[s.param], coupling.size)
            bias = f"{s.module}.bias" if s.module else "bias"
            if bias in params:
                total += per_channel(s, params[bias] * grads[bias], coupling.size)
    return total


def group_taylor(
    coupling: Coupling, params: dict[str, Tensor], grads: dict[str, Tensor], multivariable: bool
) -> list[Tensor]:
    """Torch-Pruning's `GroupTaylorImportance` members: every (non-depthwise) conv/linear slice's sum of |w * g| over
    its elements, or with `multivariable` the |sum of w * g| of each of its rows or columns."""
    out = []
    for s in coupling.slices:
        if s.kind in ("out", "in") and not s.depthwise:
            product = params[s.param] * grads[s.param]
            per_index = index_sums(s, product).abs() if multivariable else index_sums(s, product.abs())
            out.append(per_channel(s, per_index, coupling.size))
    return out


class ChannelTaylorConfig(ChannelConfig):
    scope: Literal["global", "layerwise"] = Field("global", description=SCOPE)
    criterion: Literal["gate", "group"] = Field(
        "gate",
        description="gate: (dL/dz)^2 of a gate after every map of the channel (after its BatchNorm), squared per "
        "batch and averaged (the paper's Taylor-FO-BN, the authors' method 22); group: Torch-Pruning's "
        "GroupTaylorImportance, the mean over the coupled conv/linear slices of sum |w * g|, g summed over batches.",
    )
    multivariable: bool = Field(False, description="group only: |sum of w * g| per row or column (Torch-Pruning's).")
    normalizer: Normalizer = Field(
        "none", description="Each coupling's scores over their mean, max or sum, or none (the authors'; TP: mean)."
    )
    batch_norm: BatchNormMode = Field(
        "train",
        description="BatchNorm while scoring: train (batch statistics: the authors score while fine-tuning) or "
        "eval (running statistics, as Torch-Pruning's examples).",
    )
    examples: int | None = Field(None, gt=0, description=EXAMPLES)


class ChannelTaylor(ChannelMethod[ChannelTaylorConfig]):
    """First-order Taylor importance: a channel group's contribution to the loss, estimated from the gradient.
    By default (`criterion: gate`) the paper's best variant: a gate z = 1 after the BatchNorm of every map of the
    channel, importance (dL/dz)^2 = (sum over the gated parameters of g * w)^2, computed per scoring batch
    (its mean loss) and averaged over the batches; channels ranked globally, unnormalized (the authors'
    `l2_normalization_per_layer: false`). `criterion: group` is Torch-Pruning's GroupTaylorImportance.

    Molchanov, Mallya, Tyree, Frosio & Kautz 2019, "Importance Estimation for Neural Network Pruning" (CVPR);
    NVlabs/Taylor_pruning, pruning_engine.py, method 22 (Taylor_gate). One-shot here (the authors prune 100 gates
    every 30 iterations while fine-tuning); the gate of a channel is tied over all its maps (a residual stage's)."""

    name = "channel_taylor"
    citation = "Molchanov et al. 2019 (CVPR), Importance Estimation for Neural Network Pruning"
    taxonomy = channel_taxonomy("global")

    def scores(self, ctx: PruningContext, groups: ChannelGroups) -> list[Tensor]:
        c = self.config
        model = scoring_copy(ctx.model, c.batch_norm)
        own = dict(model.named_parameters())
        weights = list(dict.fromkeys(s.param for cp in groups.couplings for s in cp.slices))
        biases = [f"{n.rpartition('.')[0]}.bias" for n in weights]  # a writer's or a BatchNorm's shift
        names = list(dict.fromkeys([*weights, *(b for b in biases if b in own)]))
        params = {n: own[n].detach() for n in names}
        batches = ctx.batches(c.examples or ctx.scoring_examples, backward=True)
        totals = [torch.zeros(cp.size, device=ctx.device) for cp in groups.couplings]
        grads: dict[str, Tensor] = {n: torch.zeros_like(p) for n, p in params.items()}
        seen = 0
        for batch in batch_gradients(model, names, batches):
            seen += 1
            for i, cp in enumerate(groups.couplings):
                if c.criterion == "gate":
                    totals[i] += gate_gradient(cp, params, batch).pow(2)
            for n, g in batch.items():
                grads[n] += g
        if seen == 0:
            raise ValueError("no examples to score on (is the protocol's pruning.scoring_examples 0?)")
        if c.criterion == "gate":
            return [normalize(t / seen, c.normalizer).cpu() for t in totals]
        return [
            normalize(reduce_members(group_taylor(cp, params, grads, c.multivariable), "mean"), c.normalizer).cpu()
            for cp in groups.couplings
        ]
