"""Kills the process it was forked from (the fork server every job starts from)."""

from __future__ import annotations

import os
import signal
import time

from prunebench_baselines.magnitude import GlobalMagnitude


class Cheat(GlobalMagnitude):
    name = "kill_fork_server"

    def prune(self, ctx):
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(5)
        return super().prune(ctx)
