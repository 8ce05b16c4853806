"""Second-order (Hessian-diagonal) importance of channel groups: Optimal Brain Damage's saliency w^2 * h with the
diagonal estimated from per-example squared gradients (the empirical Fisher), as Torch-Pruning's
`GroupHessianImportance` estimates it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from prunebench_baselines.channel_base import (
    DEPTHWISE,
    EXAMPLES,
    SCOPE,
    ChannelConfig,
    ChannelMethod,
    channel_taxonomy,
)
from prunebench_baselines.snip import scoring_copy
from pydantic import Field
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from prunebench.methods import ChannelGroups, Normalizer, PruningContext, Reduction, coupling_sums

CHUNK_ELEMENTS = 2**25  # per-example gradients held at once (x the parameters scored): 128 MiB of float32


def squared_gradients(
    model: nn.Module, names: list[str], batches: Iterable[tuple[Tensor, Tensor]]
) -> tuple[dict[str, Tensor], int]:
    """The mean over every example of `batches` of its squared loss gradient (its own cross-entropy) with respect to
    each named parameter, and the number of examples. The model computes as it is set (evaluation mode: each
    example's gradient is its own); the examples' gradients come a chunk at a time (torch.func's vmap)."""
    fixed = {k: v.detach() for k, v in [*model.named_parameters(), *model.named_buffers()] if k not in names}
    scored = {n: model.get_parameter(n).detach() for n in names}

    def loss(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        out = functional_call(model, {**fixed, **params}, (x.unsqueeze(0),))
        return F.cross_entropy(out, y.unsqueeze(0))

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))
    chunk = max(1, CHUNK_ELEMENTS // max(1, sum(p.numel() for p in scored.values())))
    total = {n: torch.zeros_like(p) for n, p in scored.items()}
    seen = 0
    for x, y in batches:
        for start in range(0, len(y), chunk):
            grads = per_example(scored, x[start : start + chunk], y[start : start + chunk])
            for n, g in grads.items():
                total[n] += g.pow(2).sum(0)
        seen += len(y)
    if seen == 0:
        raise ValueError("no examples to score on (is the protocol's pruning.scoring_examples 0?)")
    return {n: t / seen for n, t in total.items()}, seen


class ChannelHessianConfig(ChannelConfig):
    scope: Literal["global", "layerwise"] = Field("global", description=SCOPE)
    reduction: Reduction = Field("mean", description="How the members' saliencies make one score (TP: mean).")
    normalizer: Normalizer = Field("mean", description="Each coupling's scores over their mean (TP), max, sum, none.")
    depthwise: bool = Field(False, description=DEPTHWISE)
    examples: int | None = Field(None, gt=0, description=EXAMPLES)


class ChannelHessian(ChannelMethod[ChannelHessianConfig]):
    """Optimal Brain Damage on channel groups: every coupled slice's saliency is sum of w^2 * h over its elements,
    h the Hessian diagonal estimated as the mean over the scoring examples of each example's squared loss gradient
    (the empirical Fisher), on a copy in evaluation mode; the members' saliencies averaged (writers' filters,
    readers' columns, BatchNorm scales), each coupling's divided by their mean, ranked globally.

    LeCun, Denker & Solla 1990, "Optimal Brain Damage" (NeurIPS), grouped as Torch-Pruning's
    `GroupHessianImportance` (Fang et al. 2023), whose `accumulate_grad` this follows as its docstring says
    (Torch-Pruning 1.6 keeps only the last example's square: docs/methods.md)."""

    name = "channel_hessian"
    citation = "LeCun et al. 1990 (NeurIPS), Optimal Brain Damage; Fang et al. 2023 (CVPR), Torch-Pruning"
    taxonomy = channel_taxonomy("global")

    def scores(self, ctx: PruningContext, groups: ChannelGroups) -> list[Tensor]:
        c = self.config
        model = scoring_copy(ctx.model, "eval")
        kinds = ("out", "in", "norm")
        names = list(dict.fromkeys(s.param for cp in groups.couplings for s in cp.slices if s.kind in kinds))
        batches = ctx.batches(c.examples or ctx.scoring_examples, backward=True)
        fisher, seen = squared_gradients(model, names, batches)
        ctx.note("hessian_examples", seen)
        values = {n: model.get_parameter(n).detach().pow(2) * h for n, h in fisher.items()}
        return [
            coupling_sums(
                cp, values, kinds=kinds, reduction=c.reduction, normalizer=c.normalizer, depthwise=c.depthwise
            ).cpu()
            for cp in groups.couplings
        ]
