"""Training the pruned architecture from scratch (Liu et al. 2019): is the inherited weight worth anything?"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from prunebench.methods import Masks, Method, MethodConfig, PruningContext, Taxonomy


class ScratchConfig(MethodConfig):
    scope: Literal["global", "layerwise"] = Field(
        "global", description="The mask: magnitude pruning of the trained base model, one threshold or per layer."
    )


class ScratchE(Method[ScratchConfig]):
    """Scratch-E: take the mask of magnitude pruning of the trained base model, re-initialize the
    weights (a fresh draw of the model's initializer, seeded per job) and train the pruned
    architecture for the same epochs as every other method's retraining, with the protocol's recipe.

    Liu et al. 2019, "Rethinking the value of network pruning" (ICLR): Scratch-E trains for the same
    epochs; for unstructured pruning the mask comes from magnitude pruning (Han et al. 2015). Here
    "the same epochs" is the protocol's retraining, so Scratch-E differs from global magnitude pruning
    only in its starting weights.
    """

    name = "scratch_e"
    version = "1.0"
    citation = "Liu et al. 2019 (ICLR)"
    scored = True  # its masks are masks_from_scores of its scores: the invert sanity ablation applies
    taxonomy = Taxonomy(
        when="after_training",
        granularity="unstructured",
        scope="global",
        schedule="one_shot",
        retraining="scratch",
    )
    taxonomy_from_config = {"scope": "scope"}

    def prune(self, ctx: PruningContext) -> Masks:
        scope = self.config.scope
        return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope=scope)


class ScratchBConfig(ScratchConfig):
    max_factor: float = Field(
        2.0,
        ge=1,
        description="At most this many times the protocol's retraining epochs (Liu et al.: when the pruned "
        "model saves more than 2x FLOPs, Scratch-B trains for twice the epochs).",
    )


class ScratchB(ScratchE):
    """Scratch-B: Scratch-E trained for the same computation budget: the protocol's retraining epochs
    times dense FLOPs / pruned FLOPs (rounded down, so it never spends more than retraining the dense
    model would), at most `max_factor` times as many. It asks the engine for those epochs through
    `retrain_epochs`, which the audit judges: legitimate under SX-B (whose default budget is exactly
    retraining the dense model) and SX-A when the protocol allows the total; a violation under S3.1 and
    above, which fix the retraining epochs.

    Liu et al. 2019, "Rethinking the value of network pruning" (ICLR), Scratch-B, capped at 2x epochs.
    """

    name = "scratch_b"
    Config = ScratchBConfig
    config: ScratchBConfig

    def retrain_epochs(self, ctx: PruningContext) -> int | None:
        factor = min(self.config.max_factor, ctx.forward_flops(dense=True) / ctx.forward_flops())
        epochs = max(ctx.retrain_epochs, math.floor(ctx.retrain_epochs * factor + 1e-9))
        ctx.note("flops_ratio", ctx.forward_flops(dense=True) / ctx.forward_flops())
        ctx.note("retrain_epochs", epochs)
        return epochs
