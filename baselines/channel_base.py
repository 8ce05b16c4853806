"""What every channel criterion shares (prunebench.methods.channels): the config of its allocation (`scope`,
`max_layer_ratio`), the base that turns its scores into masks at the job's target (a weight sparsity, a FLOPs or a
parameter reduction of the compacted model), and the epochs of sparsity training of the criteria that train
before they score (network slimming, DepGraph's group sparsity) within the stated pruning budget."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import torch
from pydantic import Field
from torch import Tensor, nn

from prunebench.methods import (
    ChannelGroups,
    GroupSlice,
    GroupSparsity,
    Layout,
    Masks,
    Method,
    MethodConfig,
    PruningContext,
    Reach,
    Target,
    TargetKind,
    Taxonomy,
    When,
    channel_groups,
    find_channel_groups,
    prune_channels,
    reach_target,
    removal_order,
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
EXAMPLES = "Training examples the scores are computed on; default: the protocol's pruning.scoring_examples."


def channel_taxonomy(scope: Literal["global", "layerwise"], when: When = "after_training") -> Taxonomy:
    return Taxonomy(when=when, granularity="filter", scope=scope, schedule="one_shot", retraining="fine_tune")


class ChannelConfig(MethodConfig):
    scope: Literal["global", "layerwise"] = Field("layerwise", description=SCOPE)
    max_layer_ratio: float | None = Field(None, gt=0, le=1, description=CAP)


C = TypeVar("C", bound=ChannelConfig)


class ChannelMethod(Method[C]):
    """A channel criterion: it scores every channel of every coupling (`scores`, which may train first, through
    the engine); the allocation of its config (`scope`, `max_layer_ratio`) and the job's target decide how many go
    (prunebench.methods.prune_channels)."""

    Config = ChannelConfig  # each criterion's own, from its base's type argument
    version = "1.0"
    taxonomy_from_config = {"scope": "scope"}
    targets = TARGETS

    def scores(self, ctx: PruningContext, groups: ChannelGroups) -> list[Tensor]:
        raise NotImplementedError

    def couplings(self, groups: ChannelGroups) -> ChannelGroups:
        """The couplings the criterion may remove channels of (all of them, by default); the others go to
        `excluded`, with the reason, and keep every channel."""
        return groups

    def refuse(self, model: nn.Module, groups: ChannelGroups) -> None:
        """Raise ValueError (one sentence) where the criterion cannot score this model's channels (no BatchNorm
        scale, no feature map): checked before any training (`reach`) and again when it prunes."""

    def prune(self, ctx: PruningContext) -> Masks:
        groups = self.couplings(channel_groups(ctx))
        self.refuse(ctx.model, groups)
        c = self.config
        return prune_channels(ctx, groups, self.scores(ctx, groups), scope=c.scope, max_ratio=c.max_layer_ratio)

    def reach(self, shapes: Mapping[str, tuple[int, ...]], target: Target) -> Reach | None:
        """Before any training, on the protocol's model built fresh: its coupled channels found (a model
        Torch-Pruning cannot trace is refused), the criterion able to score them (`refuse`), and the target
        within what removing every channel the allocation's cap allows reaches. How close a sparsity lands
        depends on the weights: None."""
        if not isinstance(shapes, Layout) or shapes.input_shape is None:
            return None
        model = shapes.model()
        if "channel_groups" not in shapes.memo:
            try:
                shapes.memo["channel_groups"] = find_channel_groups(model, shapes.input_shape, list(shapes))
            except Exception as exc:  # Torch-Pruning's tracer fails in many ways on a model it cannot follow
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                raise ValueError(f"Torch-Pruning cannot trace the model ({type(exc).__name__}: {first})") from None
        groups = self.couplings(shapes.memo["channel_groups"])
        self.refuse(model, groups)
        c = self.config
        ties = [torch.zeros(coupling.size) for coupling in groups.couplings]  # reach needs no score: any order
        order = removal_order(groups, ties, scope=c.scope, max_ratio=c.max_layer_ratio)
        reach_target(groups, order, target, scope=c.scope)
        return None


def listed(names: list[str], most: int = 3) -> str:
    """`names` for a one-line message: the first `most`, then an ellipsis."""
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def sparsity_epochs(ctx: PruningContext, configured: int | None, method: str) -> int:
    """The epochs of a criterion's sparsity training: `configured`, or None for the whole epochs of the pruning
    budget stated for the method (`budget.pruning_epochs`, rounded down), which must then be at least one."""
    if configured is not None:
        return configured
    epochs = math.floor(ctx.budget.pruning_epochs + 1e-9)
    if epochs < 1:
        raise ValueError(
            f"{method} trains with its sparsity regularizer within the pruning budget, but budget.pruning_epochs is "
            f"{ctx.budget.pruning_epochs:g}: state a budget of at least one epoch for it, or set sparsity_epochs"
        )
    return epochs


def group_sparsity(groups: ChannelGroups, reg: float, alpha: float, *, depthwise: bool = False) -> GroupSparsity:
    """DepGraph's group-sparsity declaration over every coupling of `groups`: each group's slices that its group
    norm counts (every writer's filter, reader's columns and BatchNorm scale; depthwise filters with `depthwise`),
    as Torch-Pruning's `GroupNormPruner.regularize` decays them."""
    coupled: list[Any] = [
        tuple(
            GroupSlice(param=s.param, dim=s.dim, positions=s.positions)
            for s in c.slices
            if depthwise or not s.depthwise
        )
        for c in groups.couplings
    ]
    return GroupSparsity(coefficient=reg, alpha=alpha, groups=tuple(coupled))
