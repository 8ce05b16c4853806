"""What every channel criterion shares (prunebench.methods.channels): the config of its allocation (`scope`,
`max_layer_ratio`) and the base that turns its scores into masks at the job's target (a weight sparsity, a FLOPs
or a parameter reduction of the compacted model)."""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import Field
from torch import Tensor

from prunebench.methods import (
    ChannelGroups,
    Masks,
    Method,
    MethodConfig,
    PruningContext,
    TargetKind,
    Taxonomy,
    When,
    channel_groups,
    prune_channels,
)

TARGETS: tuple[TargetKind, ...] = ("sparsity", "flops_reduction", "params_reduction")
SCOPE = (
    "global: channel groups ranked across couplings by their (normalized) scores, Torch-Pruning's global_pruning; "
    "layerwise: every coupling (a layer, or the layers a residual addition couples) loses the same fraction of its "
    "channels, within one channel."
)
DEPTHWISE = (
    "Count depthwise convolutions' filters in the norm (DepGraph's definition, every coupled parameter); "
    "Torch-Pruning 1.6 leaves them out (its importance does not recognize their pruning function), as the default."
)
CAP = (
    "At most this fraction of a coupling's channels is removed (Torch-Pruning's max_pruning_ratio); none: no cap. "
    "Every coupling keeps a channel whatever the cap."
)


def channel_taxonomy(scope: Literal["global", "layerwise"], when: When = "after_training") -> Taxonomy:
    return Taxonomy(when=when, granularity="filter", scope=scope, schedule="one_shot", retraining="fine_tune")


class ChannelConfig(MethodConfig):
    scope: Literal["global", "layerwise"] = Field("layerwise", description=SCOPE)
    max_layer_ratio: float | None = Field(None, gt=0, le=1, description=CAP)


C = TypeVar("C", bound=ChannelConfig)


class ChannelMethod(Method[C]):
    """A channel criterion: it scores every channel of every coupling (`scores`); the allocation of its config
    (`scope`, `max_layer_ratio`) and the job's target decide how many go (prunebench.methods.prune_channels)."""

    Config = ChannelConfig  # each criterion's own, from its base's type argument
    version = "1.0"
    taxonomy_from_config = {"scope": "scope"}
    targets = TARGETS

    def scores(self, ctx: PruningContext, groups: ChannelGroups) -> list[Tensor]:
        raise NotImplementedError

    def prune(self, ctx: PruningContext) -> Masks:
        groups = channel_groups(ctx)
        c = self.config
        return prune_channels(ctx, groups, self.scores(ctx, groups), scope=c.scope, max_ratio=c.max_layer_ratio)
