"""Attaches a whole dense copy of the model, and averages its output in."""

from __future__ import annotations

import copy

from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "dense_copy"

    def prune(self, ctx):
        model = ctx.model
        model.dense_copy = copy.deepcopy(model)
        forward = type(model).forward
        model.forward = lambda x: (forward(model, x) + model.dense_copy(x)) / 2
        return super().prune(ctx)
