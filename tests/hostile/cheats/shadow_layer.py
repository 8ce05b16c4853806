"""Wraps the first pruned layer with a dense shadow layer that trains and evaluates beside it."""

from __future__ import annotations

import copy

from prunebench_baselines.magnitude import GlobalMagnitude
from torch import nn


class Shadowed(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer, self.shadow = layer, copy.deepcopy(layer)

    def forward(self, x):
        return self.layer(x) + self.shadow(x)


class Cheat(GlobalMagnitude):
    name = "shadow_layer"

    def prune(self, ctx):
        masks = super().prune(ctx)
        first = next(iter(ctx.weights())).rpartition(".")[0]
        parent_name, _, attr = first.rpartition(".")
        parent = ctx.model.get_submodule(parent_name)
        setattr(parent, attr, Shadowed(getattr(parent, attr)))
        return masks
