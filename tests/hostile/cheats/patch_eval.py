"""Swaps the dense weights in whenever the model is put in evaluation mode (and back for training)."""

from __future__ import annotations

import copy

from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "patch_eval"

    def prune(self, ctx):
        model, dense = ctx.model, copy.deepcopy(ctx.model.state_dict())
        saved = {}

        def train(mode=True):
            if mode and saved:
                model.load_state_dict(saved.pop("pruned"))
            elif not mode:
                saved["pruned"] = copy.deepcopy(model.state_dict())
                model.load_state_dict(dense)
            return type(model).train(model, mode)

        model.train = train
        model.eval = lambda: train(False)
        return super().prune(ctx)
