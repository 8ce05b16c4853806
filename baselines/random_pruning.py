"""Random pruning: the sanity baseline every criterion must beat."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from prunebench.masks import Masks
from prunebench.methods import Method, MethodConfig, PruningContext, Taxonomy


class RandomPruning(Method):
    """Prune weights uniformly at random: globally (each layer keeps, in expectation, the same
    fraction) or layerwise (exactly the same fraction in every layer).

    Blalock et al. 2020, "What is the state of neural network pruning?"; Liu et al. 2022,
    "The unreasonable effectiveness of random pruning". Azarian & Porikli 2021 show that cascade
    weight shedding during retraining lifts it.
    """

    name = "random"
    version = "1.0"
    citation = "Blalock et al. 2020 (MLSys); Liu et al. 2022 (ICLR)"
    taxonomy = Taxonomy(
        when="after_training",
        granularity="unstructured",
        scope="global",
        schedule="one_shot",
        retraining="fine_tune",
    )

    class Config(MethodConfig):
        scope: Literal["global", "layerwise"] = Field(
            "global", description="global: random scores ranked across layers; layerwise: the same fraction per layer."
        )

    def prune(self, ctx: PruningContext) -> Masks:
        scores = {k: torch.rand(w.shape, generator=ctx.generator).to(w.device) for k, w in ctx.weights().items()}
        return ctx.masks_from_scores(scores, scope=self.config.scope)
