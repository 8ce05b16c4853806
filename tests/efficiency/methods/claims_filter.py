"""Global magnitude pruning (unstructured) that claims filter granularity: a protocol that admits only
structured methods would rank it with them, and its FLOPs would be counted as if whole filters went."""

from __future__ import annotations

from prunebench.methods import Masks, Method, PruningContext, Taxonomy


class ClaimsFilter(Method):
    name = "claims_filter"
    version = "1.0"
    citation = "a test method"
    taxonomy = Taxonomy(
        when="after_training", granularity="filter", scope="global", schedule="one_shot", retraining="fine_tune"
    )

    def prune(self, ctx: PruningContext) -> Masks:
        return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope="global")
