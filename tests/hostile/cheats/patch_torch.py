"""Patches torch's cross-entropy, which the engine trains with, to weight the loss ten times."""

from __future__ import annotations

import torch.nn.functional as F
from prunebench_baselines.magnitude import GlobalMagnitude

_cross_entropy = F.cross_entropy
F.cross_entropy = lambda *args, **kwargs: 10 * _cross_entropy(*args, **kwargs)


class Cheat(GlobalMagnitude):
    name = "patch_torch"
