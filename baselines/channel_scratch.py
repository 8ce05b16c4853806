"""The pruned channel architecture trained from scratch (Liu et al. 2019): is inheriting the pruned model's
weights worth anything, against training the smaller network from a fresh initialization? Wang et al. 2023's
second "mystery", for structured pruning."""

from __future__ import annotations

import math

from prunebench_baselines.channel_pruning import ChannelL1, ChannelMagnitudeConfig
from pydantic import Field

from prunebench.methods import PruningContext, Taxonomy


class ChannelScratchE(ChannelL1):
    """Scratch-E for channels: the architecture `channel_l1` (with this config) prunes to, at the job's target
    (a weight sparsity, or a FLOPs or parameter reduction), re-initialized (a fresh draw of the model's
    initializer, seeded per job) and trained for the protocol's retraining epochs with its recipe.

    Liu et al. 2019, "Rethinking the value of network pruning" (ICLR): Scratch-E trains the pruned architecture of
    L1-norm filter pruning (Li et al. 2017) from scratch for the same epochs as fine-tuning. The pair
    (`channel_l1`, `channel_scratch_e`) differs in the starting weights only."""

    name = "channel_scratch_e"
    citation = "Liu et al. 2019 (ICLR), Rethinking the Value of Network Pruning"
    taxonomy = Taxonomy(
        when="after_training", granularity="filter", scope="layerwise", schedule="one_shot", retraining="scratch"
    )


class ChannelScratchBConfig(ChannelMagnitudeConfig):
    max_factor: float = Field(
        2.0,
        ge=1,
        description="At most this many times the protocol's retraining epochs (Liu et al.: when the pruned model "
        "saves more than 2x FLOPs, Scratch-B trains for twice the epochs).",
    )


class ChannelScratchB(ChannelScratchE):
    """Scratch-B for channels: Scratch-E trained for the computation of retraining the dense model: the protocol's
    retraining epochs times dense FLOPs / pruned FLOPs (rounded down), at most `max_factor` times as many. A
    violation under S3.1 and above (fixed retraining epochs); legitimate under SX-B, whose default budget is
    exactly retraining the dense model.

    Liu et al. 2019 (ICLR), Scratch-B, capped at 2x epochs."""

    name = "channel_scratch_b"
    Config = ChannelScratchBConfig
    config: ChannelScratchBConfig

    def retrain_epochs(self, ctx: PruningContext) -> int | None:
        ratio = ctx.forward_flops(dense=True) / ctx.forward_flops()
        epochs = max(ctx.retrain_epochs, math.floor(ctx.retrain_epochs * min(self.config.max_factor, ratio) + 1e-9))
        ctx.note("flops_ratio", ratio)
        ctx.note("retrain_epochs", epochs)
        return epochs
