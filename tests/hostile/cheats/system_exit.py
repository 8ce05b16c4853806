"""Ends the whole run with exit code 0 while pruning, as if everything succeeded."""

from __future__ import annotations

from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "system_exit"

    def prune(self, ctx):
        raise SystemExit(0)
