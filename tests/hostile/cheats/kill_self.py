"""Kills its own process with SIGKILL."""

from __future__ import annotations

import os
import signal

from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "kill_self"

    def prune(self, ctx):
        os.kill(os.getpid(), signal.SIGKILL)
