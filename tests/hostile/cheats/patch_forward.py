"""Replaces the model's forward with one that computes with the dense weights it kept."""

from __future__ import annotations

import copy

from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "patch_forward"

    def prune(self, ctx):
        dense = copy.deepcopy(ctx.model)
        ctx.model.forward = lambda x: dense(x)
        return super().prune(ctx)
