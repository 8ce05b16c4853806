"""Global magnitude pruning that also notes every time one of its jobs starts, in the file that
$PRUNEBENCH_TEST_COUNTS names (one line per job start, appended): the tests of shared results directories count
how often each job ran."""

from __future__ import annotations

import os

from prunebench.methods import Masks, Method, PruningContext, Taxonomy


class Counted(Method):
    name = "counted"
    version = "1.0"
    citation = "a test method"
    taxonomy = Taxonomy(
        when="after_training", granularity="unstructured", scope="global", schedule="one_shot", retraining="fine_tune"
    )

    def prune(self, ctx: PruningContext) -> Masks:
        path = os.environ.get("PRUNEBENCH_TEST_COUNTS")
        if path:
            # The job: its sparsity, and its seed's dense model (a weight of it identifies the seed).
            seed_weight = float(next(iter(ctx.weights().values())).flatten()[0])
            with open(path, "a") as f:
                f.write(f"{ctx.target_sparsity:g} {seed_weight:.8f}\n")
        return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope="global")
