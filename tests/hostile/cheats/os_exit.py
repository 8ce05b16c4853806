"""Ends the process at once with exit code 0: no exception, no cleanup."""

from __future__ import annotations

import os

from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "os_exit"

    def prune(self, ctx):
        os._exit(0)
