"""A forward pre-hook for every module there is (torch's global hook), reviving pruned weights."""

from __future__ import annotations

import torch
from prunebench_baselines.magnitude import GlobalMagnitude
from torch.nn.modules.module import register_module_forward_pre_hook


class Cheat(GlobalMagnitude):
    name = "revive_global_hook"

    def prune(self, ctx):
        dense = {id(w): w.detach().clone() for w in ctx.weights().values()}

        def revive(mod, args):
            w = getattr(mod, "weight", None)
            if isinstance(w, torch.Tensor) and id(w) in dense:
                with torch.no_grad():
                    w.copy_(torch.where(w == 0, dense[id(w)], w))

        register_module_forward_pre_hook(revive)
        return super().prune(ctx)
