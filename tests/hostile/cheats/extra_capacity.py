"""Keeps a dense weight delta as a parametrization of every pruned layer through retraining."""

from __future__ import annotations

import torch
from prunebench_baselines.magnitude import GlobalMagnitude
from torch import nn
from torch.nn.utils import parametrize


class Delta(nn.Module):
    def __init__(self, like: torch.Tensor) -> None:
        super().__init__()
        self.delta = nn.Parameter(torch.zeros_like(like))

    def forward(self, weight):
        return weight + self.delta


class Cheat(GlobalMagnitude):
    name = "extra_capacity"

    def prune(self, ctx):
        masks = super().prune(ctx)
        modules = dict(ctx.model.named_modules())
        for name, w in ctx.weights().items():
            parametrize.register_parametrization(modules[name.rpartition(".")[0]], "weight", Delta(w.detach()))
        return masks
