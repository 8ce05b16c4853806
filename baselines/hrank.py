"""HRank: remove the channels whose feature maps have the lowest average rank (Lin et al. 2020)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from prunebench_baselines.channel_base import EXAMPLES, SCOPE, ChannelConfig, ChannelMethod, channel_taxonomy, listed
from prunebench_baselines.snip import scoring_copy
from pydantic import Field
from torch import Tensor, nn

from prunebench.methods import (
    ChannelGroups,
    Normalizer,
    PruningContext,
    Reduction,
    normalize,
    per_channel,
    reduce_members,
)

Activation = Literal["relu", "none"]


def map_modules(groups: ChannelGroups) -> dict[str, str]:
    """Where each coupling's feature maps are read: by module, the coupling's root. A writer's map is its output
    after the BatchNorm that follows it (that BatchNorm's output), or its own output where none does."""
    out: dict[str, str] = {}
    for c in groups.couplings:
        normalized_writers = {s.follows for s in c.slices if s.kind == "norm"}
        for s in c.slices:
            if s.kind == "norm" or (s.kind == "out" and s.module not in normalized_writers):
                out[s.module] = c.root
    return out


def average_ranks(
    model: nn.Module, modules: Iterable[str], batches: Iterable[tuple[Tensor, Tensor]], activation: Activation
) -> dict[str, Tensor]:
    """By module: the rank of each of its output channels' H x W maps (torch.linalg.matrix_rank, its default
    tolerance), after `activation`, averaged over every example of `batches` (no gradients)."""
    found = dict(model.named_modules())
    sums: dict[str, Tensor] = {}
    counts: dict[str, int] = {}

    def hook(name: str) -> Any:
        def record(_module: nn.Module, _args: Any, out: Tensor) -> None:
            if out.dim() != 4:
                raise ValueError(f"hrank ranks H x W feature maps, and {name}'s output has shape {tuple(out.shape)}")
            maps = F.relu(out) if activation == "relu" else out
            ranks = torch.linalg.matrix_rank(maps.float()).sum(0).double()
            sums[name] = sums[name] + ranks if name in sums else ranks
            counts[name] = counts.get(name, 0) + out.shape[0]

        return record

    handles = [found[m].register_forward_hook(hook(m)) for m in modules]
    try:
        with torch.no_grad():
            for x, _ in batches:
                model(x)
    finally:
        for h in handles:
            h.remove()
    if not counts:
        raise ValueError("no examples to score on (is the protocol's pruning.scoring_examples 0?)")
    return {m: sums[m] / counts[m] for m in sums}


class HRankConfig(ChannelConfig):
    activation: Activation = Field(
        "relu", description="The map ranked: relu, after a ReLU (the authors hook the ReLUs); none, as it is."
    )
    reduction: Reduction = Field("mean", description="How the ranks of a channel's several maps make one.")
    normalizer: Normalizer = Field("none", description="Each coupling's scores over their mean, max, sum, or none.")
    scope: Literal["global", "layerwise"] = Field("layerwise", description=SCOPE)
    examples: int | None = Field(None, gt=0, description=EXAMPLES)


class HRank(ChannelMethod[HRankConfig]):
    """HRank: a channel's importance is the average rank of its feature maps (each example's H x W map, after its
    BatchNorm and a ReLU), over the scoring examples, on a copy in evaluation mode without gradients; the channels
    of lowest average rank go, every coupling losing the same fraction (the authors set a compression rate per
    layer). A channel with several maps (a residual stage's writers) takes their mean.

    Lin, Ji, Wang, Zhang, Zhang, Tian & Shao 2020, "HRank: Filter Pruning using High-Rank Feature Map" (CVPR); the
    authors' lmbxmu/HRankPlus, rank_generation.py (`get_feature_hook`: torch.matrix_rank of every map, averaged
    over the images; 5 batches of 128 there, the protocol's scoring examples here)."""

    name = "hrank"
    citation = "Lin et al. 2020 (CVPR), HRank: Filter Pruning using High-Rank Feature Map"
    taxonomy = channel_taxonomy("layerwise")

    def refuse(self, model: nn.Module, groups: ChannelGroups) -> None:
        found = dict(model.named_modules())
        where = map_modules(groups)
        flat = [m for m in where if not isinstance(found[m], nn.Conv2d) and not _follows_conv(groups, m, found)]
        if flat:
            roots = list(dict.fromkeys(where[m] for m in flat))
            raise ValueError(
                f"hrank ranks the H x W feature maps of convolutions, and {len(roots)} coupling(s) are written by "
                f"layers without them ({listed(roots)}): exclude them from the protocol's prunable layers "
                "(prunable.exclude)"
            )

    def scores(self, ctx: PruningContext, groups: ChannelGroups) -> list[Tensor]:
        c = self.config
        where = map_modules(groups)
        batches = ctx.batches(c.examples or ctx.scoring_examples)
        ranks = average_ranks(scoring_copy(ctx.model, "eval"), where, batches, c.activation)
        out = []
        for cp in groups.couplings:
            own = [s for s in cp.slices if s.kind in ("out", "norm") and where.get(s.module) == cp.root]
            maps = [per_channel(s, ranks[s.module].float(), cp.size) for s in own]
            out.append(normalize(reduce_members(maps, c.reduction), c.normalizer).cpu())
        return out


def _follows_conv(groups: ChannelGroups, module: str, found: dict[str, nn.Module]) -> bool:
    writer = next((s.follows for c in groups.couplings for s in c.slices if s.module == module), None)
    return writer is not None and isinstance(found[writer], nn.Conv2d)
