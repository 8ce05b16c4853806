"""Turns autograd off for the rest of the process, so that every later job fails to train."""

from __future__ import annotations

import torch
from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "poison_grad"

    def prune(self, ctx):
        torch.set_grad_enabled(False)
        return super().prune(ctx)
