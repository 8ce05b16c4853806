"""Takes 3 GiB of memory and keeps it."""

from __future__ import annotations

import time

import torch
from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "memory_hog"

    def prune(self, ctx):
        hog = torch.ones(3 * 2**30 // 4)
        while True:
            hog.add_(1)
            time.sleep(0.05)
