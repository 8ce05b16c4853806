"""Network slimming: train with L1 on the BatchNorm scales, then remove the channel groups of smallest |gamma|."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from prunebench_baselines.channel_base import (
    SCOPE,
    ChannelConfig,
    ChannelMethod,
    channel_taxonomy,
    listed,
    sparsity_epochs,
)
from pydantic import Field
from torch import Tensor, nn

from prunebench.methods import BatchNormL1, ChannelGroups, Normalizer, PruningContext, Reduction, coupling_sums


def without_batch_norm(groups: ChannelGroups) -> list[str]:
    """The couplings (by root layer) with no BatchNorm scale on their channels."""
    return [c.root for c in groups.couplings if not any(s.kind == "norm" for s in c.slices)]


class NetworkSlimmingConfig(ChannelConfig):
    scope: Literal["global", "layerwise"] = Field("global", description=SCOPE)
    penalty: float = Field(
        1e-4,
        ge=0,
        description="lambda, the weight of sum |gamma| in the sparsity training (the authors' --s: 1e-4 for VGG on "
        "CIFAR, their default; 1e-5 for their ResNet-164 and DenseNet-40).",
    )
    sparsity_epochs: int | None = Field(
        None,
        ge=0,
        description="Epochs of sparsity training before pruning; none: the whole pruning budget stated for the "
        "method (budget.pruning_epochs); 0: rank the trained model's scales as they are.",
    )
    reduction: Reduction = Field(
        "mean", description="How the |gamma| of a channel's BatchNorms (a residual stage's) make one (TP: mean)."
    )
    normalizer: Normalizer = Field(
        "none", description="Each coupling's scores over their mean, max or sum, or none (the paper: one threshold)."
    )
    residual: bool = Field(
        False,
        description="Also remove channels of a residual stage (several layers writing them, coupled by an addition). "
        "The authors' ResNets keep them (resprune.py prunes only inside the blocks); Torch-Pruning's slimming "
        "prunes them too.",
    )


class NetworkSlimming(ChannelMethod[NetworkSlimmingConfig]):
    """Network slimming: train with `penalty` * sum |gamma| over every BatchNorm scale added to the loss (the
    engine's `BatchNormL1`), for the pruning budget stated for the method, then remove the channels of smallest
    |gamma|, one global threshold over all of them, with every coupled slice (a residual stage's channel: the mean
    |gamma| of its BatchNorms, Torch-Pruning's BNScaleImportance). Every channel must have a BatchNorm scale: a
    model whose channels lack one is refused in one line before any training.

    Liu, Li, Shen, Huang, Yan & Zhang 2017, "Learning Efficient Convolutional Networks through Network Slimming"
    (ICCV); the authors' code, Eric-mingjie/network-slimming (main.py `updateBN`, vggprune.py). The paper trains
    the whole schedule with the penalty from scratch; here the trained model is trained on with it within the
    pruning budget."""

    name = "network_slimming"
    citation = "Liu et al. 2017 (ICCV), Learning Efficient Convolutional Networks through Network Slimming"
    taxonomy = channel_taxonomy("global", when="during_training")

    def couplings(self, groups: ChannelGroups) -> ChannelGroups:
        if self.config.residual:
            return groups
        kept, stages = [], {}
        for c in groups.couplings:
            if len({s.module for s in c.slices if s.kind == "out"}) > 1:
                stages[c.root] = "a residual stage's channels, kept as the authors' ResNets keep them (residual: false)"
            else:
                kept.append(c)
        return replace(groups, couplings=kept, excluded={**groups.excluded, **stages})

    def refuse(self, model: nn.Module, groups: ChannelGroups) -> None:
        missing = without_batch_norm(groups)
        if missing:
            raise ValueError(
                f"network_slimming ranks channels by their BatchNorm scales, and {len(missing)} coupling(s) have "
                f"none ({listed(missing)}): exclude them from the "
                "protocol's prunable layers (prunable.exclude) or use a criterion without BatchNorm"
            )

    def scores(self, ctx: PruningContext, groups: ChannelGroups) -> list[Tensor]:
        c = self.config
        epochs = sparsity_epochs(ctx, c.sparsity_epochs, self.name)
        if epochs:
            ctx.train(epochs, regularizers=[BatchNormL1(coefficient=c.penalty)])
        ctx.note("sparsity_epochs", epochs)
        params = dict(ctx.model.named_parameters())
        values = {
            s.param: params[s.param].detach().abs() for cp in groups.couplings for s in cp.slices if s.kind == "norm"
        }
        return [
            coupling_sums(cp, values, kinds=("norm",), reduction=c.reduction, normalizer=c.normalizer).cpu()
            for cp in groups.couplings
        ]
