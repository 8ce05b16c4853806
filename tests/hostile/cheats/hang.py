"""Never returns from pruning."""

from __future__ import annotations

import time

from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "hang"

    def prune(self, ctx):
        while True:
            time.sleep(1)
