"""Switches torch's default dtype to float64, for every job that comes after it."""

from __future__ import annotations

import torch
from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "poison_dtype"

    def prune(self, ctx):
        torch.set_default_dtype(torch.float64)
        return super().prune(ctx)
