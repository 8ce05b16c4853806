"""Magnitude pruning after training: remove the weights of smallest absolute value."""

from __future__ import annotations

from prunebench.methods import Masks, Method, PruningContext, Taxonomy


class GlobalMagnitude(Method):
    """Global magnitude pruning: one threshold on |w| across all prunable layers.

    Han et al. 2015, "Learning both weights and connections for efficient neural networks";
    global ranking as in Frankle & Carbin 2019 and Blalock et al. 2020. Azarian & Porikli 2021
    explain why it is a strong baseline (cascade weight shedding).
    """

    name = "global_magnitude"
    version = "1.0"
    citation = "Han et al. 2015 (NeurIPS); Blalock et al. 2020 (MLSys)"
    scored = True  # its masks are masks_from_scores of its scores: the invert sanity ablation applies
    taxonomy = Taxonomy(
        when="after_training",
        granularity="unstructured",
        scope="global",
        schedule="one_shot",
        retraining="fine_tune",
    )

    def prune(self, ctx: PruningContext) -> Masks:
        return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope=self.taxonomy.scope)


class LayerwiseMagnitude(GlobalMagnitude):
    """Layerwise magnitude pruning: every prunable layer loses the same fraction of its weights.

    Han et al. 2015; the uniform layerwise variant compared in Gale et al. 2019 and Blalock et al. 2020.
    """

    name = "layerwise_magnitude"
    citation = "Han et al. 2015 (NeurIPS); Gale et al. 2019 (arXiv:1902.09574)"
    scored = True  # its masks are masks_from_scores of its scores: the invert sanity ablation applies
    taxonomy = Taxonomy(
        when="after_training",
        granularity="unstructured",
        scope="layerwise",
        schedule="one_shot",
        retraining="fine_tune",
    )
