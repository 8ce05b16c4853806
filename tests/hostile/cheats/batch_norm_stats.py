"""Recomputes the BatchNorm statistics at the end of every retraining epoch, outside the engine."""

from __future__ import annotations

import torch
from prunebench_baselines.magnitude import GlobalMagnitude
from torch import nn


class Cheat(GlobalMagnitude):
    name = "batch_norm_stats"

    def prune(self, ctx):
        self.batches = list(ctx.batches(ctx.scoring_examples))
        return super().prune(ctx)

    def on_epoch_end(self, ctx):
        model = ctx.model
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None
        model.train()
        with torch.no_grad():
            for x, _ in self.batches:
                model(x)
