"""Keeps the weights of its first job on the class, to start later jobs from them."""

from __future__ import annotations

from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "stash_across_jobs"
    stash: dict = {}

    def prune(self, ctx):
        ctx.note("found_stash", bool(Cheat.stash))
        Cheat.stash.update({k: w.detach().clone() for k, w in ctx.weights().items()})
        return super().prune(ctx)
