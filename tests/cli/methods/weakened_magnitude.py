"""Global magnitude pruning, deliberately weakened: every score |w| is multiplied by log-normal noise, so that
some large weights are pruned and some small ones kept. Same name and config as the baseline: to the gate it
looks as a regression of global_magnitude looks (a change to its code that costs accuracy)."""

from __future__ import annotations

import torch
from prunebench_baselines.magnitude import GlobalMagnitude

NOISE = 3.0  # sigma of log(noise): about 2 points of test top-1 at sparsity 0.9


class Weakened(GlobalMagnitude):
    name = "global_magnitude"

    def prune(self, ctx):
        scores = {
            k: w.abs() * torch.exp(NOISE * torch.randn(w.shape, generator=ctx.generator)).to(w.device)
            for k, w in ctx.weights().items()
        }
        return ctx.masks_from_scores(scores, scope="global")
