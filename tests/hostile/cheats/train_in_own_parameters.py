"""Trains the model off the books whenever the engine asks for its own parameters."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the helpers next to this file

from offbooks import train_privately
from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "train_in_own_parameters"

    def prune(self, ctx):
        self.model, self.batches = ctx.model, list(ctx.batches(ctx.scoring_examples))
        return super().prune(ctx)

    def own_parameters(self):
        if hasattr(self, "model"):
            train_privately(self.model, self.batches)
        return []
