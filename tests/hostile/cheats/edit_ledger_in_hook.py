"""Zeroes the engine's retraining ledger at the end of every retraining epoch."""

from __future__ import annotations

from prunebench_baselines.magnitude import GlobalMagnitude

from prunebench.results import StageLedger


class Cheat(GlobalMagnitude):
    name = "edit_ledger_in_hook"

    def on_epoch_end(self, ctx):
        engine = ctx._access._engine  # (ctx._engine before contexts held an access object; ctx.engine before 0.2)
        engine.ledger.retrain = StageLedger()
