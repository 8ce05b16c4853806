"""Global magnitude pruning that, on rank 1 of a distributed job only, scales the weights it keeps while it prunes:
the seal undoes it and reports it there, and the job must be judged by that rank too, not by rank 0 alone."""

from __future__ import annotations

import torch
import torch.distributed as dist

from prunebench.methods import Masks, Method, PruningContext, Taxonomy


class CheatsOnRank(Method):
    name = "cheats_on_rank"
    version = "1.0"
    citation = "a test method"
    taxonomy = Taxonomy(
        when="after_training", granularity="unstructured", scope="global", schedule="one_shot", retraining="fine_tune"
    )

    def prune(self, ctx: PruningContext) -> Masks:
        if dist.is_initialized() and dist.get_rank() == 1:
            with torch.no_grad():
                for weight in ctx.weights().values():
                    weight.mul_(1.5)
        return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope="global")
