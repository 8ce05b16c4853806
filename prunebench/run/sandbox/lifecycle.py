"""What a job's processes do first, the engine's (prunebench.run.sandbox.child) and the method's
(prunebench.run.sandbox.method_process) alike: leave the terminal's process group, die with the fork server, and
write their output to the runner's pipes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from multiprocessing.connection import Connection

PR_SET_PDEATHSIG = 1


def redirect_output(stdout: Connection, stderr: Connection) -> None:
    """fd 1 and 2 onto the runner's pipes: Python's prints, C-level writes and subprocesses all go there."""
    flush_output()  # anything the fork server's streams held stays out of this job's output
    os.dup2(stdout.fileno(), 1)
    os.dup2(stderr.fileno(), 2)
    stdout.close()
    stderr.close()


def flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a stream a method closed or replaced
            stream.flush()


def detach() -> None:
    """A process group of its own (a terminal's Ctrl-C reaches only the runner, which ends this process), and
    death with the fork server (which ends with the runner)."""
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the runner decides (prunebench.forkserver_init)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
