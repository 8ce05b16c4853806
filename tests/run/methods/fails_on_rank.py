"""Global magnitude pruning that raises on rank 1 of a distributed job and prunes on every other rank: a rank
that fails must take the job down with its reason, not leave the others waiting."""

from __future__ import annotations

import torch.distributed as dist

from prunebench.methods import Masks, Method, PruningContext, Taxonomy


class FailsOnRank(Method):
    name = "fails_on_rank"
    version = "1.0"
    citation = "a test method"
    taxonomy = Taxonomy(
        when="after_training", granularity="unstructured", scope="global", schedule="one_shot", retraining="fine_tune"
    )

    def prune(self, ctx: PruningContext) -> Masks:
        if dist.is_initialized() and dist.get_rank() == 1:
            raise RuntimeError("rank 1 cannot prune")
        return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope="global")
