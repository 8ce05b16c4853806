"""Trains extra steps off the books at the end of every retraining epoch."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the helpers next to this file

from offbooks import train_privately
from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "train_in_epoch_end"

    def prune(self, ctx):
        self.batches = list(ctx.batches(ctx.scoring_examples))
        return super().prune(ctx)

    def on_epoch_end(self, ctx):
        train_privately(ctx.model, self.batches)
