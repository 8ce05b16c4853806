"""LAMP: layer-adaptive magnitude-based pruning (Lee et al. 2021)."""

from __future__ import annotations

import torch
from torch import Tensor

from prunebench.methods import Masks, Method, PruningContext, Taxonomy


def lamp_scores(weight: Tensor) -> Tensor:
    """The LAMP score of every entry of one layer's weight, in float64, shaped as the weight.

    Sort the layer's squared weights ascending, u_1 <= ... <= u_n (equal magnitudes in the order of their
    position: a stable sort); the score of u_i is u_i / (u_i + u_{i+1} + ... + u_n), its squared magnitude over
    the squared magnitudes of itself and of every weight after it in that order. Within a layer the score rises
    with |w| (the layer's ranking is its magnitude ranking), the largest weight scores exactly 1 and every other
    one less, and multiplying the layer by a constant leaves the scores as they are. A layer of zeros scores 0.

    Float64 throughout: the suffix sums are taken from the largest weight down (a reversed cumulative sum), not
    as the total minus a running sum, so the largest weights' scores lose nothing to cancellation.
    """
    squared = weight.detach().to(torch.float64).flatten().square()
    ordered, order = torch.sort(squared, stable=True)
    remaining = ordered.flip(0).cumsum(0).flip(0)  # remaining[i] = ordered[i] + ... + ordered[n - 1]
    ranked = torch.where(remaining > 0, ordered / remaining, torch.zeros_like(ordered))
    scores = torch.empty_like(ranked)
    scores[order] = ranked
    return scores.view(weight.shape)


class LAMP(Method):
    """LAMP: global magnitude pruning on a rescaled score that sets each layer's sparsity by itself.

    A weight's LAMP score is its squared magnitude divided by the sum of the squared magnitudes of the weights
    of its layer that are at least as large, itself included (`lamp_scores`: sorted ascending, ties in the order
    of their position); the lowest scores are pruned across all prunable layers (one global ranking), so that
    within each layer the smallest |w| go first while the layers' sparsities follow from the scores. Each layer's
    largest weight scores 1, every other weight less: a layer is never emptied while the target keeps at least as
    many weights as there are layers. Scores are computed from the current (masked) weights, so already pruned
    weights score 0 and stay pruned.

    Lee et al. 2021, "Layer-adaptive sparsity for the magnitude-based pruning" (ICLR); the authors' code,
    jaeho-lee/layer-adaptive-sparsity, `tools/pruners.py` (`_normalize_scores`, `_compute_lamp_amounts`,
    `prune_weights_lamp`): every conv and linear weight (first and classifier layers included, biases never:
    the protocol's `pruning.prunable` decides here), keep the round((1 - s) n) highest scores. Their experiments
    prune iteratively (20% of the remaining weights per round, retraining in between); this is the one-shot
    form, pruning to the target in one step and fine-tuning with the protocol's retraining recipe.
    """

    name = "lamp"
    version = "1.0"
    citation = "Lee et al. 2021 (ICLR)"
    scored = True  # its masks are masks_from_scores of its scores: the invert sanity ablation applies
    taxonomy = Taxonomy(
        when="after_training",
        granularity="unstructured",
        scope="global",
        schedule="one_shot",
        retraining="fine_tune",
    )

    def prune(self, ctx: PruningContext) -> Masks:
        return ctx.masks_from_scores({k: lamp_scores(w) for k, w in ctx.weights().items()}, scope="global")
