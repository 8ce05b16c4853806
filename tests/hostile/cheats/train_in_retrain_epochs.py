"""Trains the model off the books when the engine asks how many retraining epochs it wants."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the helpers next to this file

from offbooks import train_privately
from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "train_in_retrain_epochs"

    def prune(self, ctx):
        self.batches = list(ctx.batches(ctx.scoring_examples))
        return super().prune(ctx)

    def retrain_epochs(self, ctx):
        train_privately(ctx.model, self.batches)
        return None
