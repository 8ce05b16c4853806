"""Channel pruning on coupled channel groups (prunebench.methods.channels): whole channels go with every slice
coupled to them (the filters that write them, through residual additions and depthwise convolutions, their
BatchNorm entries, the readers' input channels), so the pruned network compacts physically. The criteria score
each channel group; the allocation (`scope`, `max_layer_ratio`) and the job's target (a weight sparsity, a
FLOPs or a parameter reduction of the compacted model) decide how many go."""

from __future__ import annotations

from typing import ClassVar, Literal

from prunebench_baselines.channel_base import (
    DEPTHWISE,
    SCOPE,
    ChannelConfig,
    ChannelMethod,
    channel_taxonomy,
    group_sparsity,
    sparsity_epochs,
)
from pydantic import Field
from torch import Tensor

from prunebench.methods import (
    ChannelGroups,
    Members,
    Normalizer,
    PruningContext,
    Reduction,
    magnitude_scores,
    random_scores,
)


class ChannelMagnitudeConfig(ChannelConfig):
    members: Members = Field(
        "filters",
        description="The slices a channel's norm is taken over: filters, the filters that write it (Li et al.); "
        "coupled, every conv/linear slice coupled to it, the readers' input channels too; all, those and the "
        "BatchNorm scales (Torch-Pruning's MagnitudeImportance default).",
    )
    reduction: Reduction = Field(
        "mean", description="How the members' norms make one score: mean (Torch-Pruning's default), sum, max, first."
    )
    normalizer: Normalizer = Field(
        "mean",
        description="Each coupling's scores divided by their mean (Torch-Pruning's default), max or sum, or none: "
        "what makes couplings comparable in a global ranking (no effect within a coupling).",
    )
    depthwise: bool = Field(False, description=DEPTHWISE)


class ChannelL1(ChannelMethod[ChannelMagnitudeConfig]):
    """Remove the channels of smallest L1 norm (sum of |w|) of the filters that write them, reduced over the
    filters a residual addition couples (their mean by default), with every coupled slice.

    Li et al. 2017, "Pruning Filters for Efficient ConvNets" (ICLR): a filter's L1 norm, one ranking per layer
    (`scope: layerwise`, the default; the paper sets per-layer ratios by sensitivity analysis, here every coupling
    loses the same fraction). The group reduction and normalization are Torch-Pruning's (Fang et al. 2023)."""

    name = "channel_l1"
    citation = "Li et al. 2017 (ICLR), Pruning Filters for Efficient ConvNets"
    taxonomy = channel_taxonomy("layerwise")
    p: ClassVar[float] = 1.0  # the norm's degree

    def scores(self, ctx: PruningContext, groups: ChannelGroups) -> list[Tensor]:
        c = self.config
        params = dict(ctx.model.named_parameters())
        return magnitude_scores(
            groups,
            params,
            p=self.p,
            members=c.members,
            reduction=c.reduction,
            normalizer=c.normalizer,
            depthwise=c.depthwise,
        )


class ChannelL2(ChannelL1):
    """As `channel_l1` with the L2 norm: channels ranked by the squared L2 norm (sum of w^2) of their filters,
    as Torch-Pruning's MagnitudeImportance(p=2) computes it (the same ranking as the norm within one filter).

    Li et al. 2017 (ICLR), who compare the L2 norm with the L1 norm and find them close."""

    name = "channel_l2"
    p = 2.0


class GroupNormConfig(ChannelConfig):
    scope: Literal["global", "layerwise"] = Field("global", description=SCOPE)
    normalizer: Normalizer = Field(
        "mean",
        description="Each coupling's scores divided by their mean (DepGraph's default), max (Torch-Pruning's "
        "reproduce/main.py with sparse training, --method group_sl) or sum, or none.",
    )
    depthwise: bool = Field(False, description=DEPTHWISE)
    sparsity_epochs: int | None = Field(
        0,
        ge=0,
        description="Epochs of DepGraph's group-sparsity training before scoring (the GroupSparsity regularizer "
        "over the coupled groups); 0: none, the criterion on the trained model; none: the stated pruning budget.",
    )
    reg: float = Field(5e-4, ge=0, description="The sparsity training's coefficient (Torch-Pruning's --reg).")
    alpha: float = Field(4.0, ge=0, description="Least important channels decayed up to 2 ** alpha times harder.")


class GroupNorm(ChannelMethod[GroupNormConfig]):
    """DepGraph's group norm: a channel group's importance is the L2 norm over all its coupled parameters (every
    writer's filter, every reader's input channel, every BatchNorm scale), squared and averaged over the group's
    layers, each coupling's scores divided by their mean, ranked globally.

    Fang et al. 2023, "DepGraph: Towards Any Structural Pruning" (CVPR), as Torch-Pruning implements it
    (`GroupMagnitudeImportance(p=2)`, formerly `GroupNormImportance`; reproduce/main.py `--method group_norm
    --global-pruning`). With `sparsity_epochs` it first trains with DepGraph's group-level sparsity over the same
    coupled groups (`GroupSparsity`, Torch-Pruning's `GroupNormPruner.regularize`, `--method group_sl`, reg 5e-4)
    within the pruning budget, then scores the trained weights."""

    name = "group_norm"
    version = "1.1"  # 1.1: optional group-sparsity training (sparsity_epochs; its default 0 is the 1.0 criterion)
    citation = "Fang et al. 2023 (CVPR), DepGraph: Towards Any Structural Pruning"
    taxonomy = channel_taxonomy("global")

    def __init__(self, config: GroupNormConfig | None = None) -> None:
        super().__init__(config)
        if self.config.sparsity_epochs != 0:  # it trains before it prunes
            self.taxonomy = self.taxonomy.model_copy(update={"when": "during_training"})

    def scores(self, ctx: PruningContext, groups: ChannelGroups) -> list[Tensor]:
        c = self.config
        epochs = sparsity_epochs(ctx, c.sparsity_epochs, self.name)
        if epochs:
            ctx.train(epochs, regularizers=[group_sparsity(groups, c.reg, c.alpha, depthwise=c.depthwise)])
            ctx.note("sparsity_epochs", epochs)
        params = dict(ctx.model.named_parameters())
        return magnitude_scores(groups, params, p=2, members="all", normalizer=c.normalizer, depthwise=c.depthwise)


class RandomChannelsConfig(ChannelConfig):
    scope: Literal["global", "layerwise"] = Field("global", description=SCOPE)


class RandomChannels(ChannelMethod[RandomChannelsConfig]):
    """Remove channel groups at random (scores drawn from the job's generator): the sanity baseline every channel
    criterion must beat. Global by default: every coupling loses, in expectation, the same fraction.

    Li et al. 2017 (ICLR) compare with random filters; Liu et al. 2019, "Rethinking the Value of Network
    Pruning" (ICLR); Torch-Pruning's RandomImportance (Fang et al. 2023)."""

    name = "random_channels"
    citation = "Li et al. 2017 (ICLR); Liu et al. 2019 (ICLR); Fang et al. 2023 (CVPR)"
    taxonomy = channel_taxonomy("global")

    def scores(self, ctx: PruningContext, groups: ChannelGroups) -> list[Tensor]:
        return random_scores(groups, ctx.generator)
